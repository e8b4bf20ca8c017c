"""The seam behind ``search`` and ``image_search``: a small search-service interface.

Serper is the shipped implementation (:mod:`._serper`); anything that can
answer a text query with web results and an image query with image URLs can
stand in for it. A backend owns its wire format, its limiter and its retries
(through the runtime it is handed); the tools own formatting, downloads and
image ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .._runtime import Runtime

__all__ = ["ImageResult", "SearchBackend", "WebResult"]


@dataclass(kw_only=True, slots=True, frozen=True)
class WebResult:
    """One organic web result, in the order the service ranked it."""

    title: str
    """Page title."""
    url: str = ""
    """Page address."""
    snippet: str = ""
    """Text excerpt the service matched."""
    position: int | None = None
    """Rank the service reported, when it did."""
    date: str = ""
    """Publication date as the service wrote it, when known."""


@dataclass(kw_only=True, slots=True, frozen=True)
class ImageResult:
    """One image result; the tool downloads ``image_url`` itself."""

    title: str
    """Caption or page title of the image."""
    image_url: str
    """Address of the full-size image."""
    page_url: str = ""
    """The page the image appears on."""
    thumbnail_url: str = ""
    """A small preview hosted by the search service, when given."""
    width: int | None = None
    """Pixel width the service reported."""
    height: int | None = None
    """Pixel height the service reported."""
    source: str = ""
    """Site name the service reported."""
    domain: str = ""
    """Host of the page."""
    position: int | None = None
    """Rank the service reported, when it did."""


@runtime_checkable
class SearchBackend(Protocol):
    """A text and image search service.

    Both methods are called once per query, concurrently with each other;
    they should go through the runtime's limiter and retry policy for their
    provider, and raise the package's errors: :class:`AuthenticationError`
    for refused credentials (it ends the rollout), :class:`ConfigurationError`
    for missing settings, another :class:`ServiceError` for a query that
    failed (it becomes that query's error block).

    Example::

        class MySearch:
            async def search(self, runtime, query, num):
                return [WebResult(title="...", url="...", snippet="...")]

            async def images(self, runtime, query, num):
                return [ImageResult(title="...", image_url="https://...")]

        tools = [WebSearch(backend=MySearch()), ImageSearch(backend=MySearch())]
    """

    async def search(self, runtime: Runtime, query: str, num: int) -> list[WebResult]:
        """Web results for ``query``, best first, at most ``num`` of them."""
        ...

    async def images(self, runtime: Runtime, query: str, num: int) -> list[ImageResult]:
        """Image results for ``query``, best first, at most ``num`` of them."""
        ...
