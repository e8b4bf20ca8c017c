"""Garbage-collector settings for processes that keep thousands of rollouts in flight.

CPython's cyclic collector scans every tracked object of the oldest
generation on a full collection. With thousands of rollouts in flight
(each holding tasks, cancel scopes, connections and messages) that is
millions of objects: measured here at 3,000 in flight, 77 full collections
took 84 s in all, up to 3.7 s each, during which the event loop stood
still. Almost all of our garbage dies by reference counting; the young
generations still catch the short-lived cycles. So long-running batch
processes (our CLI, the bench) freeze what was allocated at start-up and
collect the old generation far less often.

A library must not change its host's global settings on its own: an app
that embeds the agent calls :func:`tune_gc_for_throughput` itself if it
wants this.
"""

from __future__ import annotations

import gc

__all__ = ["tune_gc_for_throughput"]

THROUGHPUT_THRESHOLDS = (50_000, 50, 100)
"""Young collections every 50,000 net allocations (default 700); the oldest
generation after 100 middle ones (default 10)."""


def tune_gc_for_throughput(*, freeze: bool = True) -> tuple[int, int, int]:
    """Collect the oldest generation rarely, and freeze start-up objects.

    Args:
        freeze: move every object alive now (modules, classes, settings) to
            the permanent generation, which collections never scan.

    Returns:
        The previous thresholds, for :func:`gc.set_threshold` to restore.
    """
    previous = gc.get_threshold()
    if freeze:
        gc.collect()
        gc.freeze()
    gc.set_threshold(*THROUGHPUT_THRESHOLDS)
    return previous
