"""The async judge client: SPEC section 5's chat completion, rate-limited and retried.

One request per sample: the rubric, the request text, Image 1 (generated)
and Image 2 (ground truth) as JPEG data URIs encoded in worker threads. All
clients of a runtime share one limiter (a burst-free requests-per-minute
bucket plus an in-flight cap), so every item of a batch draws from the same
budget, retries included. Transient failures (429, 5xx, timeouts, connection
errors) and replies without usable scores are tried again, up to
``max_tries`` times with capped exponential backoff.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread

from .._errors import BadResponseError, ConfigurationError, ServiceUnavailableError
from .._lazy import import_off_loop
from .._limits import ProviderLimiter, ProviderLimits
from .._offload import parse_foreign
from .._provider_call import Attempt, Provider, RetryElsewhere, call_provider
from .._retry import RetryPolicy
from .._runtime import Runtime
from .._sdk_http import sdk_http_client
from .._status import redact_url, sdk_status_error
from ._images import encode_judge_image
from ._messages import DEFAULT_JUDGE_USER_TEMPLATE, build_judge_messages
from ._parse import JudgeParseError, JudgeScores, parse_judge_reply
from ._rubric import DEFAULT_RUBRIC
from ._scoring import SampleScores, normalize_scores

__all__ = ["DEFAULT_JUDGE_MODEL", "JUDGE_SERVICE", "JudgeClient", "JudgeVerdict"]

JUDGE_SERVICE = "judge"
"""Provider name of the judge in the runtime's statistics and limiter."""

DEFAULT_JUDGE_MODEL = "gemini-3.1-pro-preview"
"""The judge model the paper's numbers were scored with."""

_TEMPERATURE = 0.0
_MAX_TOKENS = 8192
_MAX_DELAY = 10.0


class _UnusableReply(RetryElsewhere):
    """A reply without usable scores: worth asking again, so it rides the retry policy."""


@dataclass(kw_only=True, slots=True, frozen=True)
class JudgeVerdict:
    """One sample's judgement."""

    scores: SampleScores
    """Clipped, rounded scores and the per-sample overall."""
    rationale: str
    """The judge's justification ("" when it gave none)."""
    attempts: int
    """Requests it took (1 when the first answer was usable)."""


class JudgeClient:
    """Scores generated images against ground truth with an OpenAI-compatible judge.

    Args:
        runtime: The open runtime; it owns the SDK client and the shared limiter.
        base_url: The judge endpoint (OpenAI-compatible, ending in ``/v1`` or
            the provider's equivalent). Always passed explicitly, so the SDK
            never falls back to ``OPENAI_BASE_URL`` (the policy's server).
        api_key: The judge's key; never logged or shown.
        model: The judge model.
        rpm: Requests per minute for all judge calls of the runtime (``None``: no limit).
        max_in_flight: Judge requests under way at once, for the whole runtime.
        timeout: Seconds for one request.
        max_tries: Tries per sample, the first included.
        rubric: The system message (default: our rubric, ``DEFAULT_RUBRIC``).
        user_template: The user message's text, ``{sample_id}`` and
            ``{request}`` filled (default: ``DEFAULT_JUDGE_USER_TEMPLATE``).

    Raises:
        ConfigurationError: A bad URL or limit.

    Example::

        async with Runtime() as runtime:
            judge = JudgeClient(runtime, base_url=url, api_key=key, rpm=60)
            scores = await judge.judge("12", "a red fox", "gen/12.png", "gt/12.jpg")
    """

    def __init__(
        self,
        runtime: Runtime,
        *,
        base_url: str,
        api_key: str,
        model: str = DEFAULT_JUDGE_MODEL,
        rpm: float | None = None,
        max_in_flight: int | None = 16,
        timeout: float = 300.0,
        max_tries: int = 20,
        rubric: str | None = None,
        user_template: str | None = None,
    ) -> None:
        url = (base_url or "").strip().rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ConfigurationError(f"the judge base URL must be http(s), got {redact_url(url)!r}")
        if rpm is not None and rpm <= 0:
            raise ConfigurationError("the judge's rpm must be positive")
        if max_in_flight is not None and max_in_flight < 1:
            raise ConfigurationError("the judge's max_in_flight must be at least 1")
        if max_tries < 1 or timeout <= 0:
            raise ConfigurationError("the judge needs max_tries >= 1 and a positive timeout")
        self.runtime = runtime
        self.base_url = url
        self.model = model
        self.rubric = rubric if rubric is not None else DEFAULT_RUBRIC
        self.user_template = (
            user_template if user_template is not None else DEFAULT_JUDGE_USER_TEMPLATE
        )
        self.timeout = timeout
        self.limits = ProviderLimits(
            rate=rpm / 60.0 if rpm is not None else None, max_in_flight=max_in_flight
        )
        self._api_key = api_key or "EMPTY"
        base = runtime.retry
        self.retry = RetryPolicy(
            attempts=max_tries,
            initial=base.initial,
            max_delay=_MAX_DELAY,
            exp_base=base.exp_base,
            jitter=base.jitter,
            honour_retry_after=base.honour_retry_after,
            max_retry_after=base.max_retry_after,
            sleep=base.sleep,
            rng=base.rng,
        )
        # A judgement is a stateless completion: safe to ask again.
        self._provider = Provider(
            name=JUDGE_SERVICE, secrets=(self._api_key,), safe_to_repeat=True, retry=self.retry
        )

    def __repr__(self) -> str:  # never the key
        return f"JudgeClient(model={self.model!r}, base_url={redact_url(self.base_url)!r})"

    async def limiter(self) -> ProviderLimiter:
        """The runtime's judge limiter, made on first use with this client's limits.

        Raises:
            ConfigurationError: The runtime's judge limiter has other limits.
        """
        return self.runtime.limiter(JUDGE_SERVICE, self.limits)

    async def judge(
        self,
        sample_id: str,
        request: str,
        generated_path: str | os.PathLike[str],
        ground_truth_path: str | os.PathLike[str],
    ) -> SampleScores:
        """Score one sample; see :meth:`judge_sample` (this returns the scores only)."""
        verdict = await self.judge_sample(sample_id, request, generated_path, ground_truth_path)
        return verdict.scores

    async def judge_sample(
        self,
        sample_id: str,
        request: str,
        generated_path: str | os.PathLike[str],
        ground_truth_path: str | os.PathLike[str],
    ) -> JudgeVerdict:
        """Score one sample.

        Args:
            sample_id: The row's id, shown to the judge.
            request: The original image request.
            generated_path: The generated image (Image 1).
            ground_truth_path: The ground-truth image (Image 2).

        Returns:
            The normalised scores, the rationale and the number of requests.

        Raises:
            JudgeImageError: An image cannot be read.
            AuthenticationError: The endpoint refused the key.
            ServiceError: The judge failed for good, or never gave usable scores.
        """
        generated, ground_truth = await self._encode(generated_path, ground_truth_path)
        messages = build_judge_messages(
            rubric=self.rubric,
            sample_id=sample_id,
            request=request,
            generated_uri=generated,
            ground_truth_uri=ground_truth,
            user_template=self.user_template,
        )
        limiter = await self.limiter()
        attempts = 0

        async def send(attempt: Attempt) -> JudgeScores:
            nonlocal attempts
            attempts = attempt.number
            text = await self._complete(await self._client(), messages)
            try:
                return await parse_foreign(parse_judge_reply, text)
            except JudgeParseError as exc:
                raise _UnusableReply(str(exc), service=JUDGE_SERVICE) from exc

        # The SDK client is made once, before the first slot is taken, so that
        # the limiter's grants track sends.
        await self._client()
        try:
            parsed = await call_provider(self.runtime, self._provider, send, limiter=limiter)
        except _UnusableReply as exc:
            raise BadResponseError(
                f"no usable scores after {attempts} tries: {exc}", service=JUDGE_SERVICE
            ) from exc
        return JudgeVerdict(
            scores=normalize_scores(parsed), rationale=parsed.rationale, attempts=attempts
        )

    async def _encode(
        self, generated: str | os.PathLike[str], ground_truth: str | os.PathLike[str]
    ) -> tuple[str, str]:
        # JPEG encoding of a large image takes tens of milliseconds: never on the loop.
        # One after the other, so a bad file raises plainly (not inside a group).
        first = await anyio.to_thread.run_sync(encode_judge_image, generated)
        second = await anyio.to_thread.run_sync(encode_judge_image, ground_truth)
        return first, second

    async def _client(self) -> Any:
        fingerprint = hashlib.sha256(self._api_key.encode()).hexdigest()[:12]

        async def factory() -> Any:
            # Off the loop: importing the SDK would stall every task for half a second.
            openai = await import_off_loop("openai", "openai.resources.chat")
            return openai.AsyncOpenAI(
                base_url=self.base_url,
                api_key=self._api_key,
                max_retries=0,  # our retry policy decides, with the limiter in the loop
                timeout=self.timeout,
                http_client=await sdk_http_client(self.runtime),
            )

        return await self.runtime.resource(
            f"judge.openai:{self.base_url}:{fingerprint}", factory, close=lambda c: c.close()
        )

    async def _complete(self, client: Any, messages: list[dict[str, Any]]) -> str:
        import openai

        where = f"{JUDGE_SERVICE} {redact_url(self.base_url)}"
        try:
            # The SDK's timeout bounds each read, not the call: a body trickling in
            # would hold the sample (and its limiter slot) for as long as it trickles.
            with anyio.fail_after(self.timeout):
                completion = await client.chat.completions.create(
                    model=self.model,
                    messages=messages,
                    temperature=_TEMPERATURE,
                    max_tokens=_MAX_TOKENS,
                )
        except openai.APIStatusError as exc:
            raise sdk_status_error(exc, service=JUDGE_SERVICE, where=where) from None
        except (openai.APITimeoutError, TimeoutError):
            raise ServiceUnavailableError(
                f"{where} timed out after {self.timeout:g}s", service=JUDGE_SERVICE
            ) from None
        except openai.APIConnectionError:
            raise ServiceUnavailableError(
                f"{where}: connection failed", service=JUDGE_SERVICE
            ) from None
        except openai.APIError as exc:
            raise _UnusableReply(
                f"{where} answered something unreadable: {type(exc).__name__}",
                service=JUDGE_SERVICE,
            ) from None
        choices = getattr(completion, "choices", None) or []
        content = choices[0].message.content if choices else None
        if not isinstance(content, str) or not content.strip():
            raise _UnusableReply(f"{where} answered an empty message", service=JUDGE_SERVICE)
        return content
