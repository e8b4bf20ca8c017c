"""Small JPEG thumbnails of the run's images, made in worker threads.

Cards ask for an image while the page is being written and get a
placeholder back at once; :meth:`Thumbnails.fill` then decodes and shrinks
every image asked for on a thread pool (Pillow releases the GIL while it
decodes) and puts each thumbnail where its placeholder stood: a ``data:``
URI (one self-contained file) or a file in a folder beside the report,
referenced relatively. A placeholder carries a random nonce, so no text
from a model can pose as one.

An embedded thumbnail shown in several places (a prompt's ground truth,
beside each of its samples; the same reference image found twice) is
written into the page once: the first ``<img>`` carries it and names it
(``data-thumb-id``), the later ones carry a blank and a reference
(``data-thumb``) that the page's script resolves on load.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from PIL import Image, ImageOps

from .._decode import ImageDecodeError, open_image
from ..judge._images import _to_rgb as to_rgb

__all__ = ["BROKEN_IMAGE", "ImageMode", "Thumbnails"]

ImageMode = Literal["embed", "files"]
"""``embed``: thumbnails as data URIs; ``files``: JPEG files beside the report."""

BROKEN_IMAGE = (
    "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' width='4' height='3'%3E"
    "%3Crect width='4' height='3' fill='%23e5e7eb'/%3E%3C/svg%3E"
)
"""Shown for a file that is named but cannot be read as an image."""

BLANK_IMAGE = (
    "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' width='4' height='3'%3E%3C/svg%3E"
)
"""Stands in for a repeated embedded thumbnail until the page's script fills it in."""

_QUALITY = 72


@dataclass(kw_only=True, slots=True, frozen=True)
class _Job:
    path: str
    side: int


def make_thumbnail(path: str, side: int) -> bytes | None:
    """``path`` as a JPEG at most ``side`` pixels on its long side (blocking).

    Returns:
        The JPEG bytes, or ``None`` when the file is not a readable image.
    """
    try:
        with open_image(path) as opened:
            opened.draft("RGB", (side, side))  # JPEG sources decode at a fraction of their size
            # As the judge sees it: EXIF orientation applied, transparency on white.
            image = to_rgb(ImageOps.exif_transpose(opened))
            image.thumbnail((side, side), Image.Resampling.LANCZOS)
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=_QUALITY, optimize=True)
    except (OSError, ImageDecodeError):
        return None
    return buffer.getvalue()


class Thumbnails:
    """The thumbnails one report asks for.

    Args:
        mode: Where thumbnails go.
        files_dir: The folder for ``files`` mode (created on demand).
        relative_to: The report's folder; file references are relative to it.
        workers: Threads making thumbnails.
    """

    def __init__(
        self,
        *,
        mode: ImageMode = "embed",
        files_dir: Path | None = None,
        relative_to: Path | None = None,
        workers: int | None = None,
    ) -> None:
        if mode == "files" and (files_dir is None or relative_to is None):
            raise ValueError("files mode needs files_dir and relative_to")
        self.mode = mode
        self.files_dir = files_dir
        self.relative_to = relative_to
        self.workers = workers or min(8, (os.cpu_count() or 2))
        self._nonce = secrets.token_hex(8)
        self._jobs: dict[_Job, int] = {}
        self._exists: dict[str, bool] = {}
        self.made = 0
        """Thumbnails produced by the last :meth:`fill`."""
        self.bytes = 0
        """Their total size in bytes (before base64)."""

    def src(self, path: str | os.PathLike[str] | None, side: int) -> str | None:
        """A placeholder for the thumbnail of ``path``, or ``None`` if there is no such file.

        The placeholder goes in an ``<img>`` element's ``src="..."`` attribute
        and nowhere else: :meth:`fill` rewrites that attribute.
        """
        if not path:
            return None
        key = os.fspath(path)
        exists = self._exists.get(key)
        if exists is None:
            exists = self._exists[key] = os.path.isfile(key)
        if not exists:
            return None
        job = _Job(path=key, side=side)
        number = self._jobs.setdefault(job, len(self._jobs))
        return f"thumb-{self._nonce}-{number}"

    def fill(self, page: str) -> str:
        """``page`` with every placeholder replaced by its thumbnail (blocking)."""
        jobs = list(self._jobs)
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="thumb") as pool:
            results = list(pool.map(self._make, jobs))
        made = [src for src, _ in results]
        self.made = sum(1 for _, size in results if size)
        self.bytes = sum(size for _, size in results)
        first: dict[str, int] = {}  # embedded data URI -> the number of its first <img>

        def lookup(match: re.Match[str]) -> str:
            src = made[int(match.group(1))]
            # A file reference, or the short broken-image stand-in: as it is.
            if self.mode != "embed" or src == BROKEN_IMAGE:
                return f'src="{src}"'
            number = first.get(src)
            if number is not None:
                return f'src="{BLANK_IMAGE}" data-thumb="{number}"'
            number = first[src] = len(first)
            return f'src="{src}" data-thumb-id="{number}"'

        # Placeholders only ever stand in an <img> ``src`` attribute (see src()).
        return re.sub(rf'src="thumb-{self._nonce}-(\d+)"', lookup, page)

    def _make(self, job: _Job) -> tuple[str, int]:
        data = make_thumbnail(job.path, job.side)
        if data is None:
            return BROKEN_IMAGE, 0
        if self.mode == "embed":
            return "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii"), len(data)
        assert self.files_dir is not None and self.relative_to is not None
        digest = hashlib.sha256(f"{job.side}\x1f{job.path}".encode()).hexdigest()[:24]
        dest = self.files_dir / f"{digest}.jpg"
        self.files_dir.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
        return Path(os.path.relpath(dest, self.relative_to)).as_posix(), len(data)
