"""Documents of the API in the format asked: JSON, XML, CSV or JSONP (the seed's four)."""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any, NamedTuple
from xml.sax.saxutils import escape

from ecosms_gw.core.cells import cell
from ecosms_gw.http.params import ApiError

_CALLBACK = re.compile(r"[A-Za-z_$][0-9A-Za-z_$.]{0,63}")


class Listed(NamedTuple):
    """A read's answer, the seed's {"size", "total", "list"}, with the list as the JSON
    text PostgreSQL wrote (every property, see store/reads.py) and the properties asked, in
    their order."""

    size: int
    total: int | None
    items: str
    properties: list[str]
    every: bool  # the properties asked are all the resource has, in its order

    def document(self) -> dict[str, Any]:
        return {"size": self.size, "total": self.total, "list": [
            {name: item.get(name) for name in self.properties} for item in json.loads(self.items)]}


def render(document: dict[str, Any] | Listed, fmt: str, callback: str | None = None) -> tuple[bytes, str]:
    """The body and content type of a document in json, xml, csv or js (JSONP)."""
    if fmt in ("json", "js"):
        if isinstance(document, Listed) and document.every:  # spliced: the list is JSON already
            text = f'{{"size": {document.size}, "total": {json.dumps(document.total)}, "list": {document.items}}}'
        else:
            text = json.dumps(document.document() if isinstance(document, Listed) else document, ensure_ascii=False)
        if fmt == "json":
            return text.encode(), "application/json"
        if not callback or not _CALLBACK.fullmatch(callback):
            raise ApiError(400, "callback: a JavaScript function name")
        return f"{callback}({text});".encode(), "application/javascript"
    if isinstance(document, Listed):
        document = document.document()
    if fmt == "xml":
        return ('<?xml version="1.0" encoding="UTF-8"?>\n' + _xml("response", document)).encode(), \
            "application/xml"
    if fmt == "csv":
        rows = document["list"] if isinstance(document, dict) and "list" in document else [document]
        out = io.StringIO()
        columns = list(rows[0]) if rows else []
        writer = csv.writer(out)
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if row.get(c) is None else json.dumps(row[c]) if isinstance(row[c], (dict, list))
                             else cell(row[c]) for c in columns])
        return out.getvalue().encode(), "text/csv; charset=utf-8"
    raise ApiError(404, f"unknown format .{fmt}")


def _xml(tag: str, value: Any) -> str:
    if isinstance(value, dict):
        return f"<{tag}>" + "".join(_xml(key, item) for key, item in value.items()) + f"</{tag}>"
    if isinstance(value, list):
        return f"<{tag}>" + "".join(_xml("item", item) for item in value) + f"</{tag}>"
    if value is None:
        return f"<{tag}/>"
    if isinstance(value, bool):
        value = "true" if value else "false"
    return f"<{tag}>{escape(str(value))}</{tag}>"
