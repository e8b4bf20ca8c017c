"""The per-rollout image registry: ``IMG_###`` ids for downloaded references."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["ImageRecord", "ImageRegistry"]


@dataclass(kw_only=True, slots=True, frozen=True)
class ImageRecord:
    """A downloaded image the policy may reference."""

    img_id: str
    local_path: str
    url: str = ""
    title: str = ""
    page_url: str = ""


class ImageRegistry:
    """Hands out ``IMG_001``, ``IMG_002``, ... in registration order.

    An id belongs to a result URL: the same URL keeps its first id, and two
    different URLs always get two ids, even when the content-addressed cache
    stores their identical bytes as one file (the released policy was trained
    on one id per listed result, in order). An image registered without a URL
    is keyed by its local path instead. Only images that were downloaded
    successfully should be registered.
    """

    def __init__(self) -> None:
        self._by_id: dict[str, ImageRecord] = {}
        self._by_key: dict[str, ImageRecord] = {}
        self._by_path: dict[str, list[str]] = {}
        self._lost: set[str] = set()

    def register(
        self, *, local_path: str, url: str = "", title: str = "", page_url: str = ""
    ) -> ImageRecord:
        """Register an image (or find it again by its URL) and return its record."""
        key = f"url:{url}" if url else f"path:{local_path}"
        found = self._by_key.get(key)
        if found is not None:
            if found.local_path == local_path:
                self._lost.discard(found.img_id)  # downloaded again: its file is due again
            return found
        record = ImageRecord(
            img_id=f"IMG_{len(self._by_id) + 1:03d}",  # lost ones keep their ids
            local_path=local_path,
            url=url,
            title=title,
            page_url=page_url,
        )
        self._by_id[record.img_id] = record
        self._by_key[key] = record
        self._by_path.setdefault(local_path, []).append(record.img_id)
        return record

    def discard(self, local_path: str) -> None:
        """Mark the images stored at ``local_path`` as lost (the file could not be written).

        Their ids stay taken, so later ids do not shift, but :meth:`get` no
        longer finds them: a program that references one loses that reference.
        """
        self._lost.update(self._by_path.get(local_path, ()))

    def get(self, img_id: str) -> ImageRecord | None:
        return None if img_id in self._lost else self._by_id.get(img_id)

    def __len__(self) -> int:
        return len(self._by_id) - len(self._lost)

    def __iter__(self) -> Iterator[ImageRecord]:
        return (r for r in self._by_id.values() if r.img_id not in self._lost)

    def records(self) -> list[ImageRecord]:
        return list(self)
