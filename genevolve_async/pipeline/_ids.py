"""Ids as file names, and the deterministic split of an input into shards."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from .._errors import ConfigurationError

__all__ = ["MAX_STEM", "Shard", "safe_file_stem"]

MAX_STEM = 80
"""Longest stem kept from an id (a hash suffix may follow)."""

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
# Names Windows refuses for files whatever the extension.
_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(10)), *(f"LPT{i}" for i in range(10))}
)


def safe_file_stem(row_id: str) -> str:
    """A file-name stem for ``row_id`` that stays inside its folder.

    Ids made only of letters, digits, ``.``, ``_`` and ``-`` (not starting
    with a dot) are used as they are. Anything else (``../x``, ``/etc``,
    spaces, reserved device names, very long ids) is reduced to safe
    characters and suffixed with a hash of the original id, so different ids
    keep different stems.

    Args:
        row_id: The row's id.

    Returns:
        A non-empty stem with no path separator and no leading dot.
    """
    stem = _UNSAFE.sub("_", row_id).strip("._")[:MAX_STEM]
    if stem == row_id and stem.split(".")[0].upper() not in _RESERVED:
        return stem
    digest = hashlib.sha256(row_id.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"{stem or 'id'}-{digest}"


@dataclass(kw_only=True, slots=True, frozen=True)
class Shard:
    """One part of a deterministic split of the input (``--shard K/N``)."""

    number: int
    """Which part, from 1 to ``count``."""
    count: int
    """How many parts."""

    @classmethod
    def parse(cls, text: str) -> Shard:
        """Read ``K/N`` (1 <= K <= N).

        Raises:
            ConfigurationError: The text is not of that form.
        """
        match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
        if not match:
            raise ConfigurationError(f"--shard wants K/N such as 1/3, got {text!r}")
        number, count = int(match.group(1)), int(match.group(2))
        if count < 1 or not 1 <= number <= count:
            raise ConfigurationError(f"--shard {text}: K must be between 1 and N (N >= 1)")
        return cls(number=number, count=count)

    def holds(self, row_id: str) -> bool:
        """Whether the row belongs to this part.

        The split hashes the id, so it does not depend on the row's position,
        on the process or on the machine.
        """
        digest = hashlib.sha256(row_id.encode("utf-8", "surrogatepass")).digest()
        return int.from_bytes(digest[:8], "big") % self.count == self.number - 1

    def __str__(self) -> str:
        return f"{self.number}/{self.count}"
