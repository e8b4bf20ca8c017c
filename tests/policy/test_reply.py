"""Reading a chat-completion body: whatever the server sends, a reply or a BadResponseError."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genevolve_async import BadResponseError
from genevolve_async.policy._reply import reply_from_json
from tests._hostile import json_values


def _body(content: Any) -> dict[str, Any]:
    return {"choices": [{"message": {"content": content}, "finish_reason": "stop"}]}


def test_content_parts_give_their_text() -> None:
    reply = reply_from_json(_body([{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]))
    assert reply.content == "ab"


@pytest.mark.parametrize(
    "content", [[{"type": "text", "text": 5}], [{"text": {"nested": 1}}], 7, {"text": "x"}]
)
def test_content_that_is_no_text_is_a_bad_response(content: Any) -> None:
    with pytest.raises(BadResponseError, match="content"):
        reply_from_json(_body(content))


@settings(max_examples=300, deadline=None)
@given(json_values | st.builds(_body, json_values))
def test_any_body_gives_a_reply_or_a_bad_response(body: Any) -> None:
    try:
        reply = reply_from_json(body)
    except BadResponseError:
        return
    assert reply.content is None or isinstance(reply.content, str)
    assert reply.tool_calls is None or isinstance(reply.tool_calls, list)
