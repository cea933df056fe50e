"""The per-episode arrays scoring needs, read from a finished dataset folder (local path)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..geometry import Intrinsics
from ..records import EpisodeError

#: Frame columns scoring reads (no images).
SCORE_COLUMNS = ("source_frame_index", "keypoints_cam", "keypoints_2d", "hand_valid", "T_world_cam", "camera_valid")


@dataclass
class ScoredEpisode:
    """One stored episode, N = stored frames, in the data contract's frames and units.

    source_frame_index (N,) int64, strictly increasing; keypoints_cam (N, 2, 21, 3) m, each frame's
    OpenCV camera; keypoints_2d (N, 2, 21, 2) px of the source frame; hand_valid (N, 2);
    T_world_cam (N, 4, 4) camera -> the episode's world; camera_valid (N,).
    ``source_path`` is the recording's path relative to the extraction's input root.
    """

    dataset: str
    episode_id: str
    source_path: str
    source_frame_index: np.ndarray
    keypoints_cam: np.ndarray
    keypoints_2d: np.ndarray
    hand_valid: np.ndarray
    T_world_cam: np.ndarray
    camera_valid: np.ndarray
    intrinsics: Intrinsics
    translation_metric: bool
    hand_estimator: str
    camera_estimator: str

    def __len__(self) -> int:
        return int(self.source_frame_index.shape[0])

    @property
    def is_ground_truth_hands(self) -> bool:
        return self.hand_estimator.startswith("ground_truth")

    @property
    def has_camera(self) -> bool:
        return self.camera_estimator not in ("", "none") and bool(self.camera_valid.any())

    def subset(self, rows: np.ndarray) -> "ScoredEpisode":
        """The same episode restricted to stored rows ``rows``."""
        arrays = {k: getattr(self, k)[rows] for k in (
            "source_frame_index", "keypoints_cam", "keypoints_2d", "hand_valid", "T_world_cam", "camera_valid")}
        return ScoredEpisode(self.dataset, self.episode_id, self.source_path, **arrays,
                             intrinsics=self.intrinsics, translation_metric=self.translation_metric,
                             hand_estimator=self.hand_estimator, camera_estimator=self.camera_estimator)


def _intrinsics(row: dict, where: str) -> Intrinsics:
    if row.get("intrinsics") is None or not row.get("width") or not row.get("height"):
        raise EpisodeError(f"{where}: episode {row['episode_id']} has no intrinsics or image size")
    fx, fy, cx, cy = row["intrinsics"]
    return Intrinsics(fx, fy, cx, cy, int(row["width"]), int(row["height"]), row.get("intrinsics_source") or "dataset")


def read_scored_episodes(root: str | Path, episode_ids: set[str] | None = None) -> dict[str, ScoredEpisode]:
    """The ``ok`` episodes of a dataset folder, by episode id (frames in stored order)."""
    import pyarrow.parquet as pq

    from ..schema import EPISODES_PATH, fixed_list_to_numpy

    root = Path(root)
    meta_path = root / EPISODES_PATH
    if not meta_path.is_file():
        raise EpisodeError(f"{meta_path}: missing (not a finalised dataset folder)")
    rows = [r for r in pq.read_table(meta_path).to_pylist() if r.get("status") == "ok"]
    if episode_ids is not None:
        rows = [r for r in rows if r["episode_id"] in episode_ids]
    by_shard: dict[str, list[dict]] = {}
    for r in rows:
        by_shard.setdefault(r["shard"], []).append(r)
    out: dict[str, ScoredEpisode] = {}
    for shard, eps in sorted(by_shard.items()):
        path = root / shard
        try:
            table = pq.read_table(path, columns=list(SCORE_COLUMNS))
        except (OSError, ValueError) as exc:
            raise EpisodeError(f"{path}: cannot read shard ({exc})") from exc
        for r in eps:
            t = table.slice(r["row_start"], r["row_end"] - r["row_start"])
            sfi = t.column("source_frame_index").to_numpy().astype(np.int64)
            if len(sfi) > 1 and not np.all(np.diff(sfi) > 0):
                raise EpisodeError(f"{path}: episode {r['episode_id']}: source_frame_index is not increasing")
            out[r["episode_id"]] = ScoredEpisode(
                dataset=str(root), episode_id=r["episode_id"], source_path=r.get("source_path") or r["episode_id"],
                source_frame_index=sfi,
                keypoints_cam=fixed_list_to_numpy(t.column("keypoints_cam"), (2, 21, 3), "float32"),
                keypoints_2d=fixed_list_to_numpy(t.column("keypoints_2d"), (2, 21, 2), "float32"),
                hand_valid=fixed_list_to_numpy(t.column("hand_valid"), (2,), "bool"),
                T_world_cam=fixed_list_to_numpy(t.column("T_world_cam"), (4, 4), "float64"),
                camera_valid=t.column("camera_valid").to_numpy(zero_copy_only=False).astype(bool),
                intrinsics=_intrinsics(r, str(meta_path)),
                translation_metric=bool(r.get("translation_metric")),
                hand_estimator=r.get("hand_estimator") or "",
                camera_estimator=r.get("camera_estimator") or "",
            )
    return out
