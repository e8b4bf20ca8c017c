"""Checks made before a batch starts: is every endpoint there, and can the judge stage run?

A batch against a server that is not listening used to wait out every
item's retries and then report ``0 ok``. Here each configured endpoint gets
one cheap request (a policy's ``GET /models``, a Qwen service's ``GET
/health``, the judge's and Serper's roots) with a few seconds' bound, all at
once, and a dead one stops the command with a message naming the URL and
what answered. The checks go through the runtime's aiohttp session: they
are not hot paths, and any HTTP answer counts as a sign of life where the
endpoint has no health route of its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import aiohttp
import anyio

from .._errors import ConfigurationError
from .._runtime import Runtime
from .._status import redact_url
from ._inputs import BadRow, InputSource, aiter_entries
from ._text import plural

__all__ = [
    "Endpoint",
    "PreflightError",
    "batch_endpoints",
    "check_endpoints",
    "check_ground_truth",
]

DEFAULT_TIMEOUT = 5.0
"""Seconds each check may take: a live server answers a GET in far less."""

Strictness = Literal["ok", "key", "any"]
"""Which answers pass: ``ok`` needs a 2xx, ``key`` anything but 401/403, ``any`` any answer."""


class PreflightError(ConfigurationError):
    """An endpoint did not answer before the batch started (the message says which and how)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Endpoint:
    """One endpoint to check, and how its answer is read."""

    role: str
    """What it is, as the message says it: ``policy``, ``Qwen service``, ``judge``, ``Serper``."""
    url: str
    """The URL requested (with ``GET``)."""
    flag: str
    """The flag or variable that sets it, for the hint."""
    passes: Strictness = "ok"
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    hint_404: str = ""
    """Said when the answer is 404 (a wrong path, say)."""

    @staticmethod
    def policy(base_url: str, api_key: str) -> Endpoint:
        return Endpoint(
            role="policy",
            url=base_url.rstrip("/") + "/models",
            flag="--base-url / OPENAI_BASE_URL",
            headers={"Authorization": f"Bearer {api_key}"},
            hint_404="an OpenAI-compatible base URL ends in /v1",
        )

    @staticmethod
    def qwen(service_url: str) -> Endpoint:
        return Endpoint(
            role="Qwen service", url=service_url.rstrip("/") + "/health", flag="--service-url"
        )

    @staticmethod
    def judge(base_url: str, api_key: str) -> Endpoint:
        # Gateways differ in what they serve besides chat completions: only
        # silence or a refused key is surely wrong.
        return Endpoint(
            role="judge",
            url=base_url.rstrip("/") + "/models",
            flag="--judge-base-url / GENEVOLVE_JUDGE_BASE_URL",
            passes="key",
            headers={"Authorization": f"Bearer {api_key}"},
        )

    @staticmethod
    def serper(base_url: str) -> Endpoint:
        return Endpoint(role="Serper", url=base_url, flag="SERPER_BASE_URL", passes="any")


async def check_endpoints(
    runtime: Runtime, endpoints: Iterable[Endpoint], *, timeout: float = DEFAULT_TIMEOUT
) -> None:
    """Check every endpoint at once; return when all pass.

    Raises:
        PreflightError: One or more did not; the message has a line for each.
    """
    unique = list({(e.role, e.url): e for e in endpoints}.values())
    problems: dict[int, str] = {}

    async def check(index: int, endpoint: Endpoint) -> None:
        problem = await _check(runtime, endpoint, timeout)
        if problem is not None:
            problems[index] = problem

    async with anyio.create_task_group() as tg:
        for index, endpoint in enumerate(unique):
            tg.start_soon(check, index, endpoint)
    if problems:
        lines = [problems[i] for i in sorted(problems)]
        raise PreflightError(
            "an endpoint is not usable, so nothing was started:\n  "
            + "\n  ".join(lines)
            + "\n  (--no-preflight skips these checks)"
        )


async def _check(runtime: Runtime, endpoint: Endpoint, timeout: float) -> str | None:
    shown = redact_url(endpoint.url)
    where = f"{endpoint.role} endpoint {shown}"
    try:
        with anyio.fail_after(timeout):
            async with runtime.http.get(
                endpoint.url, headers=endpoint.headers, allow_redirects=False
            ) as resp:
                status, kind = resp.status, resp.content_type
                await resp.read()
    except TimeoutError:
        return f"{where}: no answer within {timeout:g} s (set by {endpoint.flag})"
    except (aiohttp.ClientError, OSError) as exc:
        reason = _connection_reason(exc)
        return f"{where}: {reason}; is the server running? (set by {endpoint.flag})"
    except ValueError as exc:  # not a URL aiohttp can request
        return f"{where}: unusable URL ({exc}) (set by {endpoint.flag})"
    if endpoint.passes == "any" or 200 <= status < 300:
        return None
    answered = f"answered HTTP {status} ({kind or 'no content type'})"
    if status in (401, 403):
        return f"{where} {answered}: it refused the key"
    if endpoint.passes == "key":
        return None
    hint = f"; {endpoint.hint_404}" if status == 404 and endpoint.hint_404 else ""
    return f"{where} {answered}{hint} (set by {endpoint.flag})"


def _connection_reason(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        cause = exc.os_error
        if isinstance(cause, ConnectionRefusedError):
            return "nothing answered (connection refused)"
        text = cause.strerror or str(cause) if isinstance(cause, OSError) else str(cause)
        return f"nothing answered ({(text or type(cause).__name__).lower()})"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the connection was closed without an answer"
    return f"no answer ({type(exc).__name__}: {exc})"


async def check_ground_truth(source: InputSource, *, limit: int | None = None) -> None:
    """Refuse a judged run in which no row's ``gt_image`` names an existing file.

    The judge compares each generated image with its row's ground truth,
    so without one not a single item can be scored: say so before any
    rollout or render is spent. A run where some rows have it goes ahead;
    the others fail one by one with the reason.

    Args:
        source: The input rows.
        limit: Rows to look at, at most (``None``: all of them, stopping at
            the first that passes).

    Raises:
        ConfigurationError: No row names a ground-truth image that exists.
    """
    rows = named = 0
    first_missing: Path | None = None
    async for entry in aiter_entries(source):
        if isinstance(entry, BadRow):
            continue
        rows += 1
        if entry.gt_path is not None:
            named += 1
            if await anyio.Path(entry.gt_path).is_file():
                return
            first_missing = first_missing or entry.gt_path
        if limit is not None and rows >= limit:
            break
    if rows == 0:
        return  # nothing to judge: the batch says so itself
    where = str(source.path) if source.path is not None else "--prompt"
    if named == 0:
        which = "the row" if rows == 1 else f"none of the {rows} rows"
        raise ConfigurationError(
            f"the judge compares each image with its row's ground truth, and {which} of "
            f"{where} names {'none' if rows == 1 else 'one'} (a 'gt_image' field: a path "
            "relative to the dataset folder or --gt-root, or absolute); run 'run' and "
            "'render' without the judge, or use a dataset that has them"
        )
    root = source.gt_root if source.gt_root is not None else "the input's folder"
    raise ConfigurationError(
        f"none of the ground-truth images named by {plural(named, 'row')} of {where} exists "
        f"(the first: {first_missing}; relative gt_image paths resolve against {root}); "
        "point --gt-root at the dataset folder"
    )


def batch_endpoints(
    *,
    policy_urls: Sequence[str] = (),
    policy_key: str = "EMPTY",
    service_urls: Sequence[str] = (),
    judge: tuple[str, str] | None = None,
    serper_url: str | None = None,
) -> list[Endpoint]:
    """The endpoints a batch is configured with, as checks."""
    endpoints = [Endpoint.policy(url, policy_key) for url in policy_urls]
    endpoints += [Endpoint.qwen(url) for url in service_urls]
    if judge is not None:
        endpoints.append(Endpoint.judge(*judge))
    if serper_url:
        endpoints.append(Endpoint.serper(serper_url))
    return endpoints
