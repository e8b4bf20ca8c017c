"""Files of the image cache: Pillow verification, atomic writes, quiet removal.

Every file operation here is shielded from cancellation: each is short
(local disk), and a cancelled ``aiofiles`` call would leave its worker
thread running unobserved, able to recreate or hold a file after our
cleanup ran. Cancellation lands in the network awaits instead.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import aiofiles
import aiofiles.os
import anyio

from .._decode import ImageDecodeError, open_image

__all__ = [
    "FORMAT_EXTENSIONS",
    "ImageRejectedError",
    "PlaceJob",
    "StoreJob",
    "cache_name",
    "inspect_image",
    "open_index_log",
    "place_image",
    "place_images",
    "read_index_log",
    "remove_quietly",
    "store_image",
    "store_images",
    "temp_name",
]

_counter = itertools.count()
# Pid plus a random token: two processes that share a folder from different
# PID namespaces (containers, hosts on one network share) may have one pid.
_token = os.urandom(4).hex()

# Binary on Windows, where a descriptor opens in text mode and would turn
# "\n" into "\r\n".
_OPEN_FLAGS = getattr(os, "O_BINARY", 0)


def temp_name(suffix: str) -> str:
    """A unique temp-file name (cheaper than a random UUID per file)."""
    return f".{os.getpid()}-{_token}-{next(_counter)}{suffix}"


FORMAT_EXTENSIONS: dict[str, str] = {
    "JPEG": ".jpg",
    "MPO": ".jpg",
    "PNG": ".png",
    "WEBP": ".webp",
    "GIF": ".gif",
    "BMP": ".bmp",
    "TIFF": ".tiff",
}
"""Raster formats we keep, and the extension each gets on disk."""

# Formats Pillow may try (MPO files come back from the JPEG opener).
_FORMATS = tuple(f for f in FORMAT_EXTENSIONS if f != "MPO")


class ImageRejectedError(Exception):
    """The bytes are not an acceptable image.

    Attributes:
        reason: ``not_image`` or ``too_many_pixels``.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def inspect_image(path: str | BinaryIO, max_pixels: int) -> str:
    """Verify the file is a whole image of an allowed format; return the format.

    Blocking: run it in a worker thread. Pillow's own decompression-bomb
    guard (an error above twice ``Image.MAX_IMAGE_PIXELS``) stays on; our
    ``max_pixels`` is checked from the header before any decoding, and the
    cache never sets it above Pillow's warning threshold, so every image
    that would only have triggered Pillow's warning is rejected here.

    Raises:
        ImageRejectedError: undecodable, truncated, disallowed format, or too
            many pixels.
    """
    try:
        with open_image(path, max_pixels=max_pixels, formats=_FORMATS, decodes=False) as image:
            image_format = image.format or ""
            # verify() walks the whole file (PNG chunk CRCs, GIF frames, ...)
            # without decoding pixels: cheap, and it catches truncation.
            image.verify()
    except ImageDecodeError as exc:
        raise ImageRejectedError(exc.reason, str(exc)) from exc
    except Exception as exc:  # a file that vanished, say: still not an image we keep
        raise ImageRejectedError("not_image", f"{type(exc).__name__}: {exc}") from exc
    if image_format not in FORMAT_EXTENSIONS:
        raise ImageRejectedError("not_image", f"format {image_format!r} is not allowed")
    return image_format


async def remove_quietly(path: str | os.PathLike[str]) -> None:
    """Delete ``path`` if it exists; never raises, never cancelled half-way."""
    with anyio.CancelScope(shield=True):
        try:
            await aiofiles.os.remove(path)
        except OSError:
            pass


def _write_file_atomic(path: Path, data: bytes) -> None:
    # Plain descriptors, not open(): a buffered file object adds an fstat, an
    # isatty ioctl and Python-level buffering, a third of this function's CPU.
    tmp = f"{path.parent}/.{path.name}{temp_name('.tmp')}"
    # O_TRUNC, not O_EXCL: a temp name left by a crashed process whose pid
    # came back is overwritten, not a reason to lose the image.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _OPEN_FLAGS, 0o644)
    try:
        try:
            _write_all(fd, data)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _write_all(fd: int, data: bytes) -> None:
    """All of ``data`` to ``fd``: after a short write (a full disk) the next one raises."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _index_line(index_key: str, final: Path) -> bytes:
    return f"{index_key}\t{final.name}\n".encode()


def _move_into_place(body: bytes | Path, final: Path) -> None:
    try:
        if isinstance(body, Path):
            os.replace(body, final)
        else:
            # Written without asking whether the name exists: the name is the
            # content's digest, so a rename over it puts the same bytes there,
            # and a stat per image is a GIL handoff with the loop saved (each
            # syscall of this thread is one). If the write fails (a full disk,
            # or Windows refusing to replace a file that is open), a file
            # already there is as good as ours.
            try:
                _write_file_atomic(final, body)
            except OSError:
                if not final.is_file():
                    raise
    finally:
        if isinstance(body, Path):
            body.unlink(missing_ok=True)


def place_image(body: bytes | Path, *, final: Path, index_key: str, index_fd: int) -> Path:
    """Move verified image bytes to ``final`` and append their index line.

    Blocking: run it in a worker thread. ``body`` is the bytes of a small
    download or the temp file a large one was streamed to (removed here
    whatever happens). The file lands atomically, then one line appended to
    the index log (``index_fd``, opened with ``O_APPEND``: one small write per
    entry, not interleaved with other processes' appends on a local
    filesystem) maps the URL's key to it.

    Raises:
        OSError: the disk refused.
    """
    _move_into_place(body, final)
    _write_all(index_fd, _index_line(index_key, final))
    return final


def cache_name(digest: str, image_format: str) -> str:
    """The cache's file name for verified bytes: content-addressed, with the format's extension."""
    return f"{digest[:32]}{FORMAT_EXTENSIONS[image_format]}"


def store_image(
    body: bytes | Path,
    *,
    digest: str,
    folder: Path,
    index_key: str,
    index_fd: int,
    max_pixels: int,
) -> Path:
    """Verify a downloaded image and move it into the cache, in one worker-thread hop.

    Blocking: run it in a worker thread. ``body`` as for :func:`place_image`
    (a temp file is removed whatever happens); the file lands as
    ``<digest[:32]><ext>``.

    Raises:
        ImageRejectedError: not an acceptable image.
        OSError: the disk refused.
    """
    try:
        if isinstance(body, Path):
            image_format = inspect_image(str(body), max_pixels)
        else:
            image_format = inspect_image(io.BytesIO(body), max_pixels)
    except BaseException:
        if isinstance(body, Path):
            body.unlink(missing_ok=True)
        raise
    final = folder / cache_name(digest, image_format)
    return place_image(body, final=final, index_key=index_key, index_fd=index_fd)


@dataclass(kw_only=True, slots=True, frozen=True)
class StoreJob:
    """One downloaded image waiting to be verified and stored."""

    key: str
    body: bytes | Path
    digest: str
    index_key: str


def store_images(
    jobs: list[StoreJob], *, folder: Path, index_fd: int, max_pixels: int
) -> dict[str, Path | Exception]:
    """:func:`store_image` for several downloads, in one worker-thread hop.

    Returns each job's stored path, or the error that rejected it.
    """
    out: dict[str, Path | Exception] = {}
    for job in jobs:
        try:
            out[job.key] = store_image(
                job.body,
                digest=job.digest,
                folder=folder,
                index_key=job.index_key,
                index_fd=index_fd,
                max_pixels=max_pixels,
            )
        except (ImageRejectedError, OSError) as exc:
            out[job.key] = exc
    return out


@dataclass(kw_only=True, slots=True, frozen=True)
class PlaceJob:
    """Verified image bytes waiting to be written to their final path."""

    final: Path
    body: bytes
    index_key: str


def place_images(jobs: list[PlaceJob], *, index_fd: int) -> dict[Path, OSError]:
    """:func:`place_image` for several verified images, in one worker-thread hop.

    The index lines of the files that landed go out in one ``O_APPEND``
    write, after every file is in place (a line is never written before its
    file). If that write fails, every job of the batch counts as failed: a
    file that no line may name is not stored (``read_index_log`` skips a torn
    line, and a later fetch downloads the image again).
    Returns the error of each job the disk refused (none: all written).
    """
    failed: dict[Path, OSError] = {}
    lines: list[bytes] = []
    for job in jobs:
        try:
            _move_into_place(job.body, job.final)
        except OSError as exc:
            failed[job.final] = exc
        else:
            lines.append(_index_line(job.index_key, job.final))
    if lines:
        try:
            _write_all(index_fd, b"".join(lines))
        except OSError as exc:  # the files are there, but some lines may not be
            for job in jobs:
                failed.setdefault(job.final, exc)
    return failed


def read_index_log(path: Path) -> dict[str, str]:
    """The index log's entries (url key -> file name); a torn or odd line is skipped."""
    entries: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                key, sep, name = line.rstrip("\n").partition("\t")
                if (
                    sep
                    and key
                    and name
                    and "/" not in name
                    and "\\" not in name
                    and "\t" not in name  # two lines glued after a torn one
                    and not name.startswith(".")
                ):
                    entries[key] = name
    except FileNotFoundError:
        pass
    return entries


def open_index_log(path: Path) -> int:
    """An append-only descriptor on the index log."""
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _OPEN_FLAGS, 0o644)
