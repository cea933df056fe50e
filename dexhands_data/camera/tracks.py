"""The feature tracks of a visual-odometry session (pixels on the working grid, world points)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Tracks:
    """Tracked features (M rows): current pixels, pixels in the keyframe, first-observation ray
    (world origin and unit direction), the triangulated world point (NaN if none) and a persistent
    id per track (unique within a session: the bundle adjustment joins a track's views by it)."""

    pts: np.ndarray
    kf_pts: np.ndarray
    birth_c: np.ndarray
    birth_d: np.ndarray
    X: np.ndarray
    ids: np.ndarray

    @classmethod
    def empty(cls) -> "Tracks":
        empty2 = np.zeros((0, 2), np.float32)
        return cls(empty2, empty2.copy(), np.zeros((0, 3)), np.zeros((0, 3)), np.zeros((0, 3)),
                   np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.pts)

    def keep(self, sel: np.ndarray) -> "Tracks":
        return Tracks(self.pts[sel], self.kf_pts[sel], self.birth_c[sel], self.birth_d[sel], self.X[sel],
                      self.ids[sel])

    def append(self, other: "Tracks") -> "Tracks":
        return Tracks(*(np.concatenate([a, b]) for a, b in zip(
            (self.pts, self.kf_pts, self.birth_c, self.birth_d, self.X, self.ids),
            (other.pts, other.kf_pts, other.birth_c, other.birth_d, other.X, other.ids))))
