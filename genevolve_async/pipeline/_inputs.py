"""Batch input: lazy readers of JSONL, JSON arrays and dataset folders.

Rows come out one at a time (JSONL line by line, a JSON array element by
element), checked as they are read: a row that is not JSON, not an object,
has no request, has a bad or duplicate id becomes a :class:`BadRow` naming
its line, and reading goes on. Ids become file names only through
:func:`safe_file_stem`, so no id can point outside the output folder.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import AsyncGenerator, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any, Literal, TextIO

import anyio.to_thread
import orjson

from .._errors import ConfigurationError
from ..protocol._json import nesting_depth
from ._ids import MAX_STEM, Shard, safe_file_stem

__all__ = [
    "BadRow",
    "InputRow",
    "InputSource",
    "aiter_entries",
    "count_rows",
    "iter_entries",
]

InputKind = Literal["jsonl", "json-array", "prompts"]

# Where a downloaded GenEvolve-Data-Bench keeps its benchmark, and the data
# file names we look for in a folder, most likely first (an output folder
# given as input stands for its results.json).
_BENCH_SUBFOLDER = "GenEvolve-Bench"
_DATA_FILES = ("test.jsonl", "bench.jsonl", "train.jsonl", "data.jsonl", "results.json")
_CHUNK = 1 << 20


@dataclass(kw_only=True, slots=True, frozen=True)
class InputRow:
    """One usable input row."""

    id: str
    """The row's id (its ``id`` field, else its index), as a string."""
    safe_id: str
    """The id as a file-name stem (see :func:`safe_file_stem`)."""
    index: int
    """Position among the input's entries, from 0 (results keep this order)."""
    line: int
    """Line where the row starts, from 1."""
    prompt: str
    """The request (``prompt``, else ``question``)."""
    data: dict[str, Any]
    """The row as read, every extra field included."""
    gt_path: Path | None = None
    """The ground-truth image, resolved against the dataset folder, if named."""


@dataclass(kw_only=True, slots=True, frozen=True)
class BadRow:
    """An input entry that was skipped, and why."""

    line: int
    """Line where the entry starts, from 1."""
    reason: str
    """What is wrong with it."""
    row_id: str | None = None
    """Its id, when it had a readable one."""

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass(kw_only=True, slots=True, frozen=True)
class InputSource:
    """Where a batch's rows come from, and which of them to take.

    Args:
        path: A JSONL file, a JSON array file, or a dataset folder.
        prompts: Requests given on the command line (instead of ``path``).
        max_samples: Take at most this many usable rows (before sharding).
        shard: Keep only this part of the rows.
        gt_root: Folder(s) that relative ``gt_image`` paths resolve against.
            As the original evaluator did, a relative path is tried against
            the data file's folder, then the working folder, then each of
            these in turn, and the first that exists wins.
    """

    path: Path | None = None
    prompts: tuple[str, ...] = ()
    max_samples: int | None = None
    shard: Shard | None = None
    gt_root: Path | tuple[Path, ...] | None = None
    _resolved: tuple[Path, InputKind] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if (self.path is None) == (not self.prompts):
            raise ConfigurationError("give either an input file or folder, or prompts, not both")
        if self.max_samples is not None and self.max_samples < 0:
            raise ConfigurationError("--max-samples cannot be negative")

    def resolve(self) -> tuple[Path, InputKind]:
        """The data file and its format (blocking: it looks at the file system).

        Raises:
            ConfigurationError: No such file, or a folder without one clear data file.
        """
        if self.path is None:
            return Path.cwd(), "prompts"
        if self._resolved is None:
            data_file = _find_data_file(self.path)
            object.__setattr__(self, "_resolved", (data_file, _sniff(data_file)))
        assert self._resolved is not None
        return self._resolved

    @property
    def root(self) -> Path:
        """The data file's folder: relative paths of the rows resolve against it first."""
        if self.path is None:
            return Path.cwd()
        return self.resolve()[0].parent

    @property
    def gt_roots(self) -> tuple[Path, ...]:
        """The ``--gt-root`` folders, in the order given."""
        if self.gt_root is None:
            return ()
        return (self.gt_root,) if isinstance(self.gt_root, Path) else tuple(self.gt_root)

    def gt_candidates(self) -> tuple[Path, ...]:
        """The folders a relative ``gt_image`` is tried against, in order, without repeats."""
        given = self.gt_roots
        roots = (self.root, Path.cwd(), *given) if given else (self.root,)
        return tuple(dict.fromkeys(roots))


MAX_ROW_DEPTH = 64
"""Input rows nested deeper than this are refused (no row format needs it)."""


def _find_data_file(path: Path) -> Path:
    if path.is_file():
        return path
    if not path.exists():
        raise ConfigurationError(f"input not found: {path}")
    if not path.is_dir():
        raise ConfigurationError(f"input is neither a file nor a folder: {path}")
    candidates = sorted(
        p for p in path.iterdir() if p.suffix in (".jsonl", ".json") and p.is_file()
    )
    for name in _DATA_FILES:
        if (path / name).is_file():
            return path / name
    if len(candidates) == 1:
        return candidates[0]
    if not candidates and (path / _BENCH_SUBFOLDER).is_dir():
        # The root of a downloaded GenEvolve-Data-Bench: take the benchmark.
        return _find_data_file(path / _BENCH_SUBFOLDER)
    names = ", ".join(p.name for p in candidates) or "none"
    raise ConfigurationError(
        f"cannot tell which data file of folder {path} to read (JSON/JSONL files: {names}); "
        "pass the file itself as --input"
    )


def _sniff(path: Path) -> InputKind:
    if path.suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    with path.open("rb") as f:
        head = f.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    return "json-array" if head.startswith(b"[") else "jsonl"


def count_rows(source: InputSource) -> int | None:
    """A quick upper estimate of the rows ``source`` yields (blocking), or None.

    Counts non-blank lines of a JSONL file (bad rows included), then applies
    ``max_samples`` and the shard's share. JSON arrays are not counted.
    """
    if source.path is None:
        total = len(source.prompts)
    else:
        data_file, kind = source.resolve()
        if kind != "jsonl":
            return None
        with data_file.open("rb") as f:
            total = sum(1 for line in f if line.strip())
    if source.max_samples is not None:
        total = min(total, source.max_samples)
    if source.shard is not None:
        total = -(-total // source.shard.count)
    return total


def iter_entries(source: InputSource) -> Generator[InputRow | BadRow, None, None]:
    """Read the rows of ``source`` one by one (blocking; see :func:`aiter_entries`).

    Yields:
        An :class:`InputRow` for each usable row of this shard, and a
        :class:`BadRow` for each entry that cannot be used (in every shard,
        so each process reports its input's problems).

    Raises:
        ConfigurationError: The input cannot be found or opened.
    """
    checker = _RowChecker(source)
    if source.path is None:
        raw: Iterator[tuple[int, Any]] = (
            (i + 1, {"prompt": p}) for i, p in enumerate(source.prompts)
        )
        yield from checker.check_all(raw)
        return
    data_file, kind = source.resolve()
    try:
        handle = data_file.open("r", encoding="utf-8", errors="surrogateescape", newline="")
    except OSError as exc:
        raise ConfigurationError(f"cannot open input {data_file}: {exc.strerror}") from exc
    with handle:
        entries = _jsonl_entries(handle) if kind == "jsonl" else _array_entries(handle)
        yield from checker.check_all(entries)


def check_rows(
    values: Iterable[Any], *, gt_root: Path | None = None
) -> Iterator[InputRow | BadRow]:
    """Rows from objects in memory: dicts shaped like input lines, or plain requests.

    The same checks as a file's rows (ids, duplicates, a request); ``line`` is
    the position from 1.
    """
    checker = _RowChecker(InputSource(prompts=("-",), gt_root=gt_root))
    raw = ((i + 1, {"prompt": v} if isinstance(v, str) else v) for i, v in enumerate(values))
    yield from checker.check_all(raw)


async def aiter_entries(
    source: InputSource, *, batch: int = 256
) -> AsyncGenerator[InputRow | BadRow, None]:
    """:func:`iter_entries` without blocking the event loop.

    Entries are read ``batch`` at a time in a worker thread, so only a
    bounded number is in memory at once. Close the iterator (``aclosing``)
    when leaving early.
    """
    entries = iter_entries(source)
    try:
        while True:
            chunk = await anyio.to_thread.run_sync(lambda: list(islice(entries, batch)))
            if not chunk:
                return
            for entry in chunk:
                yield entry
    finally:
        entries.close()


class _NotJSON:
    """Marks an entry whose text is not JSON."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


def _jsonl_entries(handle: TextIO) -> Iterator[tuple[int, Any]]:
    for number, text in enumerate(handle, 1):
        if not text.strip():
            continue
        try:
            yield number, orjson.loads(text.encode("utf-8", "surrogateescape"))
        except orjson.JSONDecodeError as exc:
            yield number, _NotJSON(str(exc).split(":", 1)[0])


def _array_entries(handle: TextIO) -> Iterator[tuple[int, Any]]:
    """The elements of a top-level JSON array, decoded one at a time.

    A syntax error ends the array (nothing after it can be trusted): it is
    yielded as one bad entry and reading stops.
    """
    decoder = json.JSONDecoder()
    buf, pos, line, eof = "", 0, 1, False

    def fill() -> None:
        nonlocal buf, pos, eof
        chunk = handle.read(max(_CHUNK, len(buf)))
        eof = not chunk
        buf, pos = buf[pos:] + chunk, 0

    def skip_space() -> str:
        nonlocal pos, line
        while True:
            stripped = len(buf) - len(buf[pos:].lstrip())
            line += buf.count("\n", pos, stripped)
            pos = stripped
            if pos < len(buf) or eof:
                return buf[pos] if pos < len(buf) else ""
            fill()

    fill()
    if skip_space().lstrip("\ufeff") != "[":
        yield line, _NotJSON("the file does not start with a JSON array")
        return
    pos += 1
    first = True
    while True:
        char = skip_space()
        if char == "]":
            return
        if not first:
            if char != ",":
                yield (
                    line,
                    _NotJSON("malformed JSON array (expected ',' or ']'); reading stops here"),
                )
                return
            pos += 1
            skip_space()
        first = False
        while True:
            try:
                value, end = decoder.raw_decode(buf, pos)
            except json.JSONDecodeError as exc:
                if eof:
                    yield line, _NotJSON(f"malformed JSON array ({exc.msg}); reading stops here")
                    return
                fill()
                continue
            if end == len(buf) and not eof:  # a number may go on in the next chunk
                fill()
                continue
            break
        yield line, value
        line += buf.count("\n", pos, end)
        pos = end


class _RowChecker:
    """Turns raw entries into rows: validation, ids, duplicates, limits, shard."""

    def __init__(self, source: InputSource) -> None:
        self.source = source
        self.gt_candidates = source.gt_candidates()
        self.ids: set[str] = set()
        self.stems: dict[str, str] = {}
        self.usable = 0

    def check_all(self, entries: Iterator[tuple[int, Any]]) -> Iterator[InputRow | BadRow]:
        limit = self.source.max_samples
        for index, (line, value) in enumerate(entries):
            if limit is not None and self.usable >= limit:
                return
            entry = self.check(index, line, value)
            if isinstance(entry, BadRow):
                yield entry
                continue
            self.usable += 1
            if self.source.shard is None or self.source.shard.holds(entry.id):
                yield entry

    def check(self, index: int, line: int, value: Any) -> InputRow | BadRow:
        if isinstance(value, _NotJSON):
            return BadRow(line=line, reason=f"not valid JSON: {value.message}")
        if not isinstance(value, dict):
            return BadRow(line=line, reason=f"expected a JSON object, got {type(value).__name__}")
        if nesting_depth(value, MAX_ROW_DEPTH) > MAX_ROW_DEPTH:
            # orjson writes at most 255 levels; the checkpoint wraps the row in
            # a few more. A row this deep could be read but never written back.
            return BadRow(line=line, reason=f"nested more than {MAX_ROW_DEPTH} levels deep")
        row_id = _row_id(value.get("id"), index)
        if row_id is None:
            return BadRow(line=line, reason="'id' must be a non-empty string or an integer")
        prompt = value.get("prompt")
        if not (isinstance(prompt, str) and prompt.strip()):
            prompt = value.get("question")
        if not (isinstance(prompt, str) and prompt.strip()):
            return BadRow(
                line=line,
                row_id=row_id,
                reason="no request: 'prompt' or 'question' must be a non-empty string",
            )
        if row_id in self.ids:
            return BadRow(
                line=line, row_id=row_id, reason=f"duplicate id {row_id!r} (the first one is kept)"
            )
        self.ids.add(row_id)
        return InputRow(
            id=row_id,
            safe_id=self._stem(row_id),
            index=index,
            line=line,
            prompt=prompt,
            data=value,
            gt_path=self._gt_path(value.get("gt_image")),
        )

    def _stem(self, row_id: str) -> str:
        stem = safe_file_stem(row_id)
        # Distinct ids may still meet after reduction (say "a b" and "a_b" on
        # a case-folding disk): the later one gets the hashed form.
        if self.stems.get(stem.lower(), row_id) != row_id:
            digest = hashlib.sha256(row_id.encode("utf-8", "surrogatepass")).hexdigest()[:10]
            stem = f"{stem[:MAX_STEM]}-{digest}"
        self.stems[stem.lower()] = row_id
        return stem

    def _gt_path(self, value: Any) -> Path | None:
        if not isinstance(value, str) or not value.strip():
            return None
        path = Path(os.path.expanduser(value.strip()))
        if path.is_absolute():
            return path
        if len(self.gt_candidates) > 1:
            for root in self.gt_candidates:
                if (root / path).exists():
                    return root / path
        # None exists: name it under the last --gt-root given (else the data folder).
        return self.gt_candidates[-1] / path


def _row_id(value: Any, index: int) -> str | None:
    if value is None:
        return str(index)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value
    return None
