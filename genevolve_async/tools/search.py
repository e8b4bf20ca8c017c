"""``search`` and ``image_search``: web evidence and reference images (SPEC section 1).

Both run over a :class:`SearchBackend` (Serper by default). ``search`` runs
the queries of one call concurrently, one block per query in query order; a
failed query becomes a one-line error block. ``image_search`` makes one
backend call, downloads every candidate concurrently through the runtime's
:class:`ImageCache`, and registers the survivors as ``IMG_###`` in result
order once the turn's earlier calls have registered theirs.

A refused API key (:class:`AuthenticationError`) or missing configuration
is raised, not turned into an observation: every later call would fail the
same way, so the agent ends the rollout with a clear error.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from .._concurrency import run_concurrently
from .._errors import AuthenticationError, ConfigurationError, ServiceError
from .._types import JSONObject
from ._base import ToolContext
from ._image_cache import ImageCache
from ._image_settings import ImageCacheSettings, ImageCacheStats
from ._registry import ImageRegistry
from ._search_backend import ImageResult, SearchBackend, WebResult
from ._serper import SerperBackend

__all__ = [
    "ImageCache",
    "ImageCacheSettings",
    "ImageCacheStats",
    "ImageResult",
    "ImageSearch",
    "SearchBackend",
    "SerperBackend",
    "WebResult",
    "WebSearch",
    "clamp_top_k",
    "format_image_block",
    "format_search_block",
    "format_search_error",
]

_MAX_ERROR = 300


def clamp_top_k(value: Any, *, default: int, maximum: int) -> int:
    """``top_k`` as the policy wrote it, made sane.

    Args:
        value: the argument as decoded from the call (int, float, numeric
            string, or anything else).
        default: used when ``value`` is missing or not a number.
        maximum: the largest count allowed.

    Returns:
        An int in ``[1, maximum]``.
    """
    if isinstance(value, bool) or value is None:
        return default
    try:
        number = int(float(value)) if isinstance(value, str) else int(value)
    except (TypeError, ValueError, OverflowError):
        return default
    return max(1, min(maximum, number))


def _as_queries(value: Any) -> list[str]:
    # The policy sometimes sends a bare string where an array is expected.
    items = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    return [" ".join(q.split()) for q in items if isinstance(q, str) and q.strip()]


def _one_line(text: str) -> str:
    return " ".join(text.split())[:_MAX_ERROR]


def format_search_block(query: str, results: list[WebResult]) -> str:
    """One query's block of the ``search`` observation (SPEC format).

    Args:
        query: the query as run.
        results: its results, best first; a missing URL or snippet omits that line.

    Returns:
        The block, without a trailing newline.
    """
    lines = [f"--- search result for [{query}] ---"]
    for number, result in enumerate(results, 1):
        lines.append(f"{number}. title: {result.title}")
        if result.url:
            lines.append(f"  url: {result.url}")
        if result.snippet:
            lines.append(f"  snippet: {result.snippet}")
    lines.append("--- end of search result ---")
    return "\n".join(lines)


def format_search_error(query: str, message: str) -> str:
    """The one-line block of a query that failed.

    Args:
        query: the query as run.
        message: what went wrong (whitespace collapsed, cut to 300 characters).

    Returns:
        ``--- search error for [QUERY]: MESSAGE ---``.
    """
    return f"--- search error for [{query}]: {_one_line(message)} ---"


def format_image_block(query: str, entries: list[tuple[str, ImageResult, Path]]) -> str:
    """The ``image_search`` observation (SPEC format).

    Args:
        query: the query as run.
        entries: ``(img_id, result, local_path)`` for each downloaded image,
            in result order; a result without a title is called ``image`` and
            one without a page omits the ``page_url`` line.

    Returns:
        The observation, without a trailing newline.
    """
    lines = [f"--- image search result for [{query}] ---"]
    for img_id, result, path in entries:
        lines.append(f"{img_id}: title: {result.title or 'image'}")
        lines.append(f"  url: {result.image_url}")
        lines.append(f"  local_path: {path}")
        if result.page_url:
            lines.append(f"  page_url: {result.page_url}")
    lines.append("--- end of image search result ---")
    return "\n".join(lines)


class WebSearch:
    """The ``search`` tool: web text search, several queries per call.

    Args:
        backend: the search service (default: :class:`SerperBackend`, configured
            from the environment when first used).
        default_top_k: results per query when the call names none.
        max_top_k: the most results per query a call may ask for.
        max_queries: the most queries one call may run; extra ones are
            answered with an error block.
    """

    def __init__(
        self,
        backend: SearchBackend | None = None,
        *,
        default_top_k: int = 5,
        max_top_k: int = 10,
        max_queries: int = 10,
    ) -> None:
        if not 1 <= default_top_k <= max_top_k:
            raise ConfigurationError("WebSearch: need 1 <= default_top_k <= max_top_k")
        if max_queries < 1:
            raise ConfigurationError("WebSearch: max_queries must be at least 1")
        self.name = "search"
        self.description = "Web text search. Supply an array of queries."
        self.parameters: JSONObject = {
            "type": "object",
            "properties": {
                "queries": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "Array of query strings.",
                },
                "top_k": {
                    "type": "integer",
                    "description": f"Max results per query (default: {default_top_k}).",
                },
            },
            "required": ["queries"],
        }
        self.backend: SearchBackend = backend if backend is not None else SerperBackend()
        self.default_top_k = default_top_k
        self.max_top_k = max_top_k
        self.max_queries = max_queries

    async def __call__(self, arguments: JSONObject, context: ToolContext) -> str:
        """Run the call's queries concurrently; one block per query, in query order.

        Args:
            arguments: ``queries`` (array of strings, or one string) and ``top_k``.
            context: the rollout's tool context (its runtime runs the requests).

        Returns:
            The observation text (SPEC format), or an error text for no query.

        Raises:
            AuthenticationError: the backend refused the key.
            ConfigurationError: the backend is not configured (no key).
        """
        queries = _as_queries(arguments.get("queries", arguments.get("query")))
        if not queries:
            return (
                "Error: search needs at least one non-empty query: pass 'queries' as an "
                'array of strings, e.g. {"queries": ["eiffel tower at night"]}.'
            )
        top_k = clamp_top_k(
            arguments.get("top_k"), default=self.default_top_k, maximum=self.max_top_k
        )
        runnable = queries[: self.max_queries]
        blocks: list[str] = [""] * len(runnable)
        fatal: list[BaseException] = []

        async def one(item: tuple[int, str]) -> None:
            index, query = item
            try:
                results = await self.backend.search(context.runtime, query, top_k)
            except (AuthenticationError, ConfigurationError) as exc:
                fatal.append(exc)
                blocks[index] = format_search_error(query, str(exc))
            except ServiceError as exc:
                blocks[index] = format_search_error(query, str(exc))
            except Exception as exc:  # a plugged-in backend's bug fails one query only
                context.logger.warning("search backend failed on one query", exc_info=True)
                blocks[index] = format_search_error(query, f"{type(exc).__name__}: {exc}")
            else:
                blocks[index] = format_search_block(query, results[:top_k])

        await run_concurrently(one, list(enumerate(runnable)))
        if fatal:
            raise fatal[0]
        for query in queries[self.max_queries :]:
            blocks.append(
                format_search_error(query, f"not run: at most {self.max_queries} queries per call")
            )
        return "\n".join(blocks)


class ImageSearch:
    """The ``image_search`` tool: reference images, downloaded and given ids.

    Args:
        backend: the search service (default: :class:`SerperBackend`).
        cache: the download settings (folder, size cap, timeout, redirects,
            private hosts); the runtime's one :class:`ImageCache` opens with
            them on first use.
        default_top_k: results when the call names none.
        max_top_k: the most results a call may ask for.
    """

    def __init__(
        self,
        backend: SearchBackend | None = None,
        *,
        cache: ImageCacheSettings | None = None,
        default_top_k: int = 5,
        max_top_k: int = 10,
    ) -> None:
        if not 1 <= default_top_k <= max_top_k:
            raise ConfigurationError("ImageSearch: need 1 <= default_top_k <= max_top_k")
        self.name = "image_search"
        self.description = "Text-to-image search. Returns image results with titles and IDs."
        self.parameters: JSONObject = {
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "Descriptive text query."},
                "top_k": {
                    "type": "integer",
                    "description": f"Max results (default: {default_top_k}).",
                },
            },
            "required": ["query"],
        }
        self.backend: SearchBackend = backend if backend is not None else SerperBackend()
        self.cache_settings = cache if cache is not None else ImageCacheSettings()
        self.default_top_k = default_top_k
        self.max_top_k = max_top_k

    async def __call__(self, arguments: JSONObject, context: ToolContext) -> str:
        """Search, download every candidate at once, register survivors in result order.

        Args:
            arguments: ``query`` (a string) and ``top_k``.
            context: the rollout's tool context; images go into its registry.

        Returns:
            The observation text (SPEC format), or an error text.

        Raises:
            AuthenticationError: the backend refused the key.
            ConfigurationError: the backend or the cache is misconfigured.
        """
        candidates = _as_queries(arguments.get("query", arguments.get("queries")))
        if not candidates:
            return (
                "Error: image_search needs a non-empty 'query' string, "
                'e.g. {"query": "eiffel tower at night"}.'
            )
        query = candidates[0]
        top_k = clamp_top_k(
            arguments.get("top_k"), default=self.default_top_k, maximum=self.max_top_k
        )
        try:
            results = (await self.backend.images(context.runtime, query, top_k))[:top_k]
        except (AuthenticationError, ConfigurationError):
            raise
        except ServiceError as exc:
            return f"--- image search error for [{query}]: {_one_line(str(exc))} ---"
        cache = await ImageCache.for_runtime(context.runtime, self.cache_settings)
        urls = [r.image_url for r in results]
        side_work = context.side_work  # None outside a rollout: nobody waits after us
        paths = await (
            cache.download_many(urls) if side_work is not None else cache.fetch_many(urls)
        )
        entries: list[tuple[str, ImageResult, Path]] = []
        # Ids in result order, after the turn's earlier calls registered theirs.
        async with context.registration() as registry:
            for result, path in zip(results, paths, strict=True):
                if path is None:
                    continue
                record = registry.register(
                    local_path=str(path),
                    url=result.image_url,
                    title=result.title or "image",
                    page_url=result.page_url,
                )
                entries.append((record.img_id, result, path))
        if side_work is not None:
            # Answer now: the files are written while the policy thinks, and
            # the rollout waits for them before it resolves its answer.
            # Started after registration, so a failed write finds its record.
            side_work.start(
                partial(_store_or_discard, cache, paths, context.images), name="image writes"
            )
        return format_image_block(query, entries)


async def _store_or_discard(
    cache: ImageCache, paths: list[Path | None], registry: ImageRegistry
) -> None:
    for path in await cache.ensure_stored(paths):
        registry.discard(str(path))
