"""One rollout record as a training trajectory: SFT-format messages and its images.

The export keeps the conversation the policy saw, in the text protocol it
was trained on (SPEC section 1): every message is ``{"role", "content"}``;
native ``tool_calls`` are written back as ``<tool_call>`` blocks and
``tool`` messages are folded into one user message of ``<tool_response>``
blocks. The images are those the rollout registered: a record's
``registered_images`` when the agent recorded them, else the ``IMG_###``
entries and their ``local_path`` lines in the image_search observations.

Everything here is pure or blocking file work (checks, JPEG conversion,
links); the exporter calls it from worker threads.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from PIL import Image, ImageOps

from .._decode import ImageDecodeError, open_image
from ..protocol import parse_reply
from ..protocol._program import is_img_id

__all__ = [
    "ExportImage",
    "Trajectory",
    "link_all",
    "plan_trajectory",
    "registered_images",
    "sft_messages",
    "to_jpeg",
]

_IMG_LINE = re.compile(r"^(IMG_[0-9]{3,}): ")
# One quantifier per line: a lazy ``(.*?)`` before ``\s*$`` backtracks
# quadratically on a line of spaces; the trailing blanks are dropped in code.
_PATH_LINE = re.compile(r"^(  local_path: )([^\n]*)$", re.MULTILINE)
_TOOL_RESPONSE = "<tool_response>"


@dataclass(kw_only=True, slots=True, frozen=True)
class ExportImage:
    """One registered image of a trajectory and where its JPEG goes."""

    img_id: str
    source: str
    """The file the rollout downloaded."""
    relative: str
    """``images/traj_NNNNN/IMG_###.jpg``, relative to the dataset folder."""
    cited: bool
    """Whether the answer chose it as a reference (a trajectory needs those)."""


@dataclass(kw_only=True, slots=True)
class Trajectory:
    """An answered rollout, planned for export."""

    number: int
    messages: list[dict[str, str]]
    images: list[ExportImage]
    """Images whose file exists, in id order."""
    missing: int = 0
    """Registered images whose file was gone (not cited, so left out)."""
    source: dict[str, Any] = field(default_factory=dict)
    """``id``, ``prompt_id``, ``sample_index``, ``seed`` and ``overall`` of the row."""

    @property
    def folder(self) -> str:
        """The trajectory's image folder, relative to the dataset folder."""
        return f"images/traj_{self.number:05d}"

    def record(self, kept: Sequence[ExportImage], *, rewrite_paths: bool) -> bytes:
        """The JSONL line of this trajectory with the images that were written."""
        messages = self.messages
        if rewrite_paths:
            messages = _rewrite_paths(messages, {img.source: img.relative for img in kept})
        line = {"messages": messages, "images": [img.relative for img in kept]}
        return orjson.dumps(line) + b"\n"

    def provenance(self, kept: int) -> list[Any]:
        """The trajectory's row of ``provenance.csv``."""
        s = self.source
        return [
            f"traj_{self.number:05d}",
            s.get("id"),
            s.get("prompt_id"),
            s.get("sample_index"),
            s.get("seed"),
            s.get("overall"),
            kept,
        ]


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # multimodal parts: the policy saw their text
        return "".join(
            str(p.get("text", ""))
            for p in content
            if isinstance(p, dict) and p.get("type") == "text"
        )
    return "" if content is None else str(content)


def _call_block(call: Any) -> str:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict):
        return ""
    arguments: Any = function.get("arguments")
    if isinstance(arguments, str):
        try:
            arguments = orjson.loads(arguments)
        except orjson.JSONDecodeError:
            pass  # kept as the string the model wrote
    try:
        body = orjson.dumps({"name": function.get("name"), "arguments": arguments}).decode()
    except TypeError:  # nested past orjson's 255 levels, or not JSON at all
        return ""
    return f"<tool_call>{body}</tool_call>"


def _list(value: Any) -> list[Any]:
    """A list field of a results row, or nothing when the row has something else there."""
    return value if isinstance(value, list) else []


def sft_messages(messages: Sequence[Any]) -> list[dict[str, str]]:
    """The conversation as ``{"role", "content"}`` messages of the text protocol."""
    out: list[dict[str, str]] = []
    pending: list[str] = []
    for message in messages:
        if not isinstance(message, Mapping):
            continue
        role = str(message.get("role") or "")
        content = _text(message.get("content"))
        if role == "tool":
            pending.append(f"{_TOOL_RESPONSE}\n{content}\n</tool_response>")
            continue
        if pending:
            out.append({"role": "user", "content": "\n".join(pending)})
            pending = []
        calls = message.get("tool_calls")
        if role == "assistant" and isinstance(calls, list) and "<tool_call>" not in content:
            blocks = [b for b in map(_call_block, calls) if b]
            content = "\n".join([content, *blocks]) if content.strip() else "\n".join(blocks)
        out.append({"role": role, "content": content})
    if pending:
        out.append({"role": "user", "content": "\n".join(pending)})
    return out


def _observation_images(messages: Sequence[Mapping[str, str]]) -> dict[str, str]:
    """``IMG_### -> local_path`` from the image_search blocks of the observations."""
    found: dict[str, str] = {}
    for message in messages:
        content = message["content"]
        # Only tool responses: the request itself may quote anything.
        if message["role"] != "user" or _TOOL_RESPONSE not in content:
            continue
        current: str | None = None
        for line in content.splitlines():
            match = _IMG_LINE.match(line)
            if match:
                current = match.group(1)
                continue
            if not line.startswith("  "):
                current = None
            elif current is not None and line.startswith("  local_path: "):
                found.setdefault(current, line[len("  local_path: ") :].strip())
    return found


def registered_images(
    record: Mapping[str, Any], messages: Sequence[Mapping[str, str]]
) -> dict[str, str]:
    """``IMG_### -> local_path`` of every image the rollout registered."""
    images: dict[str, str] = {}
    listed = record.get("registered_images")
    if isinstance(listed, list):
        for item in listed:
            if isinstance(item, Mapping) and isinstance(item.get("img_id"), str):
                images[item["img_id"]] = str(item.get("local_path") or "")
    else:
        images = _observation_images(messages)
    for ref in _list(record.get("reference_images")):
        # The cited ones always count, even if an observation was cut short.
        if isinstance(ref, Mapping) and isinstance(ref.get("img_id"), str):
            images.setdefault(ref["img_id"], str(ref.get("local_path") or ""))
    return images


def _id_number(img_id: str) -> int:
    return int(img_id[4:]) if img_id[4:].isdigit() else 0


def plan_trajectory(
    record: Mapping[str, Any], number: int, *, overall: float | None = None
) -> Trajectory | str:
    """Plan one record's export (blocking: it checks which image files exist).

    Args:
        record: A results row with ``messages`` (a rollout or render record).
        number: The trajectory's number (its image folder).
        overall: The row's judged score, for the provenance file.

    Returns:
        The plan, or why the record is not exported.
    """
    if record.get("termination") != "answer":
        return "not answered"
    raw = record.get("messages")
    messages = sft_messages(raw) if isinstance(raw, list) else []
    if not messages or messages[0]["role"] != "system":
        return "no system prompt in messages"
    last = messages[-1]
    if last["role"] != "assistant" or parse_reply(last["content"]).answer is None:
        return "no parseable <answer> at the end"
    cited = {
        ref.get("img_id")
        for ref in _list(record.get("reference_images"))
        if isinstance(ref, Mapping)
    }
    folder = f"images/traj_{number:05d}"
    images: list[ExportImage] = []
    missing = 0
    registered = registered_images(record, messages)
    for img_id in registered:
        if not is_img_id(img_id):
            # The id becomes a file name below: a crafted ``../../x`` must not.
            return f"img_id {img_id[:40]!r} is not IMG_ followed by digits"
    for img_id, path in sorted(registered.items(), key=lambda kv: _id_number(kv[0])):
        if not path or not os.path.isfile(path):
            if img_id in cited:
                return "reference image missing"
            missing += 1
            continue
        images.append(
            ExportImage(
                img_id=img_id,
                source=path,
                relative=f"{folder}/{img_id}.jpg",
                cited=img_id in cited,
            )
        )
    source = {k: record.get(k) for k in ("id", "prompt_id", "sample_index", "seed")}
    source["overall"] = overall
    return Trajectory(
        number=number, messages=messages, images=images, missing=missing, source=source
    )


def _rewrite_paths(
    messages: list[dict[str, str]], mapping: Mapping[str, str]
) -> list[dict[str, str]]:
    def swap(match: re.Match[str]) -> str:
        path = match.group(2).rstrip()
        return match.group(1) + mapping.get(path, path)

    return [
        {**m, "content": _PATH_LINE.sub(swap, m["content"])}
        if m["role"] == "user" and _TOOL_RESPONSE in m["content"]
        else m
        for m in messages
    ]


def to_jpeg(source: str, dest: Path, quality: int) -> bool:
    """Convert one image to an RGB JPEG (EXIF orientation applied, alpha on white).

    Returns:
        False when the source cannot be read as an image.
    """
    tmp = dest.with_name(f".{dest.name}.tmp")
    try:
        with open_image(source) as opened:
            image = ImageOps.exif_transpose(opened)
            if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
                rgba = image.convert("RGBA")
                image = Image.new("RGB", rgba.size, (255, 255, 255))
                image.paste(rgba, mask=rgba.getchannel("A"))
            elif image.mode != "RGB":
                image = image.convert("RGB")
            dest.parent.mkdir(parents=True, exist_ok=True)
            image.save(tmp, format="JPEG", quality=quality)
        os.replace(tmp, dest)
    except (OSError, ImageDecodeError):
        tmp.unlink(missing_ok=True)
        return False
    return True


def link_all(pairs: list[tuple[Path, Path]]) -> None:
    """Hard-link each converted JPEG to its further destinations (copy where links fail)."""
    for source, dest in pairs:
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, dest)
        except OSError:  # another file system, or no hard links there
            shutil.copyfile(source, dest)
