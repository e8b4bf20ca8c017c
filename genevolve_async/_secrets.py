"""The one secret scrubber: keys out of every message we build or pass on.

Error messages carry snippets of answers, and a server or a proxy may echo
the key it was sent ("key sk-... is over its quota"), whole or cut short.
So a known secret is blanked wherever it occurs, and so is a long piece of
one (at least :data:`MIN_SECRET` characters) at an edge of the text, where
somebody's truncation may have cut the key. Scrub first, truncate after:
cutting first could leave a piece too short to recognise.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["MIN_SECRET", "REDACTED", "scrub_error", "scrub_secrets", "scrubbed_snippet"]

MIN_SECRET = 8
"""Shorter strings are not treated as secrets: no real key is that short, and
placeholders such as ``EMPTY`` would otherwise be blanked out of every text."""

REDACTED = "[redacted]"


def _secrets(secrets: Iterable[str | None]) -> list[str]:
    # Longest first, so a key that contains another is blanked whole.
    return sorted({s for s in secrets if s and len(s) >= MIN_SECRET}, key=len, reverse=True)


def _edges(text: str, secret: str) -> str:
    """Blank a piece of ``secret`` cut off at the end or the start of ``text``."""
    for size in range(min(len(secret) - 1, len(text)), MIN_SECRET - 1, -1):
        if text.endswith(secret[:size]):
            text = text[: len(text) - size] + REDACTED
            break
    for size in range(min(len(secret) - 1, len(text)), MIN_SECRET - 1, -1):
        if text.startswith(secret[-size:]):
            text = REDACTED + text[size:]
            break
    return text


def scrub_secrets(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every secret, and every long piece of one at its edges, blanked.

    Args:
        text: The text to clean (a message, a body snippet, a log line).
        secrets: The keys to remove; ``None``, empty and short ones are ignored.

    Returns:
        The cleaned text (the same object when there was nothing to remove).
    """
    for secret in _secrets(secrets):
        if secret in text:
            text = text.replace(secret, REDACTED)
        text = _edges(text, secret)
    return text


def scrubbed_snippet(text: str, secrets: Iterable[str | None], limit: int) -> str:
    """The first ``limit`` characters of ``text``, scrubbed before the cut."""
    cleaned = scrub_secrets(text, secrets)
    return cleaned if len(cleaned) <= limit else cleaned[:limit] + "..."


def scrub_error(exc: BaseException, secrets: Iterable[str | None]) -> None:
    """Scrub an exception's arguments in place (before anyone logs it)."""
    keys = _secrets(secrets)
    if not keys:
        return
    args = tuple(scrub_secrets(a, keys) if isinstance(a, str) else a for a in exc.args)
    if args != exc.args:
        exc.args = args
