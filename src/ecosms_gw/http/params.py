"""The seed's HTTP API conventions (section 1), pure: parameters to filters, paging,
sorting and properties, and created mailings to mail2sms bodies. No aiohttp here: the
resources feed it a parameter mapping."""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ecosms_gw.core.mail2sms import Block, Body, Recipient, Rejected, parse_date
from ecosms_gw.errors import GatewayError

MAX_CONTACTS = 200  # per create call, as the seed says
MAX_READ = 2000  # statuses (and any resource) per read
MAX_OFFSET = 10**9
_KEY = re.compile(r"([^\[\]]+)((?:\[[^\[\]]*\])*)")
_NAMED = re.compile(r"#([A-Za-z_][A-Za-z0-9_]*)#")


class ApiError(GatewayError):
    """A refused call: the seed's status code and a message for the developer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, message)
        self.status, self.message = status, message


def nest(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Form or query pairs to nested values: `id[0]=12&id[1]=13` is {"id": {"0": "12",
    "1": "13"}}, `date[1][operator]=>=` nests twice."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        match = _KEY.fullmatch(key)
        if not match:
            raise ApiError(400, f"parameter {key!r} is not a name or name[index]")
        path = [match[1], *re.findall(r"\[([^\[\]]*)\]", match[2])]
        node = result
        for i, step in enumerate(path[:-1]):
            child = node.get(step)
            if not isinstance(child, dict):
                child = node[step] = {}
            node = child
            if step == "" and i:
                raise ApiError(400, f"parameter {key!r}: empty index")
        last = path[-1] or str(len(node))  # `x[]=` appends
        node[last] = value
    return result


def _indexes(array: Mapping[str, Any]) -> list[str]:
    """The keys of a form array (`x[0]`, `x[1]`, ... `x[10]`) in their numeric order."""
    return sorted(array, key=lambda key: (len(key), key))


def check_text(value: Any, depth: int = 0) -> None:
    """Parameters PostgreSQL can store: no NUL, no lone surrogate (from JSON `\\ud800`),
    and not nested deeper than the seed's date conditions."""
    if depth > 4:
        raise ApiError(400, "parameters are nested too deep")
    if isinstance(value, dict):
        for key, item in value.items():
            check_text(key, depth)
            check_text(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            check_text(item, depth + 1)
    elif isinstance(value, str):
        if "\0" in value:
            raise ApiError(400, "parameters may not contain NUL characters")
        try:
            value.encode()
        except UnicodeEncodeError:
            raise ApiError(400, "parameters must be valid Unicode text") from None


def values(params: Mapping[str, Any], name: str) -> list[str] | None:
    """A multi-valued filter: `a,b`, an array `name[0]=a`, or a JSON list; None if absent."""
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    if isinstance(raw, dict):
        items = [raw[key] for key in _indexes(raw)]
    elif isinstance(raw, list):
        items = raw
    else:
        items = str(raw).split(",")
    found = [str(item).strip() for item in items if not isinstance(item, (dict, list)) and str(item).strip()]
    if len(found) > MAX_READ:
        raise ApiError(414, f"{name}: at most {MAX_READ} values")
    return found or None


def ids(params: Mapping[str, Any], name: str) -> list[int] | None:
    found = values(params, name)
    if found is None:
        return None
    if not all(item.isdigit() and len(item) < 19 for item in found):
        raise ApiError(400, f"{name}: ids are whole numbers")
    return [int(item) for item in found]


def single(params: Mapping[str, Any], name: str) -> str | None:
    raw = params.get(name)
    if raw is None:
        return None
    if isinstance(raw, (dict, list)):
        raise ApiError(400, f"{name}: one value")
    return str(raw)


def flag(params: Mapping[str, Any], name: str) -> bool:
    value = (single(params, name) or "false").lower()
    if value not in ("true", "false", "1", "0"):
        raise ApiError(400, f"{name}: true or false")
    return value in ("true", "1")


def choice(params: Mapping[str, Any], name: str, allowed: Collection[str]) -> str | None:
    """One of `allowed`, or None when absent or empty."""
    value = single(params, name)
    if value is None or value == "":
        return None
    if value not in allowed:
        raise ApiError(400, f"{name}: one of {', '.join(allowed)}")
    return value


def idempotency_key(value: str | None) -> str | None:
    """The `Idempotency-Key` header of a create: 1 to 255 printable characters."""
    if value is not None and not (0 < len(value) <= 255 and value.isprintable()):
        raise ApiError(400, "Idempotency-Key: 1 to 255 printable characters")
    return value


def whole(params: Mapping[str, Any], name: str, low: int, high: int) -> int | None:
    """A whole number from `low` to `high`, or None when absent or empty."""
    value = single(params, name)
    if value is None or value == "":
        return None
    if not value.isdigit() or not low <= int(value) <= high:
        raise ApiError(400, f"{name}: a whole number from {low} to {high}")
    return int(value)


def page(params: Mapping[str, Any]) -> tuple[int, int]:
    """(limit, offset): at most MAX_READ per read."""
    numbers = []
    for name, default in (("limit", MAX_READ), ("offset", 0)):
        value = single(params, name)
        if value is None or value == "":
            numbers.append(default)
        elif not value.isdigit() or int(value) > MAX_OFFSET:
            raise ApiError(400, f"{name}: a whole number")
        else:
            numbers.append(int(value))
    limit, offset = numbers
    return min(limit, MAX_READ), offset


def sort(params: Mapping[str, Any], keys: Mapping[str, str]) -> tuple[str, bool]:
    """`sort=id DESC`: (the column to sort by, descending). `keys` maps the names the
    resource shows to those its query sorts by."""
    value = (single(params, "sort") or "id ASC").split()
    if not value or len(value) > 2 or value[0] not in keys or (
            len(value) == 2 and value[1].upper() not in ("ASC", "DESC")):
        raise ApiError(400, f"sort: 'NAME ASC' or 'NAME DESC' with NAME one of {', '.join(keys)}")
    return keys[value[0]], len(value) == 2 and value[1].upper() == "DESC"


def properties(params: Mapping[str, Any], available: tuple[str, ...], default: tuple[str, ...]) -> list[str]:
    """`properties=id,name`, `DEFAULT,recipient`, `DEFAULT,-id`."""
    asked = values(params, "properties")
    if asked is None:
        return list(default)
    chosen: list[str] = []
    for item in asked:
        if item == "DEFAULT":
            chosen += [name for name in default if name not in chosen]
        elif item.startswith("-"):
            if item[1:] not in available:
                raise ApiError(400, f"properties: unknown property {item[1:]!r}")
            chosen = [name for name in chosen if name != item[1:]]
        elif item in available:
            chosen += [] if item in chosen else [item]
        else:
            raise ApiError(400, f"properties: unknown property {item!r}; known: {', '.join(available)}")
    return chosen


def moment(value: str, zone: ZoneInfo, name: str) -> tuple[datetime, timedelta]:
    """A date as the seed writes them (`2017-05-07 11:12:25`, `2017-06-09`, ISO-8601 too)
    in the account's time zone, and its precision (a day or a second)."""
    text = value.strip().replace(" ", "T", 1)
    try:
        parsed = parse_date(0, text)
    except Rejected:
        raise ApiError(400, f"{name}: {value!r} is not a date like 2017-05-07 11:12:25") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    unit = timedelta(days=1) if "T" not in text else timedelta(seconds=1)
    return parsed.astimezone(UTC), unit


def date_range(params: Mapping[str, Any], zone: ZoneInfo, name: str = "date",
               ) -> tuple[datetime | None, datetime | None]:
    """`date=V` (that second, or that day) or the seed's operator array
    (`date[0][logical]=AND&date[1][operator]=>=&date[1][value]=...`): [from, until)."""
    raw = params.get(name)
    if raw is None or raw == "":
        return None, None
    conditions = [("=", raw)] if isinstance(raw, str) else []
    if isinstance(raw, dict):
        for key in _indexes(raw):
            item = raw[key]
            if not isinstance(item, dict):
                raise ApiError(400, f"{name}[{key}]: an operator and a value")
            if "logical" in item:
                if str(item["logical"]).upper() != "AND":
                    raise ApiError(400, f"{name}: only AND combines conditions")
                continue
            conditions.append((str(item.get("operator", "=")).strip(), str(item.get("value", ""))))
    lower: datetime | None = None
    upper: datetime | None = None
    for operator, value in conditions:
        start, unit = moment(value, zone, name)
        bounds = {"=": (start, start + unit), ">=": (start, None), ">": (start + unit, None),
                  "<": (None, start), "<=": (None, start + unit)}.get(operator)
        if bounds is None:
            raise ApiError(400, f"{name}: operator {operator!r} is not one of = > >= < <=")
        if bounds[0] is not None:
            lower = bounds[0] if lower is None else max(lower, bounds[0])
        if bounds[1] is not None:
            upper = bounds[1] if upper is None else min(upper, bounds[1])
    return lower, upper


def between(params: Mapping[str, Any], zone: ZoneInfo) -> tuple[datetime | None, datetime | None]:
    """`dateStart` and `dateEnd` (each a day or a second in the account's zone, both
    included) as [from, until); None where absent."""
    start, end = single(params, "dateStart"), single(params, "dateEnd")
    since = moment(start, zone, "dateStart")[0] if start else None
    if not end:
        return since, None
    last, unit = moment(end, zone, "dateEnd")
    return since, last + unit


def month_range(value: str, zone: ZoneInfo) -> tuple[datetime, datetime]:
    match = re.fullmatch(r"([0-9]{4})-([0-9]{2})", value.strip())
    if not match or not 1 <= int(match[2]) <= 12:
        raise ApiError(400, f"month: {value!r} is not YYYY-MM")
    year, month = int(match[1]), int(match[2])
    start = datetime(year, month, 1, tzinfo=zone)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def _structured(params: Mapping[str, Any], name: str, what: str) -> Any:
    """A parameter that is JSON: as sent in a JSON body, or its text in a form."""
    raw = params.get(name)
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except ValueError:
            raise ApiError(400, f"{name}: {what}") from None
    return raw


def meta_data(params: Mapping[str, Any]) -> dict[str, Any]:
    """An update's `metaData`: the attributes to change, a JSON object (or its text)."""
    raw = _structured(params, "metaData", "a JSON object of the attributes to change")
    if not raw:
        raise ApiError(417, "metaData is required: a JSON object of the attributes to change")
    if not isinstance(raw, dict):
        raise ApiError(400, "metaData: a JSON object of the attributes to change")
    check_text(raw)
    return raw


def contacts(params: Mapping[str, Any], at_most: int) -> list[dict[str, str]]:
    """The `contacts` of a create call: a JSON list (or its text), or form arrays
    `contacts[0][recipient]=...`. Each needs a `recipient`."""
    raw = _structured(params, "contacts", "a JSON list of objects with a recipient")
    if isinstance(raw, dict):
        raw = [raw[key] for key in _indexes(raw)]
    if not raw:
        raise ApiError(417, "contacts is required: a list of objects with a recipient")
    if not isinstance(raw, list) or not all(isinstance(contact, dict) for contact in raw):
        raise ApiError(400, "contacts: a list of objects with a recipient")
    if len(raw) > at_most:
        raise ApiError(400, f"contacts: at most {at_most} per call")
    found = []
    for index, contact in enumerate(raw, 1):
        if not isinstance(contact.get("recipient"), (str, int)) or not str(contact["recipient"]).strip():
            raise ApiError(400, f"contacts[{index - 1}]: no recipient")
        found.append({str(key): "" if value is None else str(value) for key, value in contact.items()
                      if not isinstance(value, (dict, list))})
    return found


def body(account: str, text: str, people: list[dict[str, str]], date: datetime | None) -> Body:
    """A create call as a mail2sms body, so that it is composed by the same rules as a mail:
    `#firstName#` becomes a numbered field and each contact a recipient line (its "line"
    is its 1-based position in `contacts`)."""
    names: list[str] = []

    def numbered(match: re.Match[str]) -> str:
        if match[1] not in names:
            names.append(match[1])
        return f"#{names.index(match[1]) + 1}#"

    template = _NAMED.sub(numbered, text)
    recipients = tuple(Recipient(line, person["recipient"], tuple(person.get(name, "") for name in names))
                       for line, person in enumerate(people, 1))
    return Body(account=account, account_line=0, date=date, blocks=(Block(1, template, recipients),),
                texts_without_recipient=(), recipients_before_text=())
