"""Read ahead on a background thread: the one prefetcher behind `leanrec stats` (decoding the next Arrow batch
while this one is counted) and training from the cache (reading the next block while this one trains)."""
from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")
_END = object()


def prefetched(items: Iterable[T], depth: int = 2, *, name: str = "leanrec-prefetch") -> Iterator[T]:
    """Iterate `items` on a background thread (named `name`), up to `depth` items ahead, so that producing
    the next item overlaps consuming this one (both sides release the GIL in the cases leanrec uses).
    An exception of the producer is raised here; closing the iterator (or leaving a for-loop early) stops
    the thread and waits for it."""
    q: queue.Queue = queue.Queue(max(1, depth))
    stop = threading.Event()

    def put(entry: tuple[Any, BaseException | None]) -> bool:
        while not stop.is_set():
            try:
                q.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
            put((_END, None))
        except BaseException as exc:  # handed to the consumer, raised there
            put((_END, exc))

    worker = threading.Thread(target=produce, name=name, daemon=True)
    worker.start()
    try:
        while True:
            item, exc = q.get()
            if item is _END:
                if exc is not None:
                    raise exc
                return
            yield item
    finally:
        stop.set()
        worker.join()
