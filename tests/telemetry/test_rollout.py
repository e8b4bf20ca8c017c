"""One rollout's spans and measurements, against the simulated backends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from genevolve_async.sim import SimConfig, SimStack
from genevolve_async.telemetry import tracer, use_providers

from .conftest import POLICY_KEY, SERPER_KEY, Otel, fast_runtime, make_agent

Metrics = dict[str, list[tuple[dict[str, Any], Any]]]


def _by_id(spans: list[ReadableSpan]) -> dict[int, ReadableSpan]:
    return {s.context.span_id: s for s in spans}


def _provider(span: ReadableSpan) -> str | None:
    return (span.attributes or {}).get("genevolve.provider")  # type: ignore[return-value]


def _gained(earlier: Metrics, now: Metrics, name: str, key: str) -> dict[str, float]:
    """How much an observable counter grew since ``earlier``, by attribute ``key``."""
    old = {a[key]: p.value for a, p in earlier.get(name, [])}
    return {a[key]: p.value - old.get(a[key], 0) for a, p in now[name]}


def _parent(span: ReadableSpan, spans: dict[int, ReadableSpan]) -> ReadableSpan | None:
    return spans.get(span.parent.span_id) if span.parent is not None else None


async def test_one_rollout_is_one_tree(otel: Otel, stack: SimStack, tmp_path: Path) -> None:
    async with fast_runtime() as runtime:
        result = await make_agent(stack, runtime, tmp_path).arun("a red fox in snow")
    assert result.termination == "answer"
    spans = otel.finished()
    by_id = _by_id(spans)
    assert len({s.context.trace_id for s in spans}) == 1
    (root,) = [s for s in spans if s.parent is None]
    assert root.name == "invoke_agent genevolve"
    attrs = root.attributes or {}
    assert attrs["gen_ai.operation.name"] == "invoke_agent"
    assert attrs["gen_ai.conversation.id"] == result.rollout_id
    assert attrs["gen_ai.request.model"] == "GenEvolve"
    assert attrs["genevolve.termination"] == "answer"
    assert attrs["genevolve.rounds"] == result.rounds == 4
    assert attrs["gen_ai.usage.output_tokens"] == sum(
        u.completion_tokens for u in result.usage.rounds
    )

    rounds = sorted(
        (s for s in spans if s.name.startswith("round ")), key=lambda s: s.start_time or 0
    )
    assert [s.name for s in rounds] == ["round 1", "round 2", "round 3", "round 4"]
    assert all(_parent(s, by_id) is root for s in rounds)
    assert "genevolve.round.final" not in (rounds[-1].attributes or {})  # answered before the end

    chats = [s for s in spans if s.name == "chat GenEvolve"]
    assert len(chats) == 4
    for chat in chats:
        assert chat.kind is SpanKind.CLIENT
        assert _parent(chat, by_id) in rounds
        a = chat.attributes or {}
        assert a["gen_ai.operation.name"] == "chat"
        assert a["gen_ai.request.max_tokens"] > 0
        assert a["gen_ai.usage.input_tokens"] > 0
        assert a["gen_ai.response.finish_reasons"] == ("stop",)
        # The model call's span is the policy's provider-call span too: the replica is on it.
        assert a["server.address"] == "127.0.0.1" and a["server.port"] > 0
        assert not [s for s in spans if _parent(s, by_id) is chat]

    tools = {s.name: s for s in spans if s.name.startswith("execute_tool ")}
    assert set(tools) == {
        "execute_tool search",
        "execute_tool image_search",
        "execute_tool query_knowledge",
    }
    for name, span in tools.items():
        a = span.attributes or {}
        assert a["gen_ai.tool.name"] == name.split()[1]
        assert "error.type" not in a
        assert _parent(span, by_id) in rounds
    serper_calls = [s for s in spans if _provider(s) == "serper"]
    assert len(serper_calls) >= 2  # the web search's queries and the image search
    assert all(_parent(s, by_id).name.startswith("execute_tool") for s in serper_calls)  # type: ignore[union-attr]
    assert all(s.status.status_code is not StatusCode.ERROR for s in spans)


async def test_metrics_of_a_rollout(otel: Otel, stack: SimStack, tmp_path: Path) -> None:
    earlier = otel.metrics()  # runtimes closed by earlier tests left their counts (process-wide)

    async with fast_runtime() as runtime:
        agent = make_agent(stack, runtime, tmp_path)
        await agent.arun("a red fox in snow")
        await agent.arun("a lighthouse at dusk")
        during = otel.metrics()
    after = otel.metrics()  # the runtime closed: its counts are kept
    rollouts = dict((a["genevolve.termination"], p.value) for a, p in during["genevolve.rollouts"])
    assert rollouts == {"answer": 2}
    (duration,) = during["genevolve.rollout.duration"]
    assert duration[1].count == 2
    assert sum(p.count for _, p in during["genevolve.round.duration"]) == 8
    tools = {
        (a["gen_ai.tool.name"], a["genevolve.outcome"]): p.value
        for a, p in during["genevolve.tool.calls"]
    }
    assert tools == {("search", "ok"): 2, ("image_search", "ok"): 2, ("query_knowledge", "ok"): 2}
    tokens = {a["gen_ai.token.type"]: p.value for a, p in during["genevolve.tokens"]}
    assert tokens["input"] > 0 and tokens["output"] > 0
    requests = _gained(earlier, during, "genevolve.provider.requests", "genevolve.provider")
    assert requests["policy"] == 8
    assert requests["serper"] >= 2
    images = _gained(earlier, after, "genevolve.image_cache.requests", "genevolve.outcome")
    assert images["downloaded"] + images["hit"] + images["joined"] >= 5
    ((_, stored),) = after["genevolve.image_cache.bytes"]
    assert stored.value > 0
    in_flight = during["genevolve.replica.in_flight"]
    assert [(a["genevolve.provider"], p.value) for a, p in in_flight] == [("policy", 0)]


async def test_failing_provider_call_shows_its_retries(otel: Otel, tmp_path: Path) -> None:
    earlier = otel.metrics()
    config = SimConfig(model_latency=0.001, spread=0.0, policy_faults={"rate_429": 1.0})
    async with SimStack(config) as sims, fast_runtime(attempts=3) as runtime:
        result = await make_agent(sims, runtime, tmp_path).arun("a red fox in snow")
        metrics = otel.metrics()
    assert result.termination == "error"
    spans = otel.finished()
    (call,) = [s for s in spans if s.name == "chat GenEvolve"]  # also the provider call
    retries = [e for e in call.events if e.name == "genevolve.retry"]
    assert [(e.attributes or {})["genevolve.retry.attempt"] for e in retries] == [1, 2]
    assert all((e.attributes or {})["http.response.status_code"] == 429 for e in retries)
    a = call.attributes or {}
    assert a["genevolve.provider.attempts"] == 3
    assert a["error.type"] == "RateLimitedError"
    assert call.status.status_code is StatusCode.ERROR
    (root,) = [s for s in spans if s.parent is None]
    assert (root.attributes or {})["error.type"] == "rate_limited"
    retried = _gained(earlier, metrics, "genevolve.provider.retries", "genevolve.provider")
    limited = _gained(earlier, metrics, "genevolve.provider.rate_limited", "genevolve.provider")
    # Three answers were 429: two retried, and the last one that ended the call.
    assert retried["policy"] == 2 and limited["policy"] == 3


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _strings(v)]
    return [str(value)]


async def test_no_secrets_or_prompt_text(otel: Otel, stack: SimStack, tmp_path: Path) -> None:
    prompt = "a unique-prompt-marker fox"
    async with fast_runtime() as runtime:
        await make_agent(stack, runtime, tmp_path).arun(prompt)
    data = otel.reader.get_metrics_data()
    assert data is not None
    texts = _strings(data.to_json())
    for span in otel.finished():
        texts += _strings(span.to_json())
    blob = "\n".join(texts)
    assert "gen_ai.tool.name" in blob and "genevolve.rollout.duration" in blob  # the scan saw them
    assert POLICY_KEY not in blob and SERPER_KEY not in blob
    assert "unique-prompt-marker" not in blob
    assert "?" not in "".join(str(s.attributes.get("server.address", "")) for s in otel.finished())  # type: ignore[union-attr]


async def test_content_capture_is_opt_in(otel: Otel, stack: SimStack, tmp_path: Path) -> None:
    async with fast_runtime() as runtime:
        await make_agent(stack, runtime, tmp_path, capture_content=True).arun(
            "a unique-prompt-marker fox"
        )
    spans = otel.finished()
    (root,) = [s for s in spans if s.parent is None]
    assert "unique-prompt-marker" in str((root.attributes or {})["gen_ai.input.messages"])
    search = next(s for s in spans if s.name == "execute_tool search")
    assert "gen_ai.tool.call.arguments" in (search.attributes or {})
    blob = "".join(s.to_json() for s in spans)
    assert POLICY_KEY not in blob and SERPER_KEY not in blob


async def test_rollout_is_a_child_of_the_current_span(
    otel: Otel, stack: SimStack, tmp_path: Path
) -> None:
    outer = otel.tracer_provider.get_tracer("test")
    async with fast_runtime() as runtime:
        with outer.start_as_current_span("request") as request:
            await make_agent(stack, runtime, tmp_path).arun("a red fox")
    root = next(s for s in otel.finished() if s.name == "invoke_agent genevolve")
    assert root.parent is not None and root.parent.span_id == request.get_span_context().span_id


def test_nothing_is_made_without_an_sdk() -> None:
    with use_providers(None, None):
        assert tracer() is None


async def test_sampled_out_rollouts_leave_no_orphans(stack: SimStack, tmp_path: Path) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    spans = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(0.5)))
    provider.add_span_processor(SimpleSpanProcessor(spans))
    with use_providers(provider, None):
        async with fast_runtime() as runtime:
            agent = make_agent(stack, runtime, tmp_path)
            for i in range(8):
                await agent.arun(f"fox {i}")
    traces: dict[int, list[ReadableSpan]] = {}
    for span in spans.get_finished_spans():
        traces.setdefault(span.context.trace_id, []).append(span)
    assert len(traces) <= 8
    for members in traces.values():  # a kept rollout is whole; a dropped one left nothing
        names = sorted(s.name for s in members)
        assert names.count("invoke_agent genevolve") == 1
        assert names.count("chat GenEvolve") == 4 and names.count("round 1") == 1
