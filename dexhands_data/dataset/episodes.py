"""The read stage's episode types: :class:`EpisodeMeta` (one row of ``meta/episodes.parquet``) and
:class:`StoredEpisode` (one episode's stored frame rows, in the contract's frames and units), and
:func:`episode_spans`, which finds the episodes in a table of frame rows (sorted by episode, then
frame_index, as every shard is).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..distortion import Distortion
from ..geometry import Intrinsics
from ..images import decode_jpeg
from ..records import EpisodeError, HandTrack
from ..schema import column_spec, fixed_list_to_numpy


@dataclass(frozen=True)
class EpisodeMeta:
    """What readers need from a ``meta/episodes.parquet`` row (None where unknown).

    intrinsics: pixels of the source frame (``width`` x ``height``), with the lens distortion when the
    episode has one (schema v2); T_opencv_source (4, 4) maps the
    source's camera axes into OpenCV's; ``source_path`` is relative to the input root of the run.
    """

    episode_id: str
    source: str | None = None
    fps: float | None = None
    intrinsics: Intrinsics | None = None
    T_opencv_source: np.ndarray = field(default_factory=lambda: np.eye(4))
    source_path: str | None = None
    world_frame: str | None = None
    translation_metric: bool | None = None
    hand_estimator: str | None = None

    @classmethod
    def from_row(cls, row: dict) -> "EpisodeMeta":
        K = row_intrinsics(row)
        S = row.get("T_opencv_source")
        metric = row.get("translation_metric")
        return cls(row["episode_id"], row.get("source"), row.get("fps"), K,
                   np.eye(4) if S is None else np.asarray(S, dtype=np.float64).reshape(4, 4),
                   row.get("source_path"), row.get("world_frame"), None if metric is None else bool(metric),
                   row.get("hand_estimator"))


def row_intrinsics(row: dict) -> Intrinsics | None:
    """The intrinsics of a ``meta/episodes.parquet`` row (None without intrinsics or image size).

    Schema v2's ``distortion`` [k1, k2, p1, p2] goes with them; a v1 row (no such key) or a null
    means a pinhole camera. ValueError names the episode for a malformed distortion."""
    if row.get("intrinsics") is None or not row.get("width") or not row.get("height"):
        return None
    fx, fy, cx, cy = row["intrinsics"]
    values = row.get("distortion")
    try:
        distortion = None if values is None else Distortion.from_list(values)
    except ValueError as exc:
        raise ValueError(f"episode {row.get('episode_id')}: bad distortion ({exc})") from exc
    return Intrinsics(fx, fy, cx, cy, int(row["width"]), int(row["height"]),
                      row.get("intrinsics_source") or "dataset", distortion)


def episode_meta_index(episodes: pa.Table | None) -> dict[str, EpisodeMeta]:
    """Episode id -> :class:`EpisodeMeta` for the ``ok`` rows of an episodes table."""
    if episodes is None:
        return {}
    rows = episodes.to_pylist()
    return {r["episode_id"]: EpisodeMeta.from_row(r) for r in rows if r.get("status", "ok") == "ok"}


#: Frame columns held as numpy arrays by :class:`StoredEpisode` (the others are not read into it).
ARRAY_COLUMNS = ("keypoints_cam", "keypoints_2d", "hand_valid", "keypoint_conf", "hand_score",
                 "lift_residual_px", "T_world_cam", "camera_valid", "source_frame_index")


def _column_array(table: pa.Table, name: str) -> np.ndarray:
    spec = column_spec("frame", name)
    dtype = "bool" if spec.dtype == "bool" else spec.dtype
    if spec.shape:
        return fixed_list_to_numpy(table.column(name), spec.shape, dtype)
    return table.column(name).to_numpy(zero_copy_only=False).astype(np.dtype(dtype))


@dataclass
class StoredEpisode:
    """One episode's stored frame rows. N = stored frames; a column not read is None.

    keypoints_cam (N, 2, 21, 3) float32 m, each frame's OpenCV camera, NaN where missing;
    keypoints_2d (N, 2, 21, 2) float32 px of the source frame; hand_valid (N, 2) bool;
    keypoint_conf (N, 2, 21), hand_score (N, 2), lift_residual_px (N, 2) float32;
    T_world_cam (N, 4, 4) float64; camera_valid (N,) bool; timestamp (N,) float64 s;
    frame_index / source_frame_index (N,) int64; ``jpegs`` the ``image`` column (struct of bytes,
    path) or None; ``images`` decoded RGB uint8 frames, filled by :meth:`decode_images` (or from the
    source video by ``viz``); ``meta`` the episode's metadata row; ``embodiment`` human /
    parallel_gripper / ...
    """

    episode_id: str
    timestamp: np.ndarray
    frame_index: np.ndarray
    meta: EpisodeMeta
    embodiment: str = "human"
    keypoints_cam: np.ndarray | None = None
    keypoints_2d: np.ndarray | None = None
    hand_valid: np.ndarray | None = None
    keypoint_conf: np.ndarray | None = None
    hand_score: np.ndarray | None = None
    lift_residual_px: np.ndarray | None = None
    T_world_cam: np.ndarray | None = None
    camera_valid: np.ndarray | None = None
    source_frame_index: np.ndarray | None = None
    jpegs: pa.Array | None = None
    images: list[np.ndarray] | None = None
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

    @property
    def source(self) -> str | None:
        return self.meta.source

    @property
    def intrinsics(self) -> Intrinsics | None:
        return self.meta.intrinsics

    @classmethod
    def from_table(cls, table: pa.Table, meta: EpisodeMeta | None = None,
                   arrays: tuple[str, ...] = ARRAY_COLUMNS) -> "StoredEpisode":
        """From the frame rows of one episode (sorted by frame_index, contiguous from 0); converts the
        ``arrays`` (of :data:`ARRAY_COLUMNS`) the table has to numpy and keeps ``image`` as Arrow."""
        eid = table.column("episode_id")[0].as_py()
        frame_index = table.column("frame_index").to_numpy().astype(np.int64)
        if not np.array_equal(frame_index, np.arange(len(frame_index))):
            raise EpisodeError(f"episode {eid}: frame_index is not contiguous from 0 (rows out of order?)")
        names = table.column_names
        converted = {name: _column_array(table, name) for name in arrays if name in names}
        if "source_frame_index" in converted:
            converted["source_frame_index"] = converted["source_frame_index"].astype(np.int64)
        return cls(
            episode_id=eid,
            timestamp=table.column("timestamp").to_numpy().astype(np.float64),
            frame_index=frame_index,
            meta=meta or EpisodeMeta(eid),
            embodiment=table.column("embodiment")[0].as_py() if "embodiment" in names else "human",
            jpegs=table.column("image").combine_chunks() if "image" in names else None,
            **converted,
        )

    def image_bytes(self, rows: np.ndarray) -> list[pa.Buffer | None]:
        """JPEG bytes (zero-copy Arrow buffers) of the given rows (None where the frame is not embedded)."""
        if self.jpegs is None:
            return [None] * len(rows)
        if self._bytes is None:  # the struct's bytes child, offset and nulls applied (zero-copy)
            self._bytes = self.jpegs.flatten()[0] if pa.types.is_struct(self.jpegs.type) else self.jpegs
        return [None if not self._bytes[int(r)].is_valid else self._bytes[int(r)].as_buffer() for r in rows]

    def decode_images(self) -> list[np.ndarray] | None:
        """Decode the embedded JPEGs into :attr:`images` (RGB uint8); None when no frame is embedded.
        Raises EpisodeError when only some frames are."""
        if self.jpegs is None or self.jpegs.null_count == len(self):
            return None
        data = self.image_bytes(np.arange(len(self)))
        if any(b is None for b in data):
            raise EpisodeError(f"episode {self.episode_id} stores images for only some frames")
        self.images = [decode_jpeg(bytes(b)) for b in data]
        return self.images

    def hand_track(self) -> HandTrack:
        """The stored hands as a :class:`~dexhands_data.records.HandTrack` (needs the hand columns)."""
        return HandTrack(keypoints_cam=self.keypoints_cam, keypoints_2d=self.keypoints_2d,
                         valid=self.hand_valid,
                         confidence=self.keypoint_conf, score=self.hand_score,
                         lift_residual_px=self.lift_residual_px, estimator=self.meta.hand_estimator or "")


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


def episode_extra(row: dict) -> dict:
    """The ``extra`` JSON object of a ``meta/episodes.parquet`` row (source facts, e.g. DROID's camera
    serial); ``{}`` when absent, unreadable or not an object."""
    try:
        value = json.loads(row.get("extra") or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
