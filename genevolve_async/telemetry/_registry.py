"""Open runtimes, read by the observable instruments at collection time.

Counters the runtime keeps anyway (retries and 429s by provider, limiter
waits, requests in flight per replica, image-cache hits and bytes) are
exported by reading them when a metric reader collects, so the hot path pays
nothing for them. A runtime that closes folds its counts into totals kept
here, so a cumulative counter never goes backwards.
"""

from __future__ import annotations

import weakref
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from ._attrs import CALL_PROVIDER, OUTCOME, server_attributes

if TYPE_CHECKING:
    from .._runtime import Runtime

__all__ = ["Key", "counter_readings", "gauge_readings", "runtime_closed", "runtime_opened"]

Key = tuple[str, tuple[tuple[str, Any], ...]]
"""An instrument's short name and its attributes as sorted pairs."""

_open: weakref.WeakSet[Runtime] = weakref.WeakSet()
_retired: defaultdict[Key, float] = defaultdict(float)


def runtime_opened(runtime: Runtime) -> None:
    """Start reading ``runtime``'s counters."""
    _open.add(runtime)
    from ._state import instruments  # a cycle at import time: _state imports us

    instruments()  # registers the observable instruments with a configured SDK


def runtime_closed(runtime: Runtime) -> None:
    """Keep ``runtime``'s counts (it is closing) and stop reading it."""
    if runtime in _open:
        for key, value in _runtime_counters(runtime).items():
            _retired[key] += value
        _open.discard(runtime)


def _key(name: str, **attrs: Any) -> Key:
    return name, tuple(sorted(attrs.items()))


def _runtime_counters(runtime: Runtime) -> defaultdict[Key, float]:
    counts: defaultdict[Key, float] = defaultdict(float)
    stats = runtime.stats
    for name, table in (
        ("retries", stats.retries),
        ("rate_limited", stats.rate_limited),
        ("failures", stats.failures),
    ):
        for provider, n in table.items():
            counts[_key(name, **{CALL_PROVIDER: provider})] += n
    for provider, limiter in runtime.limiters.items():
        counts[_key("requests", **{CALL_PROVIDER: provider})] += limiter.stats.grants
        counts[_key("limiter_wait", **{CALL_PROVIDER: provider})] += limiter.stats.wait_seconds
        counts[_key("limiter_waits", **{CALL_PROVIDER: provider})] += limiter.stats.waits
    cache = runtime.existing_resource("image_cache")
    cache_stats = getattr(cache, "stats", None)
    if cache_stats is not None:
        counts[_key("image_cache_requests", **{OUTCOME: "hit"})] += cache_stats.hits
        counts[_key("image_cache_requests", **{OUTCOME: "joined"})] += cache_stats.joins
        counts[_key("image_cache_requests", **{OUTCOME: "downloaded"})] += cache_stats.downloads
        counts[_key("image_cache_bytes")] += cache_stats.bytes
    return counts


def counter_readings() -> defaultdict[Key, float]:
    """Every cumulative count: open runtimes' plus those of closed ones."""
    counts = defaultdict(float, _retired)
    for runtime in list(_open):
        for key, value in _runtime_counters(runtime).items():
            counts[key] += value
    return counts


def gauge_readings() -> defaultdict[Key, float]:
    """Requests in flight per replica, over open runtimes' endpoint pools."""
    counts: defaultdict[Key, float] = defaultdict(float)
    for runtime in list(_open):
        for pool in runtime.endpoint_pools:
            for endpoint in pool.endpoints:
                attrs = {CALL_PROVIDER: pool.name, **server_attributes(endpoint.url)}
                counts[_key("in_flight", **attrs)] += endpoint.in_flight
    return counts
