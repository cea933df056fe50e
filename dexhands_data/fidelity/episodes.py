"""The per-episode arrays scoring needs, read from a finished dataset through the dataset layer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..dataset.episodes import row_intrinsics
from ..geometry import Intrinsics
from ..records import EpisodeError

#: Frame columns scoring reads (no images).
SCORE_COLUMNS = ("source_frame_index", "keypoints_cam", "keypoints_2d", "hand_valid", "T_world_cam",
                 "camera_valid")


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

    def subset(self, rows: np.ndarray) -> ScoredEpisode:
        """The same episode restricted to stored rows ``rows`` (itself when ``rows`` are all, in order)."""
        if len(rows) == len(self) and np.array_equal(rows, np.arange(len(self))):
            return self
        arrays = {k: getattr(self, k)[rows] for k in SCORE_COLUMNS}
        return ScoredEpisode(self.dataset, self.episode_id, self.source_path, **arrays,
                             intrinsics=self.intrinsics, translation_metric=self.translation_metric,
                             hand_estimator=self.hand_estimator, camera_estimator=self.camera_estimator)


def _intrinsics(row: dict, where: str) -> Intrinsics:
    intr = row_intrinsics(row)
    if intr is None:
        raise EpisodeError(f"{where}: episode {row['episode_id']} has no intrinsics or image size")
    return intr


def read_scored_episodes(root: str | Path, episode_ids: set[str] | None = None) -> dict[str, ScoredEpisode]:
    """The ``ok`` episodes of a dataset (local folder or Hub repo id), by episode id, read through the
    dataset layer (:func:`~dexhands_data.dataset.reader.iter_episodes`, only :data:`SCORE_COLUMNS`)."""
    from ..dataset.reader import episode_rows, iter_episodes

    rows = {r["episode_id"]: r for r in episode_rows(root) if r.get("status") == "ok"}
    out: dict[str, ScoredEpisode] = {}
    for ep in iter_episodes(root, SCORE_COLUMNS, episode_ids):
        r = rows[ep.episode_id]
        sfi = ep.source_frame_index.astype(np.int64)
        if len(sfi) > 1 and not np.all(np.diff(sfi) > 0):
            raise EpisodeError(f"{root}: episode {ep.episode_id}: source_frame_index is not increasing")
        out[ep.episode_id] = ScoredEpisode(
            dataset=str(root), episode_id=ep.episode_id, source_path=r.get("source_path") or ep.episode_id,
            source_frame_index=sfi, keypoints_cam=ep.keypoints_cam, keypoints_2d=ep.keypoints_2d,
            hand_valid=ep.hand_valid, T_world_cam=ep.T_world_cam, camera_valid=ep.camera_valid,
            intrinsics=_intrinsics(r, str(root)),
            translation_metric=bool(r.get("translation_metric")),
            hand_estimator=r.get("hand_estimator") or "",
            camera_estimator=r.get("camera_estimator") or "",
        )
    return out
