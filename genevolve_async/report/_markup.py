"""Escaping for every context the report writes text into.

Text from a model, a search result or an input row reaches the page in
three places: element content and quoted attribute values (``html.escape``
with quotes), links (only ``http(s)`` URLs become ``href``; anything else,
``javascript:`` included, stays text) and JSON inside a ``<script>`` block
(``<``, ``>`` and ``&`` written as ``\\u`` escapes, so no ``</script>`` can
close the block early).
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

__all__ = ["esc", "json_script", "link", "shorten"]


def esc(value: object) -> str:
    """``value`` as text for element content or a double-quoted attribute."""
    return escape("" if value is None else str(value), quote=True)


def link(url: object, text: object | None = None) -> str:
    """An ``<a>`` to ``url`` when it is an http(s) URL, else its text only."""
    label = esc(url if text is None else text)
    if isinstance(url, str) and url.lower().startswith(("http://", "https://")):
        return f'<a href="{esc(url)}" rel="noreferrer noopener" target="_blank">{label}</a>'
    return label


def json_script(element_id: str, value: Any) -> str:
    """A ``<script type="application/json">`` block holding ``value``, safe to embed."""
    text = (
        json.dumps(value, ensure_ascii=False, default=str)
        .replace("&", "\\u0026")
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )
    return f'<script type="application/json" id="{esc(element_id)}">{text}</script>'


def shorten(text: str, limit: int) -> tuple[str, int]:
    """The first ``limit`` characters of ``text``, and how many were left out."""
    if len(text) <= limit:
        return text, 0
    return text[:limit].rstrip() + "…", len(text) - limit
