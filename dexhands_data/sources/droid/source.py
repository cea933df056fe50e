"""The DROID source: discovery with filters, and one episode opened with ground-truth hands and camera.

Frames of the opened episode (data contract): world = robot base, so ``T_world_cam = T_base_cam``
(OpenCV axes of the ZED left eye, metres); ``hands.keypoints_cam`` = the pseudo-hand in the chosen
camera's frame, ``inv(T_base_cam) @ p_base``, right hand only (the left hand is NaN and invalid);
``keypoints_2d`` its projection with the stored frame's intrinsics; timestamps ``step / 15`` s.
The per-step arrays are computed without decoding a frame, so an episode without embedded frames
(``--frame-size 0``) never opens its video beyond the MP4 header.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ...geometry import Intrinsics, se3_inverse, transform_points
from ...keypoints import NUM_HANDS, RIGHT
from ...records import CameraTrack, EpisodeError, EpisodeRef, HandTrack, VideoFrame
from ..base import OpenedEpisode
from .cameras import CalibrationTable, T_base_cam_from_extrinsics, default_intrinsics, intrinsics_from_calibration_vector
from .pseudo_hand import MODES, pseudo_hand
from .readers import CAMERAS, FPS, SOURCE, DroidRecord, discover, read_episode
from .video import VideoSpan

EMBODIMENT = "parallel_gripper"
#: The known off-by-one between MP4 and HDF5 (droid-dataset/droid#54).
KNOWN_MISMATCH = "droid-dataset/droid#54"
LAYOUTS = ("raw", "lerobot")


class DroidSource:
    """DROID episodes as a :class:`~dexhands_data.sources.base.Source`.

    pseudo_hand: ``"oriented"`` (default) or ``"dexwm-official"`` (see :mod:`.pseudo_hand`).
    camera: ``"auto"`` (the released DexWM choice: the exterior camera whose MP4 is ``left_mp4_path``),
    ``"ext1"``, ``"ext2"`` or ``"wrist"`` (pose per step, following the end effector).
    calibration: path of the calibration release's ``intrinsics.json`` ([fx, cx, fy, cy] per serial);
    without it the ZED defaults are rescaled to the stored resolution.
    layout (``raw``, ``lerobot`` or None to detect), success_only, episode_ids and keep_ranges filter
    discovery (see :func:`.readers.discover`).
    """

    name = SOURCE

    def __init__(self, pseudo_hand: str = "oriented", camera: str = "auto", calibration: str | None = None,
                 layout: str | None = None, success_only: bool = False, episode_ids: list[str] | None = None,
                 keep_ranges: str | None = None):
        if pseudo_hand not in MODES:
            raise ValueError(f"unknown pseudo-hand mode {pseudo_hand!r}; expected one of {MODES}")
        if camera not in ("auto", *CAMERAS):
            raise ValueError(f"unknown camera {camera!r}; expected auto, ext1, ext2 or wrist")
        if layout not in (None, *LAYOUTS):
            raise ValueError(f"unknown DROID layout {layout!r}; expected raw or lerobot")
        self.pseudo_hand = pseudo_hand
        self.camera = camera
        self.calibration = calibration
        self._calibration = CalibrationTable(calibration) if calibration else None
        self.layout = layout
        self.success_only = success_only
        self.episode_ids = episode_ids
        self.keep_ranges = keep_ranges

    def discover(self, root: str) -> list[EpisodeRef]:
        return discover(root, self.layout, self.success_only, self.episode_ids, self.keep_ranges)

    def open(self, ref: EpisodeRef) -> OpenedEpisode:
        rec = read_episode(ref)
        camera = self._resolve_camera(rec)
        span = rec.videos.get(camera)
        if span is None:
            raise EpisodeError(f"{rec.path}: no {camera} camera video in this episode")
        if camera not in rec.extrinsics:
            raise EpisodeError(f"{rec.path}: no {camera} camera extrinsics in this episode")
        video_frames, width, height = span.probe()
        steps, alignment = _align_video(rec, span.path, video_frames)
        keep = _kept_steps(ref, steps)
        if keep.size == 0:
            raise EpisodeError(f"{rec.path}: the keep ranges leave no steps")

        T_base_cam = T_base_cam_from_extrinsics(rec.extrinsics[camera])
        static = T_base_cam.ndim == 2
        if not static and T_base_cam.shape[0] < steps:
            raise EpisodeError(
                f"{rec.path}: {camera} extrinsics cover {T_base_cam.shape[0]} of {steps} steps")
        T_world_cam = np.tile(T_base_cam, (keep.size, 1, 1)) if static else T_base_cam[keep]
        if not np.all(np.isfinite(T_world_cam)):
            raise EpisodeError(f"{rec.path}: {camera} extrinsics are not finite")

        intrinsics = self._intrinsics(rec, camera, width, height)
        base = pseudo_hand(self.pseudo_hand, rec.cartesian[keep], rec.gripper[keep])  # (n, 21, 3)
        hands = _pseudo_hand_track(transform_points(se3_inverse(T_world_cam), base), intrinsics)
        hands.config = {"pseudo_hand": self.pseudo_hand}
        hands.processing = {"behind_camera_frames": int(keep.size - hands.valid[:, RIGHT].sum())}
        cam = CameraTrack(
            T_world_cam=T_world_cam, valid=np.ones(keep.size, bool), translation_metric=True, static=static,
            world_frame="robot_base", estimator="ground_truth:droid_extrinsics",
            config={"camera": camera, "serial": rec.serials.get(camera)},
        )
        extra = {
            "pseudo_hand": self.pseudo_hand, "camera": camera, "camera_serial": rec.serials.get(camera),
            "camera_choice": rec.official_camera_note if self.camera == "auto" else "requested",
            "layout": rec.layout, "success": rec.success, "trajectory_steps": int(rec.cartesian.shape[0]),
            "video_alignment": alignment, "keep_ranges": ref.metadata.get("keep_ranges"), **rec.extra,
        }
        return OpenedEpisode(
            ref=ref, intrinsics=intrinsics, fps=FPS, frame_iter=lambda: _frames(span, keep),
            num_frames=int(keep.size), hands=hands, camera=cam, task=rec.task, embodiment=EMBODIMENT,
            gripper=rec.gripper[keep].astype(np.float32), T_opencv_source=np.eye(4), extra=extra,
            timestamps=keep / FPS, source_frame_index=keep.astype(np.int64),
        )

    def _resolve_camera(self, rec: DroidRecord) -> str:
        if self.camera != "auto":
            return self.camera
        if rec.official_camera is None:
            raise EpisodeError(
                f"{rec.path}: {rec.official_camera_note} (the released code skips such episodes)")
        return rec.official_camera

    def _intrinsics(self, rec: DroidRecord, camera: str, width: int, height: int) -> Intrinsics:
        if self._calibration is not None and camera in rec.serials:
            values = self._calibration.lookup(rec.calibration_key, rec.serials[camera])
            if values is not None:
                try:
                    return intrinsics_from_calibration_vector(values, width, height)
                except ValueError as e:
                    raise EpisodeError(f"{self.calibration}: {rec.serials[camera]}: {e}") from e
        return default_intrinsics(width, height)


def _pseudo_hand_track(right_cam: np.ndarray, intrinsics: Intrinsics) -> HandTrack:
    """The right-hand track of pseudo-hand points (n, 21, 3) m in the camera (no left hand); a frame
    whose pseudo-hand reaches behind the camera has no pixels and its hand is marked missing."""
    kp = np.full((right_cam.shape[0], NUM_HANDS) + right_cam.shape[1:], np.nan)
    kp[:, RIGHT] = right_cam
    return HandTrack.from_camera_points(kp, intrinsics.K, "ground_truth:droid")


def _frames(span: VideoSpan, keep: np.ndarray) -> Iterator[VideoFrame]:
    """The kept steps' frames: stored index i, source index = the step, time = step / 15 s."""
    for i, (k, rgb) in enumerate(span.frames(keep)):
        yield VideoFrame(i, int(k), k / FPS, rgb)


def _align_video(rec: DroidRecord, video: str, frames: int) -> tuple[int, dict]:
    """Steps usable with a video of ``frames`` frames, aligned at the first frame.

    Equal lengths pass; the known one-frame difference (droid#54) keeps the shorter length and is
    recorded; anything else is an error (never resampled).
    """
    steps = int(rec.cartesian.shape[0])
    info = {"video_frames": frames, "trajectory_steps": steps}
    if frames == steps:
        return steps, {**info, "action": "none"}
    if abs(frames - steps) == 1:
        action = "dropped the last trajectory step" if frames < steps else "ignored the last video frame"
        return min(frames, steps), {**info, "action": f"{action} ({KNOWN_MISMATCH})"}
    raise EpisodeError(f"{video}: video has {frames} frames but the trajectory has {steps} steps")


def _kept_steps(ref: EpisodeRef, steps: int) -> np.ndarray:
    """Sorted step indices inside the ref's half-open keep ranges (all steps when there are none)."""
    ranges = ref.metadata.get("keep_ranges")
    if ranges is None:
        return np.arange(steps, dtype=np.int64)
    mask = np.zeros(steps, bool)
    for start, end in ranges:
        mask[max(0, int(start)):min(steps, int(end))] = True
    return np.nonzero(mask)[0].astype(np.int64)
