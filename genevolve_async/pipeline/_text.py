"""Small helpers for the lines the batch commands print."""

from __future__ import annotations

__all__ = ["plural"]


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """``1 item``, ``2 items``: the count with its noun in the right number."""
    return f"{count} {noun if count == 1 else nouns or noun + 's'}"
