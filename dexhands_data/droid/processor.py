"""One DROID episode -> :class:`~dexhands_data.records.EpisodeData` (the pipeline's EpisodeProcessor).

Frames of the output rows (data contract): world = robot base, so ``T_world_cam = T_base_cam`` (OpenCV
axes of the ZED left eye, metres); ``keypoints_cam`` = the pseudo-hand in the chosen camera's frame,
``inv(T_base_cam) @ p_base``, right hand only (the left hand is NaN and invalid); ``keypoints_2d`` its
projection with the stored frame's intrinsics; timestamps ``step / 15`` s.
"""

from __future__ import annotations

import numpy as np

from ..geometry import Intrinsics, project, se3_inverse
from ..images import encode_jpeg
from ..keypoints import RIGHT
from ..records import CameraTrack, EpisodeData, EpisodeError, EpisodeRef, HandTrack
from .cameras import (
    CalibrationTable,
    T_base_cam_from_extrinsics,
    default_intrinsics,
    intrinsics_from_calibration_vector,
)
from .pseudo_hand import MODES, pseudo_hand
from .readers import CAMERAS, FPS, DroidRecord, read_episode

EMBODIMENT = "parallel_gripper"
#: The known off-by-one between MP4 and HDF5 (droid-dataset/droid#54).
KNOWN_MISMATCH = "droid-dataset/droid#54"


class DroidProcessor:
    """Converts DROID episode references into EpisodeData.

    pseudo_hand: ``"oriented"`` (default) or ``"dexwm-official"`` (see :mod:`.pseudo_hand`).
    camera: ``"auto"`` (the released DexWM choice: the exterior camera whose MP4 is ``left_mp4_path``),
    ``"ext1"``, ``"ext2"`` or ``"wrist"`` (pose per step, following the end effector).
    embed_frames: decode the camera video and store JPEGs at ``short_side`` px (None keeps the size).
    calibration: path of the calibration release's ``intrinsics.json`` ([fx, cx, fy, cy] per serial);
    without it the ZED defaults are rescaled to the stored resolution.
    """

    def __init__(
        self,
        pseudo_hand: str = "oriented",
        camera: str = "auto",
        embed_frames: bool = True,
        short_side: int | None = 224,
        jpeg_quality: int = 90,
        calibration: str | None = None,
    ):
        if pseudo_hand not in MODES:
            raise ValueError(f"unknown pseudo-hand mode {pseudo_hand!r}; expected one of {MODES}")
        if camera not in ("auto", *CAMERAS):
            raise ValueError(f"unknown camera {camera!r}; expected auto, ext1, ext2 or wrist")
        self.pseudo_hand = pseudo_hand
        self.camera = camera
        self.embed_frames = embed_frames
        self.short_side = short_side
        self.jpeg_quality = jpeg_quality
        self.calibration = calibration
        self._calibration = CalibrationTable(calibration) if calibration else None

    def config(self) -> dict:
        return {
            "pseudo_hand": self.pseudo_hand, "camera": self.camera, "embed_frames": self.embed_frames,
            "short_side": self.short_side, "jpeg_quality": self.jpeg_quality, "calibration": self.calibration,
        }

    def __call__(self, ref: EpisodeRef) -> EpisodeData:
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

        base = pseudo_hand(self.pseudo_hand, rec.cartesian[keep], rec.gripper[keep])  # (n, 21, 3)
        T_cam_base = se3_inverse(T_world_cam)
        right_cam = base @ np.swapaxes(T_cam_base[:, :3, :3], 1, 2) + T_cam_base[:, None, :3, 3]

        intrinsics = self._intrinsics(rec, camera, width, height)
        n = keep.size
        hands = HandTrack.empty(n, "ground_truth:droid")
        # a pseudo-hand reaching behind the camera has no pixels: that frame's hand is marked missing
        front = np.all(right_cam[..., 2] > 0, axis=1)
        hands.keypoints_cam[front, RIGHT] = right_cam[front].astype(np.float32)
        hands.keypoints_2d[front, RIGHT] = project(right_cam[front], intrinsics.K).astype(np.float32)
        hands.valid[:, RIGHT] = front
        hands.confidence[front, RIGHT] = 1.0
        hands.score[front, RIGHT] = 1.0
        hands.config = {"pseudo_hand": self.pseudo_hand}
        hands.processing = {"behind_camera_frames": int(n - front.sum())}
        cam = CameraTrack(
            T_world_cam=T_world_cam, valid=np.ones(n, bool), translation_metric=True, static=static,
            world_frame="robot_base", estimator="ground_truth:droid_extrinsics",
            config={"camera": camera, "serial": rec.serials.get(camera)},
        )
        images = self._images(span, keep) if self.embed_frames else None
        extra = {
            "pseudo_hand": self.pseudo_hand, "camera": camera, "camera_serial": rec.serials.get(camera),
            "camera_choice": rec.official_camera_note if self.camera == "auto" else "requested",
            "layout": rec.layout, "success": rec.success, "trajectory_steps": int(rec.cartesian.shape[0]),
            "video_alignment": alignment, "keep_ranges": ref.metadata.get("keep_ranges"), **rec.extra,
        }
        return EpisodeData(
            ref=ref, embodiment=EMBODIMENT, timestamps=keep / FPS, source_frame_index=keep.astype(np.int64),
            intrinsics=intrinsics, fps=FPS, hands=hands, camera=cam, images=images,
            gripper=rec.gripper[keep].astype(np.float32), task=rec.task, T_opencv_source=np.eye(4),
            extra=extra,
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

    def _images(self, span, keep: np.ndarray) -> list[bytes]:
        images = [encode_jpeg(rgb, self.short_side, self.jpeg_quality) for _, rgb in span.frames(keep)]
        if len(images) != keep.size:
            raise EpisodeError(f"{span.path}: decoded {len(images)} of {keep.size} frames")
        return images


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
