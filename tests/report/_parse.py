"""Reading a report back with the standard library's HTML parser."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any


@dataclass
class ParsedReport:
    cards: list[dict[str, str]] = field(default_factory=list)
    """The data-* attributes of each card."""
    cells: dict[tuple[str, str], str] = field(default_factory=dict)
    """(split, metric) -> the summary table's text."""
    scripts: list[dict[str, str]] = field(default_factory=list)
    """Attributes of every <script>."""
    data: Any = None
    """The report-data JSON block."""
    img_srcs: list[str] = field(default_factory=list)
    text: list[str] = field(default_factory=list)


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out = ParsedReport()
        self._split: str | None = None
        self._metric: str | None = None
        self._json = False
        self._table = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "article" and "card" in a.get("class", ""):
            self.out.cards.append({k[5:]: v for k, v in a.items() if k.startswith("data-")})
        elif tag == "table":
            self._table = "splits" in a.get("class", "")
        elif tag == "tr" and self._table:
            self._split = a.get("data-split")
        elif tag == "td" and self._split:
            self._metric = a.get("data-metric")
        elif tag == "script":
            self.out.scripts.append(a)
            self._json = a.get("id") == "report-data"
        elif tag == "img":
            self.out.img_srcs.append(a.get("src", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._metric = None
        elif tag == "script":
            self._json = False
        elif tag == "table":
            self._table = False

    def handle_data(self, data: str) -> None:
        if self._json:
            self.out.data = json.loads(data)
        elif self._split and self._metric:
            self.out.cells[(self._split, self._metric)] = data
        else:
            self.out.text.append(data)


def parse_report(html: str) -> ParsedReport:
    parser = _Parser()
    parser.feed(html)
    parser.close()
    return parser.out
