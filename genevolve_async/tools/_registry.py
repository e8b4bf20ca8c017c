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

    def register(
        self, *, local_path: str, url: str = "", title: str = "", page_url: str = ""
    ) -> ImageRecord:
        """Register an image (or find it again) and return its record."""
        for key in (f"path:{local_path}", f"url:{url}" if url else ""):
            if key and key in self._by_key:
                return self._by_key[key]
        record = ImageRecord(
            img_id=f"IMG_{len(self._by_id) + 1:03d}",
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

    def get(self, img_id: str) -> ImageRecord | None:
        return self._by_id.get(img_id)

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[ImageRecord]:
        return iter(self._by_id.values())

    def records(self) -> list[ImageRecord]:
        return list(self._by_id.values())
