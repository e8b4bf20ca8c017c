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

    The same image (same local path or same URL) keeps its first id. Only
    images that were downloaded successfully should be registered.
    """

    def __init__(self) -> None:
        self._by_id: dict[str, ImageRecord] = {}
        self._by_key: dict[str, ImageRecord] = {}
        self._lost: set[str] = set()

    def register(
        self, *, local_path: str, url: str = "", title: str = "", page_url: str = ""
    ) -> ImageRecord:
        """Register an image (or find it again) and return its record."""
        for key in (f"path:{local_path}", f"url:{url}" if url else ""):
            if key and key in self._by_key:
                found = self._by_key[key]
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
        self._by_key[f"path:{local_path}"] = record
        if url:
            self._by_key[f"url:{url}"] = record
        return record

    def discard(self, local_path: str) -> None:
        """Mark the image at ``local_path`` as lost (its file could not be written).

        Its id stays taken, so later ids do not shift, but :meth:`get` no
        longer finds it: a program that references it loses that reference.
        """
        record = self._by_key.get(f"path:{local_path}")
        if record is not None:
            self._lost.add(record.img_id)

    def get(self, img_id: str) -> ImageRecord | None:
        return None if img_id in self._lost else self._by_id.get(img_id)

    def __len__(self) -> int:
        return len(self._by_id) - len(self._lost)

    def __iter__(self) -> Iterator[ImageRecord]:
        return (r for r in self._by_id.values() if r.img_id not in self._lost)

    def records(self) -> list[ImageRecord]:
        return list(self)
