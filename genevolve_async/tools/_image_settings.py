"""Settings and statistics of the image cache."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from .._errors import ConfigurationError

__all__ = ["ALLOW_PRIVATE_ENV", "ImageCacheSettings", "ImageCacheStats", "default_image_dir"]

ALLOW_PRIVATE_ENV = "GENEVOLVE_ALLOW_PRIVATE_HOSTS"
"""Set to ``1`` to let downloads reach private, loopback and link-local hosts."""

_TRUE = frozenset({"1", "true", "yes", "on"})


def default_image_dir() -> Path:
    """``IMAGE_DOWNLOAD_DIR``, else a per-user cache folder (reused across runs)."""
    env = os.environ.get("IMAGE_DOWNLOAD_DIR", "").strip()
    if env:
        return Path(env).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "genevolve-async" / "images"


def _pixel_ceiling() -> int:
    # Above Pillow's warning threshold an image would only get a warning
    # from Pillow; we refuse it instead (the warning counts as an error).
    pillow = Image.MAX_IMAGE_PIXELS
    return int(pillow) if pillow else 2**62


@dataclass(kw_only=True, slots=True, frozen=True)
class ImageCacheSettings:
    """How the image cache downloads and where it keeps files.

    Fields left as ``None`` are read from the environment when the cache
    opens (:meth:`resolve`), never at construction.
    """

    folder: str | os.PathLike[str] | None = None
    """Cache folder; ``None``: ``IMAGE_DOWNLOAD_DIR``, else a per-user cache folder."""
    max_bytes: int = 20 * 2**20
    """Largest download kept, in bytes; bigger bodies are abandoned mid-stream."""
    timeout: float = 30.0
    """Seconds for one whole download (every redirect hop and the body)."""
    max_redirects: int = 5
    """Redirect hops followed; each hop passes the address checks again."""
    allow_private: bool | None = None
    """Let downloads reach private, loopback and link-local addresses (tests,
    self-hosted gateways). ``None``: ``GENEVOLVE_ALLOW_PRIVATE_HOSTS=1``."""
    allowed_networks: tuple[str, ...] = ()
    """CIDR networks allowed even though they are not public (``"10.2.0.0/16"``)."""
    max_pixels: int = 64_000_000
    """Largest image kept, in pixels (decompression-bomb guard)."""

    def __post_init__(self) -> None:
        if self.max_bytes < 1:
            raise ConfigurationError("ImageCacheSettings.max_bytes must be positive")
        if self.timeout <= 0:
            raise ConfigurationError("ImageCacheSettings.timeout must be positive")
        if self.max_redirects < 0:
            raise ConfigurationError("ImageCacheSettings.max_redirects cannot be negative")
        if self.max_pixels < 1:
            raise ConfigurationError("ImageCacheSettings.max_pixels must be positive")
        networks: object = self.allowed_networks
        if isinstance(networks, str):  # a lone string would be split into characters
            raise ConfigurationError("ImageCacheSettings.allowed_networks is a tuple of CIDRs")
        for network in self.allowed_networks:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError as exc:
                raise ConfigurationError(f"allowed_networks: bad network {network!r}") from exc

    def resolve(self) -> ImageCacheSettings:
        """A copy with the environment read: absolute folder, definite ``allow_private``."""
        folder = Path(self.folder) if self.folder is not None else default_image_dir()
        allow = self.allow_private
        if allow is None:
            allow = os.environ.get(ALLOW_PRIVATE_ENV, "").strip().lower() in _TRUE
        return dataclasses.replace(
            self,
            folder=os.path.abspath(folder.expanduser()),
            allow_private=allow,
            allowed_networks=tuple(self.allowed_networks),
            max_pixels=min(self.max_pixels, _pixel_ceiling()),
        )


@dataclass(kw_only=True, slots=True)
class ImageCacheStats:
    """What the image cache did; read by the bench and by tests."""

    downloads: int = 0
    """Images fetched over the network, verified and stored."""
    hits: int = 0
    """Requests answered from earlier downloads (this process or the folder)."""
    joins: int = 0
    """Requests that waited for another request's download of the same URL."""
    requests: int = 0
    """HTTP requests sent, redirect hops included."""
    bytes: int = 0
    """Bytes of the stored downloads."""
    dropped: Counter[str] = field(default_factory=Counter)
    """Dropped downloads by reason (``private_address``, ``too_large``, ``not_image``, ...)."""

    def to_dict(self) -> dict[str, Any]:
        """The counters as plain JSON-ready data."""
        return {
            "downloads": self.downloads,
            "hits": self.hits,
            "joins": self.joins,
            "requests": self.requests,
            "bytes": self.bytes,
            "dropped": dict(sorted(self.dropped.items())),
        }
