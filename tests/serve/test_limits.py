"""Slow-client limits: the uvicorn options and the body-read deadline."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from genevolve_async.serve.limits import BodyReadTimeout, ServerLimits


def test_uvicorn_gets_a_bound_for_each_kind_of_slow_client() -> None:
    options = ServerLimits().uvicorn_options()
    assert options["limit_concurrency"] >= 1  # slow headers hold at most this many slots
    assert options["h11_max_incomplete_event_size"] <= 1 << 20
    assert options["timeout_keep_alive"] <= 30
    with pytest.raises(ValueError):
        ServerLimits(body_timeout=0)


async def _run(receive_messages: list[dict[str, Any] | None], seconds: float) -> list[str]:
    """The message types the app saw; ``None`` in the script means the client stalls."""
    seen: list[str] = []
    script = list(receive_messages)

    async def receive() -> dict[str, Any]:
        message = script.pop(0) if script else None
        if message is None:
            await anyio.sleep_forever()
        assert message is not None
        return message

    async def send(_: Any) -> None:
        return None

    async def app(scope: Any, recv: Any, snd: Any) -> None:
        while True:
            message = await recv()
            seen.append(message["type"])
            if message["type"] == "http.disconnect" or not message.get("more_body"):
                return

    with anyio.fail_after(5):
        await BodyReadTimeout(app, seconds=seconds)({"type": "http"}, receive, send)
    return seen


async def test_a_client_that_stops_sending_its_body_is_cut_off() -> None:
    seen = await _run([{"type": "http.request", "body": b"x", "more_body": True}, None], 0.05)
    assert seen == ["http.request", "http.disconnect"]


async def test_a_body_that_arrives_in_time_passes_untouched() -> None:
    chunks = [{"type": "http.request", "body": b"x", "more_body": True}] * 3
    seen = await _run([*chunks, {"type": "http.request", "body": b"", "more_body": False}], 5)
    assert seen == ["http.request"] * 4


async def test_reads_after_the_body_are_not_timed() -> None:
    """Watching for a disconnect during a long answer must not time out."""
    waited = anyio.Event()

    async def receive() -> dict[str, Any]:
        if not waited.is_set():
            waited.set()
            return {"type": "http.request", "body": b"", "more_body": False}
        await anyio.sleep(0.2)  # longer than the deadline
        return {"type": "http.disconnect"}

    async def app(scope: Any, recv: Any, snd: Any) -> None:
        assert (await recv())["type"] == "http.request"
        assert (await recv())["type"] == "http.disconnect"

    async def send(_: Any) -> None:
        return None

    await BodyReadTimeout(app, seconds=0.05)({"type": "http"}, receive, send)
