"""The hand-estimator protocol (streaming).

An estimator is created once per worker (it may hold a model). For each episode the pipeline opens
a session with the intrinsics of the source frames, steps it frame by frame (so memory does not
grow with video length and other stages can use each frame's hands at once), then finishes it to
get the whole :class:`HandTrack` after temporal post-processing (and, for MediaPipe, the per-track
3D lift with the final intrinsics). It knows nothing of Parquet or Ray.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..geometry import Intrinsics
from ..records import HandTrack, VideoFrame


@dataclass
class FrameHands:
    """Hands of one frame, left then right (after the handedness rule of the backend).

    keypoints_cam (2, 21, 3) m, OpenCV camera frame; keypoints_2d (2, 21, 2) px; valid (2,) bool;
    confidence (2, 21); score (2,); lift_residual_px (2,). Invalid hands hold NaN keypoints.
    """

    keypoints_cam: np.ndarray
    keypoints_2d: np.ndarray
    valid: np.ndarray
    confidence: np.ndarray
    score: np.ndarray
    lift_residual_px: np.ndarray


class HandSession(Protocol):
    def step(self, frame: VideoFrame) -> FrameHands:
        """The frame's 2D keypoints and validity at once (other stages use them per frame); its 3D
        may be provisional: the final 3D comes from ``finish``."""
        ...

    def finish(self, intrinsics: Intrinsics | None = None) -> HandTrack:
        """The whole track after temporal post-processing, lifted with ``intrinsics`` (default: the
        session's; a pipeline that refines K, e.g. camera self-calibration, passes the final one)."""
        ...


class HandEstimator(Protocol):
    name: str
    version: str

    def config(self) -> dict:
        """Settings that change the output (hashed into the episode's config_hash)."""
        ...

    def session(self, intrinsics: Intrinsics) -> HandSession: ...
