"""`GET /openapi.json`: the API described for programs (and for schemathesis, which the
tests run against it). Built from the same property tables the handlers use, so the
description cannot drift from what is served."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

_LIST = "comma-separated values, or an array name[0]=..&name[1]=.."
_PAGING = [("limit", "integer", "at most 2000 per read"), ("offset", "integer", "rows to skip"),
           ("total", "boolean", "also count what the limit left out"),
           ("sort", "string", "NAME ASC or NAME DESC"),
           ("properties", "string", "properties to return: id,name or DEFAULT,-id")]


def _parameter(name: str, kind: str, description: str, required: bool = False) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": kind}
    if kind == "integer":
        schema["minimum"] = 0
    return {"name": name, "in": "query", "required": required, "description": description, "schema": schema}


def _filters(*names: tuple[str, str]) -> list[dict[str, Any]]:
    return [_parameter(name, "string", f"{description}: {_LIST}") for name, description in names]


def _responses(ok: str, *errors: int) -> dict[str, Any]:
    error = {"description": "refused",
             "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    responses: dict[str, Any] = {"200" if ok != "created" else "201": {
        "description": ok, "content": {"application/json": {"schema": {"type": "object"}}}}}
    for code in (400, 401, 503, *errors):
        responses[str(code)] = error
    return responses


def _listing(properties: Sequence[str]) -> dict[str, Any]:
    return {"type": "object", "required": ["size", "total", "list"], "properties": {
        "size": {"type": "integer"}, "total": {"type": ["integer", "null"]},
        "list": {"type": "array", "items": {"type": "object", "properties": {
            name: {} for name in properties}}}}}


def spec(resources: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """`resources`: the properties each resource shows (sms, reply, status, mailing, stats)."""
    create = {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "required": ["text", "contacts"], "properties": {
            "text": {"type": "string", "description": "#field# is replaced by each contact's field"},
            "name": {"type": "string"}, "date": {"type": "string", "example": "2017-05-07 11:12:25"},
            "sender": {"type": "string", "description": "one of the account's sender ids (default: the first)"},
            "type": {"type": "string", "enum": ["1", "2"],
                     "description": "2: replies wanted, sent from one of the account's numeric sender ids"},
            "encoding": {"type": "string", "enum": ["text", "ucs2", "auto"],
                         "description": "text: GSM with the seed's transliteration; ucs2: Unicode; auto: GSM "
                                        "when nothing would be deleted (look-alikes mapped), else UCS-2"},
            "flash": {"type": "boolean", "description": "message class 0: shown at once, not stored"},
            "priority": {"type": "integer", "minimum": 0, "maximum": 3,
                         "description": "SMPP priority_flag, 3 the most urgent (default: the account's)"},
            "validity": {"type": "integer", "minimum": 5, "maximum": 4320,
                         "description": "minutes the SMSC may keep trying (default: the account's)"},
            "email": {"type": "string", "description": "replies are mailed here instead of --reply-email"},
            "emailSender": {"type": "string", "description": "the From of those reply mails"},
            "emailSubject": {"type": "string", "maxLength": 200, "description": "their subject"},
            "pingUrl": {"type": "string", "description": "called on each change instead of the account's"},
            "batchVolume": {"type": "integer", "minimum": 1, "maximum": 100000,
                            "description": "mailing only: sent in packets of this many (with batchDelay)"},
            "batchDelay": {"type": "integer", "minimum": 1, "maximum": 1440,
                           "description": "mailing only: minutes between packets (with batchVolume)"},
            "contacts": {"type": "array", "maxItems": 200, "items": {
                "type": "object", "required": ["recipient"],
                "properties": {"recipient": {"type": "string"}}, "additionalProperties": {"type": "string"}}}}}}}}
    idempotency = {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string", "maxLength": 255},
                   "description": "the same key from the same account within 24 h answers the first result "
                                  "again and sends nothing; other parameters under a used key: 422"}
    return {
        "openapi": "3.1.0",
        "info": {"title": "ecosms-gw SMS API", "version": "1",
                 "description": "The ecoSMS HTTPS API (seed section 3) served by ecosms-gw. Every /rest call "
                                "takes action=read|create|update|delete on GET or POST (a mailing also "
                                "action=pause|resume with its id), and a .json, .xml, .csv or .js (with callback) "
                                "suffix picks the format."},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": {"type": "object", "required": ["status", "message"], "properties": {
                "status": {"type": "integer"}, "message": {"type": "string"}}},
                **{name.capitalize() + "List": _listing(properties) for name, properties in resources.items()}},
        },
        "security": [{"bearer": []}],
        "paths": {
            "/token": {"post": {
                "summary": "A token (OAuth 2.0 client credentials: the account code and its API secret)",
                "security": [],
                "requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": {
                    "type": "object", "required": ["grant_type", "client_id", "client_secret"], "properties": {
                        "grant_type": {"type": "string", "enum": ["client_credentials"]},
                        "client_id": {"type": "string"}, "client_secret": {"type": "string"}}}}}},
                "responses": {"200": {"description": "a bearer token"}, "400": {"description": "refused"},
                              "429": {"description": "too many failures"}, "503": {"description": "ours, retry"}}}},
            "/rest/sms": {
                "get": {"summary": "Messages sent (way=mt) or received (way=mo)", "parameters": [
                    *_filters(("id", "message ids"), ("recipient", "numbers"), ("mailingName", "mailing names"),
                              ("mailingId", "mailing ids")),
                    _parameter("date", "string", "a date, or date[i][operator]/date[i][value] conditions"),
                    _parameter("way", "string", "mt (default) or mo"), *(_parameter(*p) for p in _PAGING)],
                    "responses": _responses("the sms list")},
                "post": {"summary": "Send one SMS (one contact)", "requestBody": create,
                         "parameters": [idempotency], "responses": _responses("created", 417, 422)},
                "delete": {"summary": "Cancel messages not sent yet",
                           "parameters": [_parameter("id", "string", f"message ids: {_LIST}", required=True)],
                           "responses": _responses("how many were canceled", 304, 417)}},
            "/rest/mailing": {
                "get": {"summary": "Mailings", "parameters": [
                    *_filters(("id", "mailing ids"), ("name", "mailing names")), *(_parameter(*p) for p in _PAGING)],
                    "responses": _responses("the mailing list")},
                "post": {"summary": "Send a mailing (at most 200 contacts); with action=pause or action=resume and "
                                    "its id: pause it (nothing more is written once answered) or resume it",
                         "requestBody": create,
                         "parameters": [idempotency], "responses": _responses("created", 417, 422)},
                "put": {"summary": "Rename mailings, or reschedule those of which nothing was sent (action=update)",
                        "parameters": [*_filters(("id", "mailing ids"), ("name", "mailing names")),
                                       _parameter("metaData", "string", 'JSON: {"name": ..., "date": ...}',
                                                  required=True)],
                        "responses": _responses("how many were updated", 417)},
                "delete": {"summary": "Cancel what is not sent yet of a mailing",
                           "parameters": [_parameter("id", "integer", "the mailing", required=True)],
                           "responses": _responses("what was canceled", 304, 404, 417)}},
            "/rest/status": {"get": {
                "summary": "Current statuses; action=queue reads the account's status FIFO once",
                "parameters": [*_filters(("smsId", "message ids"), ("mailingId", "mailing ids"),
                                         ("mailingName", "mailing names")),
                               _parameter("action", "string", "read (default) or queue"),
                               *(_parameter(*p) for p in _PAGING)],
                "responses": _responses("the status list")}},
            "/rest/smsstatus": {"get": {
                "summary": "Every status a message had",
                "parameters": [*_filters(("smsId", "message ids")), *(_parameter(*p) for p in _PAGING)],
                "responses": _responses("the history", 417)}},
            "/rest/number": {"get": {
                "summary": "Numbers checked by the account's rules: valid, E.164, country, type, opted out, and why "
                           "a mailing would leave each out",
                "parameters": [_parameter("number", "string", f"up to 2,000 numbers: {_LIST}", required=True),
                               _parameter("properties", "string", "properties to return; `DEFAULT,history` "
                                          "adds each number's opt-out changes (date, optedOut, source)")],
                "responses": _responses("the numbers", 417)}},
            "/rest/optout": {
                "get": {"summary": "The account's opt-out list (.csv: number, date, reason)", "parameters": [
                    *_filters(("number", "numbers")), _parameter("dateStart", "string", "opted out from this day"),
                    _parameter("dateEnd", "string", "until this day, included"), *(_parameter(*p) for p in _PAGING)],
                    "responses": _responses("the list")},
                "post": {"summary": "Opt numbers out (action=create)",
                         "parameters": [_parameter("number", "string", f"numbers: {_LIST}", required=True)],
                         "responses": _responses("created", 417)},
                "delete": {"summary": "Opt numbers back in",
                           "parameters": [_parameter("number", "string", f"numbers: {_LIST}", required=True)],
                           "responses": _responses("how many were out", 417)}},
            "/rest/stats": {"get": {
                "summary": "Counts by status, of mailings or of a month",
                "parameters": [*_filters(("mailingId", "mailing ids"), ("mailingName", "mailing names")),
                               _parameter("month", "string", "YYYY-MM"),
                               _parameter("dateStart", "string", "from this day (or second), in the account's zone"),
                               _parameter("dateEnd", "string", "until this day (or second), included"),
                               _parameter("period", "string", "day or month: one row per period, with `period`"),
                               _parameter("properties", "string", "counts to return")],
                "responses": _responses("the statistics")}},
            "/health": {"get": {"summary": "200 when the database answers and every SMSC link is bound by a daemon",
                                "security": [],
                                "responses": {"200": {"description": "healthy"}, "503": {"description": "not"}}}},
            "/health/live": {"get": {"summary": "200 while the process answers", "security": [],
                                     "responses": {"200": {"description": "alive"}}}},
            "/health/ready": {"get": {"summary": "200 when this daemon takes work: its database answers",
                                      "security": [],
                                      "responses": {"200": {"description": "ready"}, "503": {"description": "not"}}}},
        },
    }
