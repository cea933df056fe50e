"""Bounded read-ahead of an iterator in a background thread.

Video decoding (PyAV/FFmpeg) and JPEG encoding (OpenCV) release the GIL, so running them one frame
ahead of the hand estimator overlaps their cost with the model's. At most ``depth`` items wait in
the queue, so memory stays bounded; an exception raised by the producer is re-raised in the
consumer at the position where it happened; closing the consumer early stops the producer.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
U = TypeVar("U")

_DONE = object()


class _Failure:
    def __init__(self, exc: BaseException):
        self.exc = exc


def prefetch(items: Iterable[T], transform: Callable[[T], U], depth: int = 4) -> Iterator[U]:
    """Yield ``transform(item)`` for each item, computed in a background thread up to ``depth`` ahead."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(value) -> bool:
        while not stop.is_set():
            try:
                q.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(transform(item)):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            put(_Failure(exc))
            return
        put(_DONE)

    thread = threading.Thread(target=produce, name="dexdata-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            value = q.get()
            if value is _DONE:
                return
            if isinstance(value, _Failure):
                raise value.exc
            yield value
    finally:
        stop.set()
        thread.join(timeout=30)
