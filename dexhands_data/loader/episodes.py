"""Per-episode arrays for the loader: stored frame rows (Arrow) + the episode's metadata row.

:class:`EpisodeArrays` is what window building needs from one episode, in the contract's frames and
units; :func:`episode_spans` finds the episodes in a loaded table (rows sorted by episode, then
frame_index, as every shard is).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..geometry import Intrinsics
from ..records import EpisodeError
from ..schema import fixed_list_to_numpy

@dataclass(frozen=True)
class EpisodeMeta:
    """What the loader needs from a ``meta/episodes.parquet`` row (None where unknown)."""

    episode_id: str
    source: str | None = None
    fps: float | None = None
    intrinsics: Intrinsics | None = None
    T_opencv_source: np.ndarray = field(default_factory=lambda: np.eye(4))

    @classmethod
    def from_row(cls, row: dict) -> "EpisodeMeta":
        K = None
        if row.get("intrinsics") is not None and row.get("width") and row.get("height"):
            fx, fy, cx, cy = row["intrinsics"]
            K = Intrinsics(fx, fy, cx, cy, int(row["width"]), int(row["height"]),
                           row.get("intrinsics_source") or "dataset")
        S = row.get("T_opencv_source")
        return cls(row["episode_id"], row.get("source"), row.get("fps"), K,
                   np.eye(4) if S is None else np.asarray(S, dtype=np.float64).reshape(4, 4))


def episode_meta_index(episodes: pa.Table | None) -> dict[str, EpisodeMeta]:
    """Episode id -> :class:`EpisodeMeta` for the ``ok`` rows of an episodes table."""
    if episodes is None:
        return {}
    rows = episodes.to_pylist()
    return {r["episode_id"]: EpisodeMeta.from_row(r) for r in rows if r.get("status", "ok") == "ok"}


@dataclass
class EpisodeArrays:
    """One episode's stored per-frame state. N = stored frames.

    keypoints_cam (N, 2, 21, 3) float32 m, each frame's OpenCV camera, NaN where missing;
    hand_valid (N, 2) bool; T_world_cam (N, 4, 4) float64; camera_valid (N,) bool;
    timestamp (N,) float64 s; frame_index (N,) int64; images: the ``image`` column (struct of bytes,
    path) or None; ``meta`` the episode's metadata row; ``embodiment`` human / parallel_gripper / ...
    """

    episode_id: str
    keypoints_cam: np.ndarray
    hand_valid: np.ndarray
    T_world_cam: np.ndarray
    camera_valid: np.ndarray
    timestamp: np.ndarray
    frame_index: np.ndarray
    images: pa.Array | None
    meta: EpisodeMeta
    embodiment: str = "human"
    _bytes: pa.Array | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return int(self.timestamp.shape[0])

    @property
    def fps(self) -> float:
        if self.meta.fps:
            return float(self.meta.fps)
        if len(self) > 1:
            return float(1.0 / np.median(np.diff(self.timestamp)))
        return float("nan")

    @classmethod
    def from_table(cls, table: pa.Table, meta: EpisodeMeta | None = None) -> "EpisodeArrays":
        """From the frame rows of one episode (sorted by frame_index, contiguous from 0)."""
        eid = table.column("episode_id")[0].as_py()
        frame_index = table.column("frame_index").to_numpy().astype(np.int64)
        if not np.array_equal(frame_index, np.arange(len(frame_index))):
            raise EpisodeError(f"episode {eid}: frame_index is not contiguous from 0 (rows out of order?)")
        names = table.column_names
        images = table.column("image").combine_chunks() if "image" in names else None
        return cls(
            episode_id=eid,
            keypoints_cam=fixed_list_to_numpy(table.column("keypoints_cam"), (2, 21, 3), "float32"),
            hand_valid=fixed_list_to_numpy(table.column("hand_valid"), (2,), "bool"),
            T_world_cam=fixed_list_to_numpy(table.column("T_world_cam"), (4, 4), "float64"),
            camera_valid=table.column("camera_valid").to_numpy(zero_copy_only=False).astype(bool),
            timestamp=table.column("timestamp").to_numpy().astype(np.float64),
            frame_index=frame_index,
            images=images,
            meta=meta or EpisodeMeta(eid),
            embodiment=table.column("embodiment")[0].as_py() if "embodiment" in names else "human",
        )

    def image_bytes(self, rows: np.ndarray) -> list[pa.Buffer | None]:
        """JPEG bytes (zero-copy Arrow buffers) of the given rows (None where the frame is not embedded)."""
        if self.images is None:
            return [None] * len(rows)
        if self._bytes is None:  # the struct's bytes child, offset and nulls applied (zero-copy)
            self._bytes = self.images.flatten()[0] if pa.types.is_struct(self.images.type) else self.images
        return [None if not self._bytes[int(r)].is_valid else self._bytes[int(r)].as_buffer() for r in rows]


def episode_spans(episode_ids: pa.ChunkedArray | pa.Array) -> list[tuple[str, int, int]]:
    """``(episode_id, row_start, row_end)`` of each run of equal ids; an id in two runs is an error.

    Works chunk by chunk (memory of one chunk, not of the whole id column)."""
    chunks = episode_ids.chunks if isinstance(episode_ids, pa.ChunkedArray) else [episode_ids]
    starts: list[int] = []
    ids: list[str] = []
    offset = 0
    previous = None
    for chunk in chunks:
        n = len(chunk)
        if n == 0:
            continue
        local = [0] if previous is None or chunk[0].as_py() != previous else []
        if n > 1:
            changes = pc.not_equal(chunk.slice(1), chunk.slice(0, n - 1)).to_numpy(zero_copy_only=False)
            local += (np.flatnonzero(changes) + 1).tolist()
        if local:
            starts += [offset + i for i in local]
            ids += chunk.take(pa.array(local, pa.int64())).to_pylist()
        previous = chunk[n - 1].as_py()
        offset += n
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})[:3]
        raise EpisodeError(f"episodes {dup} are split over non-adjacent rows; "
                           "rows must be grouped by episode")
    ends = starts[1:] + [offset]
    return list(zip(ids, starts, ends))
