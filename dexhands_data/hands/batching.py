"""Batching of hand crops across frames for a crop network, and mapping of its outputs back to hands.

Crops are queued as :class:`CropItem` s (frame index, hand side, crop transform, network input).
When ``max_batch`` crops are queued the batch is collated into HaMeR's input dict and handed to the
predictor; at the end of an episode :meth:`CropBatcher.flush` runs what is left. With
``max_in_flight >= 1`` batches run on one background thread (the GPU works while the caller decodes
and crops the next frames; PyTorch releases the GIL inside kernels); results come back, in
submission order, from :meth:`CropBatcher.add` / :meth:`CropBatcher.flush` as ``(item, outputs)``
pairs, so the caller never relies on positions inside a batch.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from .crops import CropTransform

#: A predictor: HaMeR-style input dict of numpy arrays (leading batch axis) -> output dict of numpy arrays.
Predictor = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


@dataclass
class CropItem:
    """One hand crop waiting for the network.

    frame: index of the stored frame; side: LEFT/RIGHT slot; transform: image -> crop pixels;
    image: (3, S, S) float32 normalised network input; image_size: (W, H) of the source frame;
    extra: anything the caller wants back with the outputs (detection score, confidences ...).
    """

    frame: int
    side: int
    transform: CropTransform
    image: np.ndarray
    image_size: tuple[int, int]
    extra: dict = field(default_factory=dict)

    @property
    def is_right(self) -> bool:
        return not self.transform.flip


def collate(items: list[CropItem]) -> dict[str, np.ndarray]:
    """HaMeR's batch dict: ``img`` (B, 3, S, S) float32, ``box_center`` (B, 2), ``box_size`` (B,),
    ``img_size`` (B, 2) = (W, H), ``right`` (B,) float32 1/0, ``personid`` (B,) int64."""
    if not items:
        raise ValueError("cannot collate an empty batch")
    return {
        "img": np.stack([it.image for it in items]).astype(np.float32, copy=False),
        "box_center": np.array([it.transform.center for it in items], dtype=np.float32),
        "box_size": np.array([it.transform.size for it in items], dtype=np.float32),
        "img_size": np.array([it.image_size for it in items], dtype=np.float32),
        "right": np.array([1.0 if it.is_right else 0.0 for it in items], dtype=np.float32),
        "personid": np.arange(len(items), dtype=np.int64),
    }


def split_outputs(outputs: dict[str, np.ndarray], n: int) -> list[dict[str, np.ndarray]]:
    """Row ``i`` of every output array, for ``i < n``; every array must have leading size ``n``."""
    rows: list[dict[str, np.ndarray]] = [{} for _ in range(n)]
    for key, value in outputs.items():
        arr = np.asarray(value)
        if arr.ndim == 0 or arr.shape[0] != n:
            raise ValueError(f"output {key!r} has shape {arr.shape}, expected a leading batch axis of {n}")
        for i in range(n):
            rows[i][key] = arr[i]
    return rows


@dataclass
class BatchStats:
    """Counts and timings of one batcher: batches, crops, seconds inside the predictor."""

    batches: int = 0
    crops: int = 0
    predict_seconds: float = 0.0

    def to_dict(self) -> dict:
        return {"batches": self.batches, "crops": self.crops,
                "mean_batch_size": self.crops / self.batches if self.batches else 0.0,
                "predict_seconds": round(self.predict_seconds, 6)}


class CropBatcher:
    """Queues crops, runs full batches through ``predict`` and returns ``(item, outputs)`` pairs."""

    def __init__(self, predict: Predictor, max_batch: int = 32, max_in_flight: int = 0):
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if max_in_flight < 0:
            raise ValueError(f"max_in_flight must be >= 0, got {max_in_flight}")
        self._predict = predict
        self.max_batch = int(max_batch)
        self.max_in_flight = int(max_in_flight)
        self._queue: list[CropItem] = []
        self._pending: deque[tuple[list[CropItem], Future]] = deque()
        self._pool = (ThreadPoolExecutor(max_workers=1, thread_name_prefix="crop-batcher")
                      if max_in_flight else None)
        self.stats = BatchStats()

    def add(self, item: CropItem) -> list[tuple[CropItem, dict[str, np.ndarray]]]:
        """Queue one crop; returns the results of any batch that finished meanwhile."""
        self._queue.append(item)
        if len(self._queue) < self.max_batch:
            return self._collect(block=False)
        return self._submit()

    def flush(self) -> list[tuple[CropItem, dict[str, np.ndarray]]]:
        """Run what is queued and wait for every batch; returns all remaining results."""
        out = self._submit() if self._queue else []
        return out + self._collect(block=True)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _run(self, items: list[CropItem]) -> list[tuple[CropItem, dict[str, np.ndarray]]]:
        t0 = time.perf_counter()
        outputs = self._predict(collate(items))
        self.stats.predict_seconds += time.perf_counter() - t0
        self.stats.batches += 1
        self.stats.crops += len(items)
        return list(zip(items, split_outputs(outputs, len(items))))

    def _submit(self) -> list[tuple[CropItem, dict[str, np.ndarray]]]:
        items, self._queue = self._queue, []
        if self._pool is None:
            return self._run(items)
        done = []
        while len(self._pending) >= self.max_in_flight:
            done += self._pop()
        self._pending.append((items, self._pool.submit(self._run, items)))
        return done + self._collect(block=False)

    def _pop(self) -> list[tuple[CropItem, dict[str, np.ndarray]]]:
        _, fut = self._pending.popleft()
        return fut.result()

    def _collect(self, block: bool) -> list[tuple[CropItem, dict[str, np.ndarray]]]:
        done = []
        while self._pending and (block or self._pending[0][1].done()):
            done += self._pop()
        return done
