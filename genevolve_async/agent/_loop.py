"""One rollout, round by round: the primitive ``arun`` and ``stream`` drive.

Each round: (final-step message on the last round) -> model call -> parse ->
either the answer (done), tool calls (run them, all of one turn at once, and
append the observations in call order) or a format/truncation observation.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio
from opentelemetry.trace import INVALID_SPAN, Span

from .. import telemetry
from .._concurrency import run_concurrently
from .._errors import (
    AuthenticationError,
    ConfigurationError,
    GenEvolveError,
    RolloutError,
    classify_exception,
)
from .._offload import parse_foreign
from .._runtime import Runtime
from .._types import JSONObject, Message
from ..policy import ChatReply, PolicyAffinity, PolicyClient
from ..protocol import CallProblem, ReferenceImage, ToolCall, finalize_program, parse_reply
from ..tools import ImageRegistry, SideWork, Tool, ToolContext
from ._config import AgentConfig
from ._events import (
    AgentEvent,
    Answered,
    Finished,
    ModelReplied,
    RoundStarted,
    ToolCallFinished,
    ToolCallStarted,
)
from ._prompts import PromptSet
from ._result import AgentResult

__all__ = ["Emit", "Rollout"]

logger = logging.getLogger("genevolve_async.agent")

Emit = Callable[[AgentEvent], Awaitable[None]]

# Bytes per token used to estimate the request's size before sending it:
# an over-estimate for English (about 4), about right for CJK text.
_BYTES_PER_TOKEN = 3
# The most characters one token can stand for, generously: a reply longer
# than ``max_tokens`` of these is not what the server says it is, whatever
# its ``completion_tokens``, and is cut to that length.
_MAX_CHARS_PER_TOKEN = 16


def _bounded(reply: ChatReply, max_tokens: int) -> tuple[ChatReply, int]:
    """The reply cut to what ``max_tokens`` can hold, and the tokens to charge for it.

    The server's ``completion_tokens`` is only trusted as far as the reply's
    real size allows: a hostile or broken server can answer 5 MB with a count
    of 1, and the rollout keeps every reply in its messages. A server that
    ignores ``max_tokens`` is charged ``max_tokens``, since no more is kept.
    """
    content = reply.content or ""
    limit = max_tokens * _MAX_CHARS_PER_TOKEN
    if len(content) > limit:
        reply = dataclasses.replace(reply, content=content[:limit], finish_reason="length")
        content = reply.content or ""
    floor = -(-len(content) // _MAX_CHARS_PER_TOKEN)
    estimate = reply.usage.completion_tokens or len(content) // 4
    # Never more than was asked for: what is kept of the reply fits max_tokens.
    return reply, min(max(estimate, floor), max_tokens)


class _RolloutLog(logging.LoggerAdapter[logging.Logger]):
    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        extra = dict(kwargs.get("extra") or {})
        extra.setdefault("rollout_id", self.extra["rollout_id"] if self.extra else "")
        kwargs["extra"] = extra
        return f"[{extra['rollout_id']}] {msg}", kwargs


def _tool_response(text: str) -> str:
    return f"<tool_response>\n{text}\n</tool_response>"


class Rollout:
    """The state of one rollout. Made by the agent; call :meth:`execute` once."""

    def __init__(
        self,
        *,
        rollout_id: str,
        prompt: str,
        config: AgentConfig,
        prompts: PromptSet,
        tools: Mapping[str, Tool],
        tool_schemas: list[JSONObject] | None,
        policy: PolicyClient,
        runtime: Runtime,
        seed: int | None,
        max_rounds: int,
        emit: Emit | None,
    ) -> None:
        self.rollout_id = rollout_id
        self.prompt = prompt
        self.config = config
        self.prompts = prompts
        self.tools = tools
        self.tool_schemas = tool_schemas
        self.policy = policy
        self.runtime = runtime
        self.seed = seed
        self.max_rounds = max_rounds
        self.emit = emit
        self.images = ImageRegistry()
        self._side_work: SideWork | None = None
        self.affinity = PolicyAffinity()
        self.calls_used = 0
        self.tool_counts: Counter[str] = Counter()
        self.log = _RolloutLog(logger, {"rollout_id": rollout_id})
        self._fatal: GenEvolveError | None = None
        self._span: Span = INVALID_SPAN
        self.result = AgentResult(rollout_id=rollout_id, prompt=prompt, seed=seed)

    # -- the whole rollout ---------------------------------------------------

    async def execute(self, *, timeout: float | None = None) -> AgentResult:
        """Run to the end; return the record. Only cancellation propagates."""
        with telemetry.rollout_span(
            self.rollout_id,
            model=self.policy.model,
            prompt=self.prompt,
            capture=self.config.capture_content,
        ) as span:
            self._span = span
            return await self._execute(timeout)

    async def _execute(self, timeout: float | None) -> AgentResult:
        result = self.result
        started = time.monotonic()
        try:
            problem = self._check_prompt()
            if problem is not None:
                result.error = RolloutError(kind="invalid_request", message=problem)
            else:
                with anyio.move_on_after(timeout if timeout is not None else float("inf")) as scope:
                    await self._rounds_with_side_work()
                if scope.cancelled_caught:
                    result.termination = "timeout"
                    result.error = RolloutError(
                        kind="timeout", message=f"the rollout exceeded its {timeout:g}s deadline"
                    )
        except anyio.get_cancelled_exc_class():
            result.termination = "cancelled"
            result.error = RolloutError(kind="cancelled", message="the rollout was cancelled")
            self._close_books(started)
            with anyio.move_on_after(1.0, shield=True):
                await self._send(Finished(rollout_id=self.rollout_id, result=result))
            raise
        except Exception as exc:
            result.termination = "error"
            result.error = classify_exception(exc)
            if not isinstance(exc, GenEvolveError):
                self.log.exception("rollout failed unexpectedly")
            else:
                self.log.warning("rollout failed: %s", result.error)
        self._close_books(started)
        await self._send(Finished(rollout_id=self.rollout_id, result=result))
        return result

    async def _rounds_with_side_work(self) -> None:
        # Tools' side work (image files being written) belongs to the
        # rollout: it ends, or is cancelled, with it.
        failure: Exception | None = None
        async with anyio.create_task_group() as side:
            self._side_work = SideWork(side)
            try:
                await self._rounds()
            except Exception as exc:  # raised below, not wrapped in a group
                failure = exc
                side.cancel_scope.cancel()
        if failure is not None:
            raise failure

    def _close_books(self, started: float) -> None:
        self.result.timings.total = time.monotonic() - started
        self.result.tool_calls = dict(self.tool_counts)
        # Every image the policy was shown, for exports that keep the whole trajectory.
        self.result.registered_images = [
            ReferenceImage(
                img_id=r.img_id,
                local_path=r.local_path,
                url=r.url,
                title=r.title,
                page_url=r.page_url,
            )
            for r in self.images
        ]
        telemetry.rollout_finished(self._span, self.result, capture=self.config.capture_content)

    def _check_prompt(self) -> str | None:
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            return "the request is empty"
        estimate = len(self.prompt.encode("utf-8", "replace")) // _BYTES_PER_TOKEN
        if estimate > self.config.max_prompt_tokens:
            return (
                f"the request is about {estimate} tokens, over the prompt budget of "
                f"{self.config.max_prompt_tokens} tokens"
            )
        return None

    async def _send(self, event: AgentEvent) -> None:
        if self.emit is not None:
            await self.emit(event)

    # -- rounds --------------------------------------------------------------

    async def _rounds(self) -> None:
        cfg = self.config
        result = self.result
        messages: list[Message] = [
            {"role": "system", "content": self.prompts.system},
            {"role": "user", "content": self.prompt},
        ]
        result.messages = messages
        remaining = cfg.max_response_tokens
        for rnd in range(1, self.max_rounds + 1):
            # The last round, or the last one the response budget can pay for.
            final = rnd == self.max_rounds or remaining <= cfg.max_tokens_per_round
            with telemetry.round_span(rnd, final=final):
                if final:
                    messages.append({"role": "user", "content": self.prompts.final_step})
                await self._send(RoundStarted(rollout_id=self.rollout_id, round=rnd, final=final))
                max_tokens = max(1, min(cfg.max_tokens_per_round, remaining))
                reply, used = _bounded(
                    await self._call_model(messages, rnd, max_tokens), max_tokens
                )
                remaining -= used
                messages.append(self._assistant_message(reply))
                parsed = await parse_foreign(
                    parse_reply, reply.content, reply.tool_calls, round_index=rnd
                )

                if parsed.answer is not None:
                    if self._side_work is not None:  # references must be files before the answer
                        await self._side_work.settle()
                    program = finalize_program(
                        parsed.answer, self.images.get, max_references=cfg.n_max_reference_images
                    )
                    result.gen_prompt = program.gen_prompt
                    result.reference_images = list(program.reference_images)
                    result.termination = "answer"
                    result.error = None
                    await self._send(
                        Answered(
                            rollout_id=self.rollout_id,
                            round=rnd,
                            gen_prompt=program.gen_prompt,
                            reference_images=program.reference_images,
                        )
                    )
                    return
                if final:
                    if parsed.has_calls:
                        result.termination = "max_rounds_reached"
                        message = f"no answer after {rnd} rounds: the final round asked for tools"
                    else:
                        result.termination = "no_answer"
                        message = f"the final round had no parseable answer ({self._format_detail(parsed, reply)})"
                    result.error = RolloutError(kind="no_answer", message=message)
                    return
                if parsed.has_calls:
                    native = bool(reply.tool_calls)
                    observations = await self._run_turn(rnd, list(parsed.calls))
                    messages.extend(self._observation_messages(parsed.calls, observations, native))
                    if self._fatal is not None:
                        raise self._fatal
                    continue
                if reply.finish_reason == "length":
                    text = self.prompts.truncated
                else:
                    text = self.prompts.format_error_text(self._format_detail(parsed, reply))
                messages.append({"role": "user", "content": _tool_response(text)})
        result.termination = "max_rounds_reached"  # unreachable: the final round returns

    @staticmethod
    def _format_detail(parsed: Any, reply: ChatReply) -> str:
        if parsed.answer_problem:
            return str(parsed.answer_problem)
        if parsed.notes:
            return "; ".join(parsed.notes)
        if reply.finish_reason == "length":
            return "the reply was cut at the token limit"
        return "neither a <tool_call> nor an <answer> block was found"

    async def _call_model(self, messages: list[Message], rnd: int, max_tokens: int) -> ChatReply:
        cfg = self.config
        started = time.monotonic()
        model = self.policy.model
        with telemetry.model_call_span(
            model, max_tokens=max_tokens, temperature=cfg.temperature, top_p=cfg.top_p, seed=self.seed
        ) as span:
            reply = await self.policy.complete(
                messages,
                affinity=self.affinity,
                max_tokens=max_tokens,
                temperature=cfg.temperature,
                top_p=cfg.top_p,
                seed=self.seed,
                tools=self.tool_schemas,
                extra_body=cfg.extra_body,
            )
            seconds = time.monotonic() - started
            telemetry.model_replied(
                span, reply, model=model, seconds=seconds, capture=cfg.capture_content
            )
        self.result.timings.model += seconds
        self.result.rounds = rnd
        self.result.usage.rounds.append(reply.usage)
        if self.emit is not None:
            await self.emit(
                ModelReplied(
                    rollout_id=self.rollout_id,
                    round=rnd,
                    content=reply.content,
                    finish_reason=reply.finish_reason,
                    usage=reply.usage,
                    seconds=seconds,
                    endpoint=reply.endpoint,
                )
            )
        return reply

    @staticmethod
    def _assistant_message(reply: ChatReply) -> Message:
        # Stripped, as the original kept it: the history the released policy
        # was trained on, and the same request bytes round after round.
        message: Message = {"role": "assistant", "content": (reply.content or "").strip()}
        if reply.tool_calls:
            message["tool_calls"] = reply.tool_calls
        return message

    @staticmethod
    def _observation_messages(
        calls: tuple[ToolCall | CallProblem, ...], observations: list[str], native: bool
    ) -> list[Message]:
        if native:
            # vLLM's chat template renders tool messages as <tool_response>
            # blocks inside a user turn: the same text the policy was trained on.
            return [
                {"role": "tool", "tool_call_id": call.id, "content": obs}
                for call, obs in zip(calls, observations, strict=True)
            ]
        body = "\n".join(_tool_response(obs) for obs in observations)
        return [{"role": "user", "content": body}]

    # -- tool turns ----------------------------------------------------------

    def _screen(self, call: ToolCall | CallProblem) -> str | None:
        """The observation for a call that will not run, or None to run it."""
        if isinstance(call, CallProblem):
            name = f" to {call.name!r}" if call.name else ""
            return f"Error: the tool call{name} could not be used: {call.detail}."
        if call.name not in self.tools:
            return (
                f"Error: there is no tool named {call.name[:80]!r}. "
                f"Available tools: {', '.join(sorted(self.tools))}."
            )
        if self.calls_used >= self.config.max_tool_calls:
            return (
                f"Error: the tool-call budget is used up (at most {self.config.max_tool_calls} "
                "tool calls per request). Give your final <answer> now."
            )
        self.calls_used += 1
        return None

    async def _run_turn(self, rnd: int, calls: list[ToolCall | CallProblem]) -> list[str]:
        started = time.monotonic()
        observations = [""] * len(calls)
        runnable: list[ToolCall] = []
        for call in calls:
            refusal = self._screen(call)
            if refusal is None and isinstance(call, ToolCall):
                runnable.append(call)
            else:
                observations[call.index] = refusal or ""
                await self._announce_refusal(rnd, call, observations[call.index])
        done = [anyio.Event() for _ in runnable]
        if len(runnable) == 1:
            observations[runnable[0].index] = await self._run_call(rnd, runnable[0], None, done[0])
        elif runnable:
            limiter = anyio.CapacityLimiter(self.config.max_tool_concurrency)

            async def run_one(item: tuple[int, ToolCall]) -> None:
                i, call = item
                async with limiter:
                    observations[call.index] = await self._run_call(
                        rnd, call, done[i - 1] if i else None, done[i]
                    )

            await run_concurrently(run_one, list(enumerate(runnable)))
        self.result.timings.tools += time.monotonic() - started
        return observations

    async def _announce_refusal(self, rnd: int, call: ToolCall | CallProblem, text: str) -> None:
        if self.emit is None:
            return
        name = call.name or "<invalid>"
        arguments = call.arguments if isinstance(call, ToolCall) else {}
        await self.emit(
            ToolCallStarted(
                rollout_id=self.rollout_id,
                round=rnd,
                index=call.index,
                call_id=call.id,
                name=name,
                arguments=arguments,
            )
        )
        await self.emit(
            ToolCallFinished(
                rollout_id=self.rollout_id,
                round=rnd,
                index=call.index,
                call_id=call.id,
                name=name,
                observation=text,
                ok=False,
                seconds=0.0,
            )
        )

    async def _run_call(
        self, rnd: int, call: ToolCall, previous: anyio.Event | None, done: anyio.Event
    ) -> str:
        tool = self.tools[call.name]
        self.tool_counts[call.name] += 1
        context = ToolContext(
            rollout_id=self.rollout_id,
            runtime=self.runtime,
            images=self.images,
            call_index=call.index,
            seed=self.seed,
            logger=self.log,
            previous_done=previous,
            side_work=self._side_work,
        )
        if self.emit is not None:
            await self.emit(
                ToolCallStarted(
                    rollout_id=self.rollout_id,
                    round=rnd,
                    index=call.index,
                    call_id=call.id,
                    name=call.name,
                    arguments=call.arguments,
                )
            )
        started = time.monotonic()
        capture = self.config.capture_content
        with telemetry.tool_call_span(call.name, call.id, call.arguments, capture=capture) as span:
            observation, error_kind = await self._call_tool(tool, call, context, done)
            telemetry.tool_finished(
                span,
                call.name,
                ok=error_kind is None,
                error_kind=error_kind,
                observation=observation,
                capture=capture,
            )
        ok = error_kind is None
        if self.emit is not None:
            await self.emit(
                ToolCallFinished(
                    rollout_id=self.rollout_id,
                    round=rnd,
                    index=call.index,
                    call_id=call.id,
                    name=call.name,
                    observation=observation,
                    ok=ok,
                    seconds=time.monotonic() - started,
                )
            )
        return observation

    async def _call_tool(
        self, tool: Tool, call: ToolCall, context: ToolContext, done: anyio.Event
    ) -> tuple[str, str | None]:
        """The observation, and the error's kind when the tool failed."""
        try:
            # A user's tool may return something else despite its annotation.
            outcome: object = await tool(call.arguments, context)
            return (outcome if isinstance(outcome, str) else str(outcome)), None
        except (AuthenticationError, ConfigurationError) as exc:
            # Every later call would fail the same way: end the rollout after this turn.
            self._fatal = self._fatal or exc
            return f"Error: {call.name} failed: {exc}", classify_exception(exc).kind
        except Exception as exc:
            error = classify_exception(exc)
            if error.kind == "internal":
                self.log.warning("tool %s raised %s", call.name, error.message, exc_info=exc)
            return f"Error: {call.name} failed: {error.message}", error.kind
        finally:
            done.set()
