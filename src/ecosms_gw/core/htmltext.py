"""HTML e-mail parts to plain text, so that a body typed in a rich mail client reads as
the same lines it shows (rule 18)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

_DROPPED = {"head", "style", "script", "title", "template", "noscript"}
_BLOCKS = {
    "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "fieldset",
    "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header",
    "hr", "li", "main", "nav", "ol", "p", "pre", "section", "table", "tbody", "td", "tfoot",
    "th", "thead", "tr", "ul",
}
_RUN_OF_WHITESPACE = re.compile(r"[ \t\r\n\f\v]+")


class _Extractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.dropped_depth = 0
        self.pre_depth = 0

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag == "body":  # closes an unclosed <head>, as browsers do
            self.dropped_depth = 0
        elif tag in _DROPPED:
            self.dropped_depth += 1
        elif tag in _BLOCKS:
            self.out.append("\n")
            if tag == "pre":
                self.pre_depth += 1

    def handle_startendtag(self, tag: str, attrs: object) -> None:
        if tag in _BLOCKS:
            self.out.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _DROPPED:
            self.dropped_depth = max(0, self.dropped_depth - 1)
        elif tag in _BLOCKS:
            self.out.append("\n")
            if tag == "pre":
                self.pre_depth = max(0, self.pre_depth - 1)

    def handle_data(self, data: str) -> None:
        if self.dropped_depth:
            return
        if not self.pre_depth:
            data = _RUN_OF_WHITESPACE.sub(" ", data)
        self.out.append(data.replace("\xa0", " "))


def html_to_text(html: str) -> str:
    """Drop head/style/script, break lines at `<br>` and block tags, collapse whitespace
    outside `<pre>`, decode entities, read NBSP as a space."""
    extractor = _Extractor()
    extractor.feed(html)
    extractor.close()
    return "".join(extractor.out)
