"""Escaping in each context: element text, attributes, links and JSON in a script block."""

from __future__ import annotations

import json

from genevolve_async.report._markup import esc, json_script, link, shorten


def test_text_and_attributes_are_escaped() -> None:
    assert esc("<script>\"x\" & 'y'</script>") == (
        "&lt;script&gt;&quot;x&quot; &amp; &#x27;y&#x27;&lt;/script&gt;"
    )
    assert esc(None) == ""


def test_only_http_links_become_hrefs() -> None:
    assert link("javascript:alert(1)", "source") == "source"
    assert link("data:text/html,<b>x</b>") == "data:text/html,&lt;b&gt;x&lt;/b&gt;"
    made = link('https://a.example/"onmouseover="x', "src")
    assert made.startswith('<a href="https://a.example/&quot;onmouseover=&quot;x"')


def test_json_in_a_script_block_cannot_close_it() -> None:
    value = {"title": "</script><script>alert(1)</script>", "amp": "a & b", "sep": "\u2028"}
    block = json_script("report-data", value)
    body = block[block.index(">") + 1 : block.rindex("</script>")]
    assert "</" not in body and "<" not in body and "&" not in body
    assert json.loads(body) == value


def test_shorten_counts_what_it_left_out() -> None:
    assert shorten("abc", 5) == ("abc", 0)
    assert shorten("abcdefgh", 3) == ("abc…", 5)
