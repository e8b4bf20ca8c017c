"""The prompt-reference program: what a rollout answers with."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from .._types import JSONObject

__all__ = ["Program", "ReferenceImage", "finalize_program", "is_img_id"]

_IMG_ID = re.compile(r"IMG_[0-9]{3,}")


def is_img_id(value: object) -> bool:
    """Whether ``value`` is an image id as the registry makes them: ``IMG_`` and ASCII digits.

    Ids read back from a results file end up in file names (``export``), so
    anything else (``../../x``, a trailing newline, other scripts' digits) is
    refused rather than cleaned.
    """
    return isinstance(value, str) and _IMG_ID.fullmatch(value) is not None


class _RegisteredImage(Protocol):
    @property
    def img_id(self) -> str: ...
    @property
    def local_path(self) -> str: ...
    @property
    def url(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def page_url(self) -> str: ...


@dataclass(kw_only=True, slots=True, frozen=True)
class ReferenceImage:
    """One resolved reference. Indexable like the original's dicts (``r["local_path"]``)."""

    img_id: str
    note: str = ""
    local_path: str = ""
    url: str = ""
    title: str = ""
    page_url: str = ""

    def __getitem__(self, key: str) -> str:
        if key not in _REF_FIELDS:
            raise KeyError(key)
        value: str = getattr(self, key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key) if key in _REF_FIELDS else default

    def keys(self) -> tuple[str, ...]:
        return _REF_FIELDS

    def items(self) -> Iterator[tuple[str, str]]:
        return ((k, getattr(self, k)) for k in _REF_FIELDS)

    def __contains__(self, key: object) -> bool:
        return key in _REF_FIELDS

    def __iter__(self) -> Iterator[str]:
        return iter(_REF_FIELDS)

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


_REF_FIELDS = ("img_id", "note", "local_path", "url", "title", "page_url")


@dataclass(kw_only=True, slots=True, frozen=True)
class Program:
    """A generation prompt plus the references the renderer receives."""

    gen_prompt: str
    reference_images: tuple[ReferenceImage, ...] = field(default=())

    @property
    def reference_paths(self) -> list[str]:
        return [r.local_path for r in self.reference_images if r.local_path]

    def to_dict(self) -> JSONObject:
        return {
            "gen_prompt": self.gen_prompt,
            "reference_images": [r.to_dict() for r in self.reference_images],
        }


def _id_key(img_id: str) -> tuple[int, str]:
    digits = img_id[4:]
    return (int(digits) if digits.isdigit() else 0, img_id)


def finalize_program(
    answer: JSONObject,
    lookup: Callable[[str], _RegisteredImage | None],
    *,
    max_references: int = 2,
) -> Program:
    """Resolve an answer object against the rollout's registered images.

    Per SPEC: ids the rollout never registered are dropped, the rest are
    resolved to their records, sorted ascending by id and cut to
    ``max_references``. Duplicate ids keep their first note.
    """
    refs: dict[str, ReferenceImage] = {}
    items = answer.get("reference_images") or []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, str):
            item = {"img_id": item}
        if not isinstance(item, dict):
            continue
        img_id = item.get("img_id")
        if not isinstance(img_id, str):
            continue
        img_id = img_id.strip().upper()
        if not is_img_id(img_id) or img_id in refs:
            continue
        record = lookup(img_id)
        if record is None:
            continue
        note = item.get("note")
        refs[img_id] = ReferenceImage(
            img_id=img_id,
            note=note if isinstance(note, str) else "",
            local_path=record.local_path,
            url=record.url,
            title=record.title,
            page_url=record.page_url,
        )
    ordered = sorted(refs.values(), key=lambda r: _id_key(r.img_id))
    return Program(
        gen_prompt=str(answer.get("gen_prompt", "")).strip(),
        reference_images=tuple(ordered[: max(0, max_references)]),
    )
