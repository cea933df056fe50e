"""The read-ahead thread: order, bounded depth, errors at their position, early close stops the producer."""

from __future__ import annotations

import threading
import time

import pytest

from dexhands_data.prefetch import prefetch


def test_order_and_transform():
    assert list(prefetch(range(100), lambda x: x * x, depth=3)) == [x * x for x in range(100)]


def test_error_raised_where_it_happened():
    def items():
        yield 1
        yield 2
        raise ValueError("clip.mp4: truncated stream")

    out = []
    with pytest.raises(ValueError, match="truncated"):
        for x in prefetch(items(), lambda x: x):
            out.append(x)
    assert out == [1, 2]


def test_depth_bounds_read_ahead_and_close_stops_producer():
    produced = []

    def items():
        for i in range(1000):
            produced.append(i)
            yield i

    gen = prefetch(items(), lambda x: x, depth=2)
    assert next(gen) == 0
    time.sleep(0.2)
    assert len(produced) <= 4  # the consumed one, <= 2 queued, one waiting to be queued
    gen.close()
    time.sleep(0.3)
    assert len(produced) <= 5
    assert not any(t.name == "dexdata-prefetch" for t in threading.enumerate())
