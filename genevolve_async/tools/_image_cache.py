"""The image cache: safe, single-flight, content-addressed downloads.

One cache per :class:`Runtime` (``ImageCache.for_runtime``), shared by every
rollout. A URL is fetched at most once at a time (later callers join the
download under way) under a size cap and a deadline, kept in memory (or
spilled to a temp file when large), then verified by Pillow and written
atomically as ``<sha256 of the bytes>.<ext>``, so the same picture found at
two URLs is one file (and one ``IMG_###`` id). An append-only index log lets
a rerun reuse earlier downloads. Anything else is dropped and leaves no file.

Small images are verified on the loop and their file writes deferred
(:meth:`ImageCache.download_many` then :meth:`ImageCache.ensure_stored`):
the image search tool answers the policy at once and the rollout waits for
its files only before its result is final, so a slow disk costs no latency.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import aiofiles
import aiofiles.os
import aiohttp
import anyio

from .._errors import ConfigurationError
from .._status import redact_url
from ._address import AddressPolicy
from ._download import DownloadRefused, check_url, open_download, refusal_for
from ._image_files import (
    ImageRejectedError,
    PlaceJob,
    StoreJob,
    cache_name,
    inspect_image,
    open_index_log,
    place_images,
    read_index_log,
    remove_quietly,
    store_images,
    temp_name,
)
from ._image_settings import ALLOW_PRIVATE_ENV, ImageCacheSettings, ImageCacheStats

if TYPE_CHECKING:
    from .._runtime import Runtime

__all__ = ["ImageCache"]

T = TypeVar("T")

logger = logging.getLogger("genevolve_async.tools.images")

_RESOURCE_KEY = "image_cache"
_CHUNK = 64 * 1024
_FLUSH = 256 * 1024  # bytes buffered per disk write: fewer thread hops
# Bodies up to this size stay in memory and reach the disk in the same
# worker-thread hop that verifies them (one hop per image instead of many);
# bigger ones stream to a temp file so memory stays bounded.
_SPILL = 2 * 2**20
# In-memory bodies up to this size are verified on the event loop (Pillow
# reads headers and chunk checksums: tens of microseconds) and written later,
# off the rollout's path; bigger ones are verified in a worker thread.
_VERIFY_ON_LOOP = 256 * 1024
_WRITES_PER_HOP = 64  # a hop that also takes others' unstarted writes stays short
_FAILED_WRITES_KEPT = 4096
_MEMO_SIZE = 65_536
_MAX_REFUSED_HOSTS_SHOWN = 20  # a search that returns many private hosts says so a few times

_Dropped = DownloadRefused


class _Latch:
    """Set once, waited on rarely: the Event is made only for a waiter.

    Every download and write has one, and almost nobody waits on it; an
    anyio Event (two objects) per image was measurable on the hot path.
    """

    __slots__ = ("_event", "is_set")

    def __init__(self) -> None:
        self.is_set = False
        self._event: anyio.Event | None = None

    def set(self) -> None:
        self.is_set = True
        if self._event is not None:
            self._event.set()

    async def wait(self) -> None:
        if self.is_set:
            return  # a set Event still costs a loop cycle
        if self._event is None:
            self._event = anyio.Event()
        await self._event.wait()


@dataclass(slots=True, eq=False)
class _Write:
    """A verified image's deferred file write: waiting (in ``ImageCache._unstarted``) or under way."""

    job: PlaceJob
    urls: list[str]
    """The URLs remembered as this file: forgotten again if the write fails."""
    done: _Latch = field(default_factory=_Latch)
    error: OSError | None = None


@dataclass(slots=True, eq=False)
class _Flight:
    done: _Latch = field(default_factory=_Latch)
    path: Path | None = None
    abandoned: bool = False


class ImageCache:
    """Downloads images once, safely, into a content-addressed folder.

    Get the runtime's cache with :meth:`for_runtime`; it is closed with the
    runtime. ``stats`` counts downloads, hits, single-flight joins and drops
    by reason, for the bench.
    """

    provider = "images"
    """Limiter name for downloads: ``RuntimeConfig.limits["images"]`` caps them."""

    def __init__(self, runtime: Runtime, settings: ImageCacheSettings) -> None:
        self.runtime = runtime
        self.settings = settings.resolve()
        self.folder = Path(str(self.settings.folder))
        self.stats = ImageCacheStats()
        self.policy = AddressPolicy.build(
            allow_private=bool(self.settings.allow_private),
            networks=self.settings.allowed_networks,
        )
        self._partial = self.folder / ".partial"
        self._index_log = self.folder / ".index.log"
        self._index_fd: int | None = None
        self._flights: dict[str, _Flight] = {}
        self._memo: dict[str, Path] = {}
        self._index_names: dict[str, str] = {}
        self._writes: dict[Path, _Write] = {}
        # The writes nobody has started yet, oldest first: those of ``_writes``
        # not under way, kept apart so that taking some along is O(taken), not
        # a scan past thousands of writes under way (5,000 rollouts in flight).
        self._unstarted: dict[Path, _Write] = {}
        # Writes the disk refused, oldest first, so that a late waiter learns
        # of it; bounded, and without the bytes.
        self._failed: dict[Path, OSError] = {}
        # One storage thread, not anyio's default forty: each hop is short and
        # takes up to 64 writes, and threads creating files in one folder
        # contend for its lock. Measured on tmpfs, two writers cost 2.5-4x the
        # CPU per file of one (126 against 33 us with 40,000 files there), and
        # at 5,000 rollouts in flight a second thread cost 1.1 ms per rollout.
        self._store_threads = anyio.CapacityLimiter(1)
        self._accepted: list[ImageCacheSettings] = []
        self._refused_reasons: set[str] = set()

    @classmethod
    async def for_runtime(
        cls, runtime: Runtime, settings: ImageCacheSettings | None = None
    ) -> ImageCache:
        """The runtime's cache, opened on first use with ``settings``.

        Args:
            runtime: the open runtime that owns (and closes) the cache.
            settings: the cache settings; ``None`` takes the existing cache
                as it is, or opens one with the defaults.

        Raises:
            ConfigurationError: the runtime's cache was opened with other settings.
        """

        async def factory() -> ImageCache:
            cache = cls(runtime, (settings or ImageCacheSettings()).resolve())
            await cache.open()
            return cache

        cache = await runtime.resource(_RESOURCE_KEY, factory, close=ImageCache.aclose)
        # Every image search asks: resolving (which reads the environment) and
        # comparing once per settings object is enough, as they are frozen.
        if settings is None or any(settings is seen for seen in cache._accepted):
            return cache
        if cache.settings != settings.resolve():
            raise ConfigurationError(
                "this Runtime's image cache was opened with different settings "
                f"({cache.settings}); one Runtime has one image cache"
            )
        cache._accepted = [*cache._accepted[-7:], settings]
        return cache

    async def open(self) -> None:
        """Create the folders and read the index log of earlier runs."""
        for folder in (self.folder, self._partial):
            await anyio.Path(folder).mkdir(parents=True, exist_ok=True)
        # Known URLs from earlier runs, read once: a URL never seen costs no
        # disk lookup on the hot path, and a new one costs one appended line.
        self._index_names = await anyio.to_thread.run_sync(read_index_log, self._index_log)
        self._index_fd = await anyio.to_thread.run_sync(open_index_log, self._index_log)

    async def aclose(self) -> None:
        """Write what is still unwritten, then close the index log."""
        waiting = self._take_unstarted(len(self._unstarted))
        if waiting:
            await self._place(waiting)
        # Taken like a store hop (see _hop), so none is under way at the close.
        with anyio.CancelScope(shield=True):
            async with self._store_threads:
                fd, self._index_fd = self._index_fd, None
        if fd is not None:
            os.close(fd)

    # -- the public verb -------------------------------------------------------

    async def fetch(self, url: str) -> Path | None:
        """The local file for ``url``, downloading it if needed; ``None`` if dropped.

        Concurrent calls for one URL share one download. A caller cancelled
        while downloading leaves no file behind, and the callers waiting on
        it start a download of their own.
        """
        return (await self.fetch_many([url]))[0]

    async def fetch_many(self, urls: Sequence[str]) -> list[Path | None]:
        """Local files for ``urls`` (``None`` where dropped), in the same order.

        The downloads run concurrently; every returned path is on disk when
        this returns. Single flight holds across calls: a URL another call
        is already downloading is joined, not fetched twice.
        """
        paths = await self.download_many(urls)
        failed = await self.ensure_stored(paths)
        return [None if path in failed else path for path in paths]

    async def download_many(self, urls: Sequence[str]) -> list[Path | None]:
        """Download and verify ``urls``; leave small images' disk writes for later.

        Returns the final path of each URL (``None`` where dropped), in order.
        The paths are final (content-addressed, known once the bytes are
        verified), but a small image's file may not be written yet: await
        :meth:`ensure_stored` on them (in a task of its own if the caller has
        other work to do) before handing them out as files. Writes on a slow
        disk then overlap the caller's next steps instead of delaying them.
        A write nobody ensured is done by the next caller that needs the file,
        or when the cache closes: nothing verified is lost.
        """
        owned: dict[str, _Flight] = {}
        joined: dict[str, _Flight] = {}
        for url in urls:
            if url in self._memo or url in owned or url in joined:
                continue
            flight = self._flights.get(url)
            if flight is not None:
                self.stats.joins += 1
                joined[url] = flight
            else:
                owned[url] = self._flights[url] = _Flight()
        if owned:
            try:
                resolved = await self._resolve_many(list(owned))
                for url, path in resolved.items():
                    owned[url].path = path
            except BaseException:
                for flight in owned.values():
                    flight.abandoned = True
                raise
            finally:
                for url, flight in owned.items():
                    del self._flights[url]
                    flight.done.set()
        paths: list[Path | None] = []
        for url in urls:
            flight = owned.get(url) or joined.get(url)
            if flight is None:
                self.stats.hits += 1
                paths.append(self._memo.get(url))
                continue
            await flight.done.wait()
            # The downloader was cancelled: try again ourselves.
            paths.append(await self.fetch(url) if flight.abandoned else flight.path)
        return paths

    async def ensure_stored(self, paths: Iterable[Path | None]) -> set[Path]:
        """Wait until the deferred writes behind ``paths`` are on disk.

        Writes nobody has started are done here, in one worker-thread hop;
        writes under way elsewhere are waited for. A started write is not
        cancelled with its caller: it finishes, so nobody waits for ever.
        Returns the paths the disk refused (they are forgotten, and a later
        fetch downloads them again).
        """
        asked = {path for path in paths if path is not None}
        mine: list[_Write] = []
        others: dict[Path, _Write] = {}
        failed = {path for path in asked if path in self._failed}
        for path in asked:
            write = self._writes.get(path)
            if write is None:
                continue
            if path in self._unstarted:
                del self._unstarted[path]
                mine.append(write)
            else:
                others[path] = write
        if mine:
            # Take along writes nobody started: a rollout cancelled between its
            # download and its side work leaves some, and they hold bytes.
            # Taking over is safe: their owner, if any, waits on the same event.
            mine.extend(self._take_unstarted(_WRITES_PER_HOP - len(mine)))
            await self._place(mine)
        failed.update(w.job.final for w in mine if w.error is not None and w.job.final in asked)
        for path, write in others.items():
            await write.done.wait()
            if write.error is not None:
                failed.add(path)
        return failed

    def _take_unstarted(self, count: int) -> list[_Write]:
        """Start and return up to ``count`` of the oldest unstarted writes."""
        taken: list[_Write] = []
        while self._unstarted and len(taken) < count:
            taken.append(self._unstarted.pop(next(iter(self._unstarted))))
        return taken

    async def _place(self, writes: list[_Write]) -> None:
        """Run started writes in one thread hop; record the outcome and wake waiters."""
        errors: dict[Path, OSError] = {}
        try:
            # Shielded: others may wait on these files, so the thread's work
            # and the bookkeeping below always finish.
            with anyio.CancelScope(shield=True):
                errors = await self._hop(partial(place_images, [w.job for w in writes]))
        except OSError as exc:
            errors = {w.job.final: exc for w in writes}
        finally:
            for write in writes:
                self._writes.pop(write.job.final, None)
                write.error = errors.get(write.job.final)
                if write.error is not None:
                    self._forget(write, write.error)
                write.done.set()

    def _forget(self, write: _Write, error: OSError) -> None:
        path = write.job.final
        self.stats.dropped["io_error"] += 1
        logger.warning("could not store image %s: %s", path.name, error)
        self._failed[path] = error
        if len(self._failed) > _FAILED_WRITES_KEPT:
            del self._failed[next(iter(self._failed))]
        for url in write.urls:
            if self._memo.get(url) == path:
                del self._memo[url]
                self._index_names.pop(self._url_key(url), None)

    async def _resolve_many(self, urls: list[str]) -> dict[str, Path | None]:
        out: dict[str, Path | None] = {}
        pending: list[str] = []
        for url in urls:
            indexed = await self._indexed(url)
            if indexed is not None:
                self.stats.hits += 1
                self._remember(url, indexed)
                out[url] = indexed
            else:
                pending.append(url)
        fetched: dict[str, tuple[str, int, bytes | Path]] = {}

        stored = False
        try:
            await self._download_all(pending, fetched, out)
            # Small images are verified here, on the loop (tens of microseconds
            # each), and written later; the rest take one thread hop together.
            in_thread: list[StoreJob] = []
            for url, (digest, size, body) in fetched.items():
                if isinstance(body, Path) or len(body) > _VERIFY_ON_LOOP:
                    in_thread.append(
                        StoreJob(key=url, body=body, digest=digest, index_key=self._url_key(url))
                    )
                else:
                    out[url] = self._verified(url, digest, size, body)
            if in_thread:
                outcomes = await self._store(in_thread)
                for url, outcome in outcomes.items():
                    out[url] = self._record(url, outcome, fetched[url][1])
            stored = True
        finally:
            if not stored:  # cancelled between download and store: drop spilled files
                for _digest, _size, body in fetched.values():
                    if isinstance(body, Path):
                        await remove_quietly(body)
        return out

    async def _hop(self, store: Callable[..., T]) -> T:
        """``store(index_fd=...)`` in the store thread, the index log open throughout.

        The store token is taken before the descriptor is read, and aclose()
        takes it before closing the log, so no hop appends to a closed (or
        reused) descriptor. The thread is not cancellable: it finishes its
        renames and cleanups.

        Raises:
            OSError: the cache is closed.
        """
        async with self._store_threads:
            if self._index_fd is None:
                raise OSError("the image cache is closed")
            return await anyio.to_thread.run_sync(partial(store, index_fd=self._index_fd))

    async def _store(self, jobs: list[StoreJob]) -> dict[str, Path | Exception]:
        """Verify and store large downloads in one thread hop (see :func:`store_images`)."""
        store = partial(
            store_images, jobs, folder=self.folder, max_pixels=self.settings.max_pixels
        )
        try:
            return await self._hop(store)
        except OSError as exc:  # closed: store_images reports the disk's refusals itself
            for job in jobs:
                if isinstance(job.body, Path):
                    await remove_quietly(job.body)
            return {job.key: exc for job in jobs}

    def _verified(self, url: str, digest: str, size: int, body: bytes) -> Path | None:
        """Verify small bytes on the loop; leave their write for :meth:`ensure_stored`."""
        try:
            image_format = inspect_image(io.BytesIO(body), self.settings.max_pixels)
        except ImageRejectedError as exc:
            return self._record(url, exc, size)
        final = self.folder / cache_name(digest, image_format)
        earlier = self._writes.get(final)
        if earlier is not None:  # the same bytes from another URL: one write
            earlier.urls.append(url)
        else:
            self._failed.pop(final, None)  # written again: no longer a failure
            job = PlaceJob(final=final, body=body, index_key=self._url_key(url))
            write = _Write(job=job, urls=[url])
            self._writes[final] = write
            self._unstarted[final] = write
        return self._record(url, final, size)

    def _drop(self, url: str, exc: _Dropped) -> None:
        self.stats.dropped[exc.reason] += 1
        logger.debug("image %s dropped: %s", redact_url(url), exc)
        if exc.reason == "private_address":
            self._warn_refused(url, exc)

    def _warn_refused(self, url: str, exc: _Dropped) -> None:
        """Say once per refused host why its references are dropped: silence would
        read as a run that found no references."""
        # The reason names the refused host or address, which may be a
        # redirect hop rather than the URL's own host.
        reason = str(exc)
        if reason in self._refused_reasons or len(self._refused_reasons) >= _MAX_REFUSED_HOSTS_SHOWN:
            return
        self._refused_reasons.add(reason)
        logger.warning(
            "reference images refused: %s (first seen fetching %s). Image downloads never reach "
            "private, loopback or link-local addresses, so an agent cannot be used to probe "
            "your network. To allow them (tests, a gateway on your own network) set %s=1, or "
            "pass ImageCacheSettings(allow_private=True) or allowed_networks=(...). Said once "
            "per host.",
            reason,
            redact_url(url),
            ALLOW_PRIVATE_ENV,
        )

    def _record(self, url: str, outcome: Path | Exception, size: int) -> Path | None:
        if isinstance(outcome, ImageRejectedError):
            self._drop(url, _Dropped(outcome.reason, str(outcome)))
            return None
        if isinstance(outcome, Exception):
            self._drop(url, _Dropped("io_error", str(outcome)))
            return None
        self._index_names[self._url_key(url)] = outcome.name
        self.stats.downloads += 1
        self.stats.bytes += size
        self._remember(url, outcome)
        return outcome

    def _remember(self, url: str, path: Path) -> None:
        if len(self._memo) >= _MEMO_SIZE:
            self._memo.pop(next(iter(self._memo)))
        self._memo[url] = path

    # -- the folder index --------------------------------------------------------

    @staticmethod
    def _url_key(url: str) -> str:
        return hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()[:40]

    async def _indexed(self, url: str) -> Path | None:
        name = self._index_names.get(self._url_key(url))
        if name is None:
            return None
        path = self.folder / name
        return path if await aiofiles.os.path.isfile(path) else None

    # -- one download ------------------------------------------------------------

    async def _download_all(
        self,
        urls: list[str],
        fetched: dict[str, tuple[str, int, bytes | Path]],
        out: dict[str, Path | None],
    ) -> None:
        """Download ``urls`` concurrently, each under one limiter admission."""
        limiter = self.runtime.limiter(self.provider)

        async def one(url: str) -> None:
            try:
                check_url(url, self.policy)
                async with limiter.slot():
                    fetched[url] = await self._get(url)
            except _Dropped as exc:
                out[url] = None
                self._drop(url, exc)

        if len(urls) == 1:
            await one(urls[0])  # no task for a lone download
            return
        async with anyio.create_task_group() as tg:
            for url in urls:
                tg.start_soon(one, url)

    async def _get(self, url: str) -> tuple[str, int, bytes | Path]:
        """Download ``url`` within the settings' deadline (see :func:`open_download`)."""
        settings = self.settings
        hops: list[int] = []
        self.stats.requests += 1
        try:
            async with open_download(
                self.runtime.http,
                url,
                policy=self.policy,
                timeout=settings.timeout,
                max_redirects=settings.max_redirects,
                max_bytes=settings.max_bytes,
                hops=hops,
            ) as resp:
                self.stats.requests += hops[0]
                return await self._stream(resp)
        except _Dropped:
            raise
        except Exception as exc:
            raise refusal_for(
                exc, timeout=settings.timeout, max_redirects=settings.max_redirects
            ) from exc

    async def _stream(self, resp: aiohttp.ClientResponse) -> tuple[str, int, bytes | Path]:
        limit = self.settings.max_bytes
        length = resp.content_length  # within the limit: open_download checked
        if length is not None and length <= _SPILL and "Content-Encoding" not in resp.headers:
            # The usual case: a small image of announced size, read in one go.
            body = await resp.read()
            if not body:
                raise _Dropped("not_image", "an empty body")
            return hashlib.sha256(body).hexdigest(), len(body), body
        # Counted after decompression: a small compressed body cannot grow past the limit.
        hasher = hashlib.sha256()
        size = 0
        buffer = bytearray()
        handle = None
        tmp = self._partial / temp_name(".part")
        kept = False
        try:
            async for chunk in resp.content.iter_chunked(_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise _Dropped("too_large", f"more than {limit} bytes")
                hasher.update(chunk)
                buffer += chunk
                if handle is None and len(buffer) > _SPILL:
                    with anyio.CancelScope(shield=True):
                        handle = await aiofiles.open(tmp, "wb")
                if handle is not None and len(buffer) >= _FLUSH:
                    with anyio.CancelScope(shield=True):
                        await handle.write(bytes(buffer))
                    buffer.clear()
            if handle is not None:
                with anyio.CancelScope(shield=True):
                    await handle.write(bytes(buffer))
            kept = True
        finally:
            if handle is not None:
                with anyio.CancelScope(shield=True):
                    await handle.close()
                if not kept:  # only a spilled body has a file to remove
                    await remove_quietly(tmp)
        if size == 0:
            raise _Dropped("not_image", "an empty body")
        return hasher.hexdigest(), size, tmp if handle is not None else bytes(buffer)
