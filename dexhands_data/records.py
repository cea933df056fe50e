"""Typed records that cross package boundaries: source reader -> estimators -> assembly -> writer.

Arrays carry their frames and units in the field docs. Shapes use N = stored frames of the episode.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .geometry import Intrinsics, project
from .keypoints import NUM_HANDS, NUM_KEYPOINTS


class EpisodeError(Exception):
    """A problem with one episode's input: the episode fails with this message, the run goes on.

    The message names the file and the problem, e.g. ``"clip.mp4: truncated stream after frame 41"``.
    """


@dataclass(frozen=True)
class EpisodeRef:
    """A cheap, serialisable pointer to one episode (what travels through Ray; never frames).

    ``path`` is absolute; ``relpath`` is relative to the input root (used in ids and metadata).
    ``metadata`` holds small JSON-able source facts found at discovery (fps, task, ...).
    """

    episode_id: str
    source: str
    path: str
    relpath: str
    split: str = "train"
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "EpisodeRef":
        return cls(**json.loads(text))


@dataclass
class VideoFrame:
    """One decoded frame. ``image`` is RGB uint8 (H, W, 3) as a person sees it (rotation applied), or
    None for a source that passes poses through without its video (EgoDex with ``--frame-size 0``)."""

    index: int  # index among the stored (possibly resampled) frames, 0-based
    source_index: int  # index of the frame in the source stream
    timestamp: float  # seconds from the start of the stream
    image: np.ndarray | None


@dataclass
class HandTrack:
    """Per-frame hands of one episode, left then right, 21 keypoints each (MANO order).

    keypoints_cam: (N, 2, 21, 3) float32, metres, each frame's own OpenCV camera frame; NaN if invalid.
    keypoints_2d: (N, 2, 21, 2) float32, pixels of the source frame; NaN if invalid.
    valid: (N, 2) bool. confidence: (N, 2, 21) float32 in [0, 1]. score: (N, 2) float32.
    lift_residual_px: (N, 2) float32 RMS reprojection residual of the 3D lift (NaN if not lifted).
    estimator: "<name>==<version>" or "ground_truth:<source>"; config: the estimator's settings.
    processing: counts of post-processing steps applied (e.g. {"handedness_swaps": 3}).
    """

    keypoints_cam: np.ndarray
    keypoints_2d: np.ndarray
    valid: np.ndarray
    confidence: np.ndarray
    score: np.ndarray
    lift_residual_px: np.ndarray
    estimator: str
    config: dict[str, Any] = field(default_factory=dict)
    processing: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def empty(cls, n: int, estimator: str) -> "HandTrack":
        nan = np.float32(np.nan)
        return cls(
            keypoints_cam=np.full((n, NUM_HANDS, NUM_KEYPOINTS, 3), nan, np.float32),
            keypoints_2d=np.full((n, NUM_HANDS, NUM_KEYPOINTS, 2), nan, np.float32),
            valid=np.zeros((n, NUM_HANDS), bool),
            confidence=np.zeros((n, NUM_HANDS, NUM_KEYPOINTS), np.float32),
            score=np.zeros((n, NUM_HANDS), np.float32),
            lift_residual_px=np.full((n, NUM_HANDS), nan, np.float32),
            estimator=estimator,
        )

    @classmethod
    def from_camera_points(
        cls, keypoints_cam: np.ndarray, K: np.ndarray, estimator: str, valid: np.ndarray | None = None,
        confidence: np.ndarray | None = None, config: dict[str, Any] | None = None,
    ) -> "HandTrack":
        """A ground-truth track from keypoints (N, 2, 21, 3) m in each frame's OpenCV camera.

        Pixels are their projection with ``K`` (3x3). A hand is valid where ``valid`` (N, 2) says
        (default: every hand) and all 21 keypoints are finite and in front of the camera; invalid
        hands get NaN keypoints and confidence 0. ``confidence`` (N, 2, 21) defaults to 1; score =
        valid; no lift residual (NaN). ``processing`` is the caller's to fill.
        """
        kp_cam = np.asarray(keypoints_cam, dtype=np.float64)
        kp_2d = project(kp_cam, K)  # NaN for a point behind the camera
        ok = np.isfinite(kp_cam).all(axis=(-1, -2)) & np.isfinite(kp_2d).all(axis=(-1, -2))
        ok &= np.ones(ok.shape, bool) if valid is None else np.asarray(valid, bool)
        conf = np.ones(ok.shape + (NUM_KEYPOINTS,)) if confidence is None else confidence
        return cls(
            keypoints_cam=np.where(ok[..., None, None], kp_cam, np.nan).astype(np.float32),
            keypoints_2d=np.where(ok[..., None, None], kp_2d, np.nan).astype(np.float32),
            valid=ok,
            confidence=np.where(ok[..., None], conf, 0.0).astype(np.float32),
            score=ok.astype(np.float32),
            lift_residual_px=np.full(ok.shape, np.nan, np.float32),
            estimator=estimator,
            config=dict(config or {}),
        )

    def __len__(self) -> int:
        return int(self.valid.shape[0])


@dataclass
class CameraTrack:
    """Camera poses of one episode.

    T_world_cam: (N, 4, 4) float64, camera (OpenCV axes) to world. valid: (N,) bool.
    translation_metric: translations are in metres (False: up to an unknown scale).
    static: the camera never moves. world_frame: what the world is (e.g. "first_camera").
    intrinsics: the intrinsics the poses were estimated with, when the estimator may change them
    (self-calibration); None means the episode's own intrinsics.
    """

    T_world_cam: np.ndarray
    valid: np.ndarray
    translation_metric: bool
    static: bool
    world_frame: str
    estimator: str
    config: dict[str, Any] = field(default_factory=dict)
    processing: dict[str, Any] = field(default_factory=dict)
    intrinsics: Intrinsics | None = None

    @classmethod
    def not_estimated(cls, n: int) -> "CameraTrack":
        """Identity poses flagged invalid: the camera motion was not estimated."""
        return cls(np.tile(np.eye(4), (n, 1, 1)), np.zeros(n, bool), False, False, "unknown", "none")


@dataclass
class EpisodeData:
    """Everything the writer needs for one finished episode.

    timestamps: (N,) float64 seconds, strictly increasing. source_frame_index: (N,) int.
    images: N JPEG byte strings, any indexable sequence (a list, or an ``images.ImageSpool`` on disk
    for long episodes), or None when frames are not embedded.
    gripper: (N,) float32 in [0, 1] or None for human hands.
    T_opencv_source: fixed axis change from the source's camera axes to OpenCV (4x4).
    """

    ref: EpisodeRef
    embodiment: str
    timestamps: np.ndarray
    source_frame_index: np.ndarray
    intrinsics: Intrinsics
    fps: float
    hands: HandTrack
    camera: CameraTrack
    images: Sequence[bytes] | None = None
    gripper: np.ndarray | None = None
    task: str | None = None
    T_opencv_source: np.ndarray = field(default_factory=lambda: np.eye(4))
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.timestamps.shape[0])
