"""Work on many items at once, results in the items' order: how the cut sweep keeps several traces
in flight on servers while its records are still appended one trace after another.

`in_order(fn, items, workers)` runs fn over the items on `workers` threads, at most `ahead`
items started before the oldest unfinished one, and yields (item, result) in the order of the
items. The caller writes each result as it comes, so a run killed at any moment has written the
results of a prefix of the items (and nothing out of order): rerunning it resumes exactly where an
uninterrupted run would have been. With one worker, fn runs in the caller's thread, lazily, one
item at a time, as a plain loop would.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def in_order(fn: Callable[[T], R], items: Iterable[T], workers: int, ahead: int | None = None
             ) -> Iterator[tuple[T, R]]:
    """(item, fn(item)) for every item, in order, with up to `workers` items computed at once and
    up to `ahead` (default 2 x workers) started past the oldest one not yet yielded. An error
    in fn is raised when its item's turn comes; items not started by then are never started."""
    if workers <= 1:
        for item in items:
            yield item, fn(item)
        return
    ahead = max(ahead or 2 * workers, workers)
    source = iter(items)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cotprobe-trace")
    pending: deque = deque()
    try:
        for item in source:
            pending.append((item, pool.submit(fn, item)))
            if len(pending) >= ahead:
                break
        while pending:
            item, future = pending.popleft()
            result = future.result()
            for nxt in source:
                pending.append((nxt, pool.submit(fn, nxt)))
                break
            yield item, result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
