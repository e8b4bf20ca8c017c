"""A simulated Serper: ``POST /search`` and ``POST /images`` with Serper's shapes.

Answers are deterministic per query. Image URLs point at a simulated image
host and are unique per query (so a cache cannot hide the download work of
a new query) while the same query always names the same images (so
concurrent rollouts asking the same thing share downloads). Faults: a wrong
key (403, Serper's body), random or queued 429/500/403, a 200 carrying an
error message, a server-side requests-per-second limit answering 429 with
``Retry-After``, connection resets and slow bodies trickled past the client's
timeout, image URLs that lead to the image host's faulty images, and
canned answers (``overrides``) for queries carrying a marker.
"""

from __future__ import annotations

import hashlib
import random
import re
import time
import zlib
from collections import Counter, deque
from collections.abc import Mapping
from typing import Any

import anyio
from aiohttp import web

from .. import _json
from ._common import Faults, Latency, json_response, reset_midway, trickle
from ._server import Stats, counting_middleware

__all__ = ["SimSerper"]

_DOMAINS = (
    "en.wikipedia.org",
    "www.britannica.com",
    "www.nationalgeographic.com",
    "www.smithsonianmag.com",
    "commons.wikimedia.org",
    "www.flickr.com",
    "www.bbc.co.uk",
    "www.nytimes.com",
)
_KINDS = ("Overview", "History", "Facts", "Guide", "Photos", "Encyclopedia entry")
_WORD = re.compile(r"[a-z0-9]+")
_SIZE = (96, 64)  # what SimImageHost serves


def _slug(text: str, limit: int = 40) -> str:
    return "-".join(_WORD.findall(text.lower()))[:limit].strip("-") or "q"


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return json_response({"message": message, "statusCode": status}, status=status, headers=headers)


class SimSerper:
    """The simulated Serper server.

    Args:
        image_host: base URL of the image host the ``/images`` answers point at.
        api_key: the only key accepted (``None``: any key, even none).
        latency: service time of each answer.
        faults: random 403/429/500 answers.
        rate_limit: requests per sliding second the server admits; over it
            the answer is 429 with ``Retry-After: retry_after``.
        retry_after: seconds sent with the rate limit's 429s.
        image_faults: share of image results that point at a faulty image,
            by fault (``{"corrupt": 0.2}``; see :class:`SimImageHost`).
        max_results: most results per answer (``num`` asks for fewer).
        overrides: canned 200 answers by marker: a query containing a marker
            gets that body as is (the first marker that matches, in order),
            e.g. a body with missing fields or wrong types.
        seed: seeds the fault and latency draws.
    """

    def __init__(
        self,
        *,
        image_host: str = "http://127.0.0.1:9",
        api_key: str | None = None,
        latency: Latency | None = None,
        faults: Faults | None = None,
        rate_limit: float | None = None,
        retry_after: float = 1.0,
        image_faults: Mapping[str, float] | None = None,
        max_results: int = 10,
        overrides: Mapping[str, Any] | None = None,
        seed: int = 0,
    ) -> None:
        self.image_host = image_host.rstrip("/")
        self.api_key = api_key
        self.latency = latency or Latency()
        self.faults = faults or Faults()
        self.rate_limit = rate_limit
        self.retry_after = retry_after
        self.image_faults = dict(image_faults or {})
        self.max_results = max_results
        self.overrides: dict[str, Any] = dict(overrides or {})
        self.rng = random.Random(seed)
        self.stats = Stats()
        self.arrivals: dict[str, list[float]] = {"search": [], "images": []}
        """Monotonic arrival time of every request, by endpoint."""
        self.queries: Counter[str] = Counter()
        """Queries answered, by text."""
        self._window: deque[float] = deque()
        self._queued: list[tuple[int, float | None, Any]] = []
        self.app = web.Application(middlewares=[counting_middleware(self.stats)])
        self.app.router.add_post("/search", self._search)
        self.app.router.add_post("/images", self._images)

    def fail_next(
        self, count: int, status: int = 500, *, retry_after: float | None = None, body: Any = None
    ) -> None:
        """Answer the next ``count`` requests with ``status`` (and ``body``, if given).

        ``fail_next(1, 200, body={"message": "Not enough credits"})`` is a
        gateway's 200 that carries an error.
        """
        self._queued.extend([(status, retry_after, body)] * count)

    def request_times(self, endpoint: str | None = None) -> list[float]:
        """Arrival times of one endpoint's requests, or of all of them, sorted."""
        if endpoint is not None:
            return sorted(self.arrivals[endpoint])
        return sorted(t for times in self.arrivals.values() for t in times)

    # -- handlers ----------------------------------------------------------------

    async def _search(self, request: web.Request) -> web.StreamResponse:
        return await self._handle(request, "search")

    async def _images(self, request: web.Request) -> web.StreamResponse:
        return await self._handle(request, "images")

    async def _handle(self, request: web.Request, endpoint: str) -> web.StreamResponse:
        now = time.monotonic()
        self.arrivals[endpoint].append(now)
        if self.api_key is not None and request.headers.get("X-API-KEY") != self.api_key:
            return _error(403, "Unauthorized.")
        try:
            body = _json.loads(await request.read())
        except ValueError:
            return _error(400, "Invalid JSON body.")
        query = body.get("q") if isinstance(body, dict) else None
        if not isinstance(query, str) or not query.strip():
            return _error(400, "Missing query.")
        transport_fault = self.faults.draw_transport(self.rng)
        if transport_fault is not None:
            self.stats.faults[transport_fault] += 1
            if transport_fault == "reset":
                return await reset_midway(request)
        # One fault per request: a slow body is not also a 429 (the rate limit still applies).
        refusal = self._refusal(now, draw=transport_fault is None)
        if refusal is not None:
            return refusal
        delay = self.latency.sample(self.rng)
        if delay:
            await anyio.sleep(delay)
        num = body.get("num")
        num = num if isinstance(num, int) and not isinstance(num, bool) and num > 0 else 10
        self.queries[query] += 1
        response = self._answer(endpoint, query, num)
        if transport_fault == "slow":
            return await trickle(request, response, self.faults.slow_seconds)
        return response

    def _answer(self, endpoint: str, query: str, num: int) -> web.Response:
        for marker, canned in self.overrides.items():
            if marker in query:
                self.stats.faults["override"] += 1
                return json_response(canned)
        if endpoint == "search":
            return json_response(self._search_payload(query, num))
        return json_response(self._images_payload(query, num))

    def _refusal(self, now: float, *, draw: bool = True) -> web.Response | None:
        if self._queued:
            status, retry_after, body = self._queued.pop(0)
            headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
            if body is not None:
                return json_response(body, status=status, headers=headers)
            return _error(status, f"simulated {status}", headers)
        fault = self.faults.draw(self.rng) if draw else None
        if fault is not None:
            self.stats.faults[str(fault)] += 1
            headers = None
            if fault == 429 and self.faults.retry_after is not None:
                headers = {"Retry-After": f"{self.faults.retry_after:g}"}
            message = "Unauthorized." if fault == 403 else f"simulated {fault}"
            return _error(fault, message, headers)
        if self.rate_limit is not None:
            window = self._window
            while window and window[0] <= now - 1.0:
                window.popleft()
            if len(window) >= self.rate_limit:
                return _error(429, "Too many requests.", {"Retry-After": f"{self.retry_after:g}"})
            window.append(now)
        return None

    # -- answers -----------------------------------------------------------------

    def _search_payload(self, query: str, num: int) -> dict[str, Any]:
        h = zlib.crc32(query.encode())
        slug = _slug(query)
        organic: list[dict[str, Any]] = []
        for i in range(min(num, self.max_results)):
            domain = _DOMAINS[(h + i) % len(_DOMAINS)]
            item: dict[str, Any] = {
                "title": f"{query.title()} - {_KINDS[(h + i) % len(_KINDS)]}",
                "link": f"https://{domain}/{slug}/{i + 1}",
                "snippet": f"Everything about {query}: fact {i + 1} of {num}, with sources.",
                "position": i + 1,
            }
            if i % 3 == 1:
                item["date"] = f"Mar {1 + (h + i) % 28}, 2024"
            if i == 0:
                item["sitelinks"] = [
                    {"title": "About", "link": f"https://{domain}/about"},
                    {"title": "Gallery", "link": f"https://{domain}/{slug}/gallery"},
                ]
            organic.append(item)
        payload: dict[str, Any] = {
            "searchParameters": {"q": query, "type": "search", "num": num, "engine": "google"},
            "organic": organic,
            "peopleAlsoAsk": [
                {
                    "question": f"What is {query}?",
                    "snippet": f"{query} is a well documented subject.",
                    "title": f"{query.title()} explained",
                    "link": f"https://{_DOMAINS[h % len(_DOMAINS)]}/{slug}/faq",
                }
            ],
            "relatedSearches": [{"query": f"{query} history"}, {"query": f"{query} photos"}],
            "credits": 1,
        }
        if h % 2 == 0:
            payload["knowledgeGraph"] = {
                "title": query.title(),
                "type": "Topic",
                "description": f"{query.title()} is the subject of many references.",
                "descriptionSource": "Wikipedia",
                "descriptionLink": f"https://en.wikipedia.org/wiki/{slug}",
                "attributes": {"Known for": "being searched", "Results": str(len(organic))},
            }
        if h % 5 == 0:
            payload["answerBox"] = {"title": query.title(), "answer": f"{query} (simulated)"}
        return payload

    def _images_payload(self, query: str, num: int) -> dict[str, Any]:
        h = zlib.crc32(query.encode())
        slug = _slug(query)
        images: list[dict[str, Any]] = []
        for i in range(min(num, self.max_results)):
            domain = _DOMAINS[(h + i) % len(_DOMAINS)]
            tag = self._fault_tag(query, i)
            name = f"{'f-' + tag + '-' if tag else ''}{slug}-{h:08x}-{i}.png"
            images.append(
                {
                    "title": f"{query} - picture {i + 1}",
                    "imageUrl": f"{self.image_host}/img/{name}",
                    "imageWidth": _SIZE[0],
                    "imageHeight": _SIZE[1],
                    "thumbnailUrl": f"https://encrypted-tbn0.gstatic.com/images?q=tbn:{h:08x}{i}",
                    "thumbnailWidth": 48,
                    "thumbnailHeight": 32,
                    "source": domain.removeprefix("www.").split(".")[0].title(),
                    "domain": domain,
                    "link": f"https://{domain}/{slug}/{i + 1}",
                    "googleUrl": f"https://www.google.com/imgres?imgurl={slug}-{i}",
                    "position": i + 1,
                }
            )
        return {
            "searchParameters": {"q": query, "type": "images", "num": num, "engine": "google"},
            "images": images,
            "credits": 1,
        }

    def _fault_tag(self, query: str, index: int) -> str:
        # Deterministic per (query, position): the same query names the same images.
        for tag, rate in sorted(self.image_faults.items()):
            # blake2b, not crc32: crc32 of near-identical strings is correlated.
            digest = hashlib.blake2b(f"{query}|{index}|{tag}".encode(), digest_size=8).digest()
            draw = int.from_bytes(digest) / 2**64
            if draw < rate:
                return tag
        return ""
