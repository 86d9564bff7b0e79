"""Transport and request cache for /v1/completions: the wrapper that keeps caching out of the dialect.

`CompletionsClient` sends request bodies to a `http.ServerPool`, answers them from the
`cache.RequestCache` where it can, and keeps the compact form of every new answer
(`answers.compact`). It knows nothing of what the bodies mean: that is the OpenAI dialect's
(`backends.openai`, with `capabilities` and `scoring`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from .answers import compact
from .base import ServerError
from .cache import RequestCache, asked_k
from .http import ServerPool

COMPLETIONS = "/v1/completions"
T = TypeVar("T")


class CompletionsClient:
    """Completions requests to one model on several servers, through a request cache.

    model: sent with every completions request (None until `capabilities.served_model` tells it).
    concurrency: requests in flight at once; cache_dir: the request cache's folder (None: memory).
    """

    def __init__(self, urls: list[str], *, concurrency: int, timeout: float, retries: int, backoff: float,
                 api_key: str | None, cache_dir: str | Path | None,
                 watch: Callable[[str], str | None] | None = None):
        self.where = urls[0] if len(urls) == 1 else ",".join(urls)
        self.concurrency = concurrency
        self.pool = ServerPool(urls, concurrency=concurrency, timeout=timeout, retries=retries,
                               backoff=backoff, api_key=api_key, watch=watch)
        self.cache = RequestCache(cache_dir)
        self.model: str | None = None
        self.cache_hits = 0
        self._lock = threading.Lock()
        self._threads = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="cotprobe-http")

    @property
    def requests_sent(self) -> int:
        """HTTP requests that reached a server and got an answer."""
        return self.pool.requests_sent

    def close(self) -> None:
        self._threads.shutdown(wait=False)
        self.pool.close()

    def request(self, method: str, path: str, body: dict[str, Any] | None = None,
                retries: int | None = None, server: int | None = None) -> dict[str, Any]:
        """One request, uncached (see `ServerPool.request`)."""
        return self.pool.request(method, path, body, retries, server)

    def complete(self, body: dict[str, Any], probing: bool = False, keep_top: int | None = None
                 ) -> dict[str, Any] | None:
        """POST /v1/completions through the request cache; the compact answer. probing: a refused
        request gives None instead of an error. keep_top: top log-probabilities are kept for this
        many generated positions (None: all)."""
        body = {"model": self.model, **body}
        k = asked_k(body)
        key = RequestCache.key(COMPLETIONS, body)
        hit = self.cache.get(key, k)
        if hit is not None:
            with self._lock:
                self.cache_hits += 1
            return hit
        try:
            answer = compact(self.request("POST", COMPLETIONS, body), bool(body.get("echo")))
        except ServerError as exc:
            if probing and exc.status is not None:
                return None  # the feature is missing (a server that is gone still raises)
            raise
        except ValueError as exc:  # answers.MalformedAnswer, or a value that is not a number
            if probing:
                return None
            raise ServerError(f"POST {COMPLETIONS} to {self.where}: malformed answer ({exc})") from None
        if keep_top is not None and "top" in answer:
            answer["top"] = answer["top"][:keep_top]
        self.cache.put(key, k, answer)
        return answer

    def complete_many(self, bodies: list[dict[str, Any]], keep_top: int | None = None) -> list[dict[str, Any]]:
        """`complete` for every body, concurrently (see `map`), in order."""
        return self.map(lambda b: self.complete(b, keep_top=keep_top), bodies, lambda b: len(b["prompt"]))

    def map(self, fn: Callable[[T], Any], items: list[T], size: Callable[[T], int]) -> list[Any]:
        """fn over items, up to `concurrency` at once, in order; the largest goes first, alone, so
        that the others (prefixes of one trace) find its prefix in the server's cache."""
        if len(items) <= 1:
            return [fn(x) for x in items]
        first = max(range(len(items)), key=lambda i: size(items[i]))
        head = fn(items[first])
        rest = list(self._threads.map(fn, items[:first] + items[first + 1:]))
        return rest[:first] + [head] + rest[first:]
