"""``--source egodex``: Apple EgoDex recordings, ``<split>/<task>/<k>.hdf5`` + ``<k>.mp4``.

Ground truth is passed through (formats.md §2):

* ``transforms/camera`` (N, 4, 4) is T_world_cam in the ARKit session world (``world_frame =
  "arkit_origin"``, metres, origin near the feet, y up); video frame i <-> row i.
* Hands: 21 of the 25 ARKit joints per side (``JOINTS_21``: wrist + 20 finger joints, the four
  ``{F}FingerMetacarpal`` dropped), position = translation of ``transforms/<side><joint>``, re-expressed
  in each frame's OpenCV camera: ``keypoints_cam = inv(T_world_cam_cv) @ p_world``.
* Camera axes: ``camera_axes="opencv"`` (default) takes the stored camera as OpenCV (x right, y down,
  z forward), as Apple's utility and DexWM do; ``"arkit"`` takes it as ARKit/OpenGL (x right, y up,
  z backward) and converts with ``T_opencv_source = diag(1, -1, -1, 1)``, so that
  ``T_world_cam_cv = T_world_cam_stored @ inv(T_opencv_source)``; ``"auto"`` picks, per episode, the
  convention under which the wrists lie in front of the camera and inside the image in more frames.
  Every episode records that evidence in ``extra["axis_check"]``.
* Intrinsics: ``camera/intrinsic`` when present, finite and 3x3 (``source="dataset"``); otherwise
  (part1 files hold an empty (0, 3) array, ml-egodex#10) the documented constant fx = fy = 736.6339,
  cx = 960, cy = 540 at 1920x1080 (``source="default"``). Either K belongs to the 2cx x 2cy frame; a
  video stored as a uniform downscale of it gets K scaled (recorded in the hands' ``processing``:
  ``intrinsics_native_size``, ``intrinsics_scale``); another aspect ratio or a larger video fails the
  episode (``egodex_intrinsics.py``).
* Without the ``<k>.mp4`` (``require_video=False``, what ``extract --frame-size 0`` asks for): the
  poses pass through on their own, one frame per pose row at the nominal 30 Hz, the image size taken
  from K (2 cx x 2 cy; 1920x1080 without K), recorded in ``extra["image_size_from"]``; frames carry no
  image. With frames requested a missing video stays a per-episode error.
* Confidences: ``confidences/<joint>`` kept per keypoint; a missing group gives 1.0 and is recorded.
* Task text: for ``llm_type == "reversible"``, ``llm_description`` if ``which_llm_description == "1"``
  else ``llm_description2``; otherwise ``llm_description``; fallbacks ``description``, then the task
  folder name (recorded in ``extra["task_source"]``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..geometry import Intrinsics, project, se3_inverse, transform_points
from ..keypoints import NUM_HANDS, NUM_KEYPOINTS
from ..records import CameraTrack, EpisodeError, EpisodeRef, HandTrack, VideoFrame
from ..video_io import FrameReader, VideoInfo, probe_video, select_nearest_frames
from .base import OpenedEpisode
from .egodex_intrinsics import FittedIntrinsics, IntrinsicsMismatch, fit_intrinsics, native_frame

NAME = "egodex"

#: ARKit joint names (without the side prefix) in canonical MANO order (dexwm.md §2.1).
JOINTS_21: tuple[str, ...] = (
    "Hand",
    "ThumbKnuckle", "ThumbIntermediateBase", "ThumbIntermediateTip", "ThumbTip",
    *(f"{f}Finger{j}" for f in ("Index", "Middle", "Ring", "Little")
      for j in ("Knuckle", "IntermediateBase", "IntermediateTip", "Tip")),
)
assert len(JOINTS_21) == NUM_KEYPOINTS
SIDES: tuple[str, str] = ("left", "right")

#: fx = fy, cx, cy, width, height of the documented EgoDex camera.
DEFAULT_K = (736.6339, 960.0, 540.0, 1920, 1080)

#: source camera axes -> T_opencv_source.
CAMERA_AXES: dict[str, np.ndarray] = {
    "opencv": np.eye(4),
    "arkit": np.diag([1.0, -1.0, -1.0, 1.0]),
}

_RIGID_ATOL = 1e-3  # float32 ARKit rotations are orthonormal to ~1e-6; this only catches garbage


#: EgoDex poses and video are 30 Hz (one pose row per video frame).
NOMINAL_FPS = 30.0


def image_size_from_K(K: np.ndarray | None) -> tuple[int, int]:
    """(width, height) of the grid a centred-principal-point K refers to (2 cx, 2 cy); the documented
    1920x1080 without K."""
    if K is None:
        return DEFAULT_K[3], DEFAULT_K[4]
    return native_frame(K[0, 2], K[1, 2])


def joint_name(side: str, joint: str) -> str:
    return f"{side}{joint}"


def _attr_str(attrs: h5py.AttributeManager, key: str) -> str | None:
    if key not in attrs:
        return None
    value = attrs[key]
    if isinstance(value, np.ndarray):
        value = value.item() if value.size == 1 else None
    if isinstance(value, (bytes, np.bytes_)):
        value = value.decode("utf-8", errors="replace")
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def task_description(attrs: h5py.AttributeManager, task_folder: str) -> tuple[str, str]:
    """The episode's language description and which attribute it came from (formats.md §2)."""
    if _attr_str(attrs, "llm_type") == "reversible":
        which = _attr_str(attrs, "which_llm_description")
        key = "llm_description" if which in ("1", "1.0") else "llm_description2"
    else:
        key = "llm_description"
    for candidate in (key, "description"):
        text = _attr_str(attrs, candidate)
        if text:
            return text, candidate
    return task_folder.replace("_", " "), "task_folder"


def axis_evidence(
    T_world_cam_stored: np.ndarray, wrists_world: np.ndarray, intr: Intrinsics
) -> dict[str, float]:
    """Fraction of frames whose two wrists are in front of the camera and inside the image, per convention.

    T_world_cam_stored (N, 4, 4) as stored; wrists_world (N, 2, 3) m. In egocentric manipulation video
    the hands are in view most of the time, so the right convention scores high and the wrong one ~0.
    """
    out = {}
    T_cam_world = se3_inverse(T_world_cam_stored)
    for name, T_cv_src in CAMERA_AXES.items():
        T = T_cv_src @ T_cam_world
        p = transform_points(T, wrists_world)
        uv = project(p, intr.K)
        with np.errstate(invalid="ignore"):
            u, v = uv[..., 0], uv[..., 1]
            inside = (u >= 0) & (u < intr.width) & (v >= 0) & (v < intr.height)
        ok = (p[..., 2] > 0) & inside
        out[name] = float(np.mean(ok.all(axis=1))) if len(ok) else 0.0
    return out


def ground_truth_tracks(
    raw: RawEgoDex, keep: np.ndarray, axes: str, intr: Intrinsics
) -> tuple[HandTrack, CameraTrack]:
    """Hands and camera at pose rows ``keep`` with camera ``axes`` converted to OpenCV:
    ``T_world_cam = T_stored @ inv(T_opencv_source)``. A hand is valid when all 21 keypoints are
    finite and in front of the camera."""
    T_world_cam = raw.T_world_cam[keep] @ np.linalg.inv(CAMERA_AXES[axes])
    T_cam_world = se3_inverse(T_world_cam)
    kp_cam = transform_points(T_cam_world[:, None], raw.joints_world[keep])
    # a keypoint behind the camera has no pixel: from_camera_points marks that hand missing
    hands = HandTrack.from_camera_points(kp_cam, intr.K, f"ground_truth:{NAME}", confidence=raw.confidence[keep],
                                         config={"camera_axes": axes, "joints": "arkit_21"})
    finite = np.isfinite(kp_cam).all(axis=(-1, -2))
    hands.processing = {"hands_non_finite": int(np.sum(~finite)),
                        "hands_behind_camera": int(np.sum(finite & ~hands.valid))}
    m = len(keep)
    camera = CameraTrack(
        T_world_cam=T_world_cam,
        valid=np.ones(m, bool),
        translation_metric=True,
        static=False,
        world_frame="arkit_origin",
        estimator=f"ground_truth:{NAME}",
        config={"camera_axes": axes},
    )
    return hands, camera


class EgoDexSource:
    """EgoDex reader (ground-truth hands and camera). See the module docstring for frames and rules."""

    name = NAME

    def __init__(self, camera_axes: str = "opencv", target_fps: float | None = None,
                 require_video: bool = True):
        if camera_axes not in (*CAMERA_AXES, "auto"):
            raise ValueError(f"camera_axes must be one of {[*CAMERA_AXES, 'auto']}, got {camera_axes!r}")
        if target_fps is not None and not target_fps > 0:
            raise ValueError(f"target_fps must be positive, got {target_fps}")
        self.camera_axes = camera_axes
        self.target_fps = target_fps
        self.require_video = bool(require_video)

    def config(self) -> dict[str, Any]:
        return {"camera_axes": self.camera_axes, "target_fps": self.target_fps,
                "require_video": self.require_video}

    def discover(self, root: str) -> list[EpisodeRef]:
        root_path = Path(root).resolve()
        if not root_path.is_dir():
            raise ValueError(f"{root}: not a folder")
        files = sorted(root_path.rglob("*.hdf5"))
        if not files:
            raise ValueError(f"{root}: no EgoDex <split>/<task>/<k>.hdf5 files found")
        refs = []
        for h5 in files:
            task_folder, part = h5.parent.name, h5.parent.parent.name
            refs.append(
                EpisodeRef(
                    episode_id=f"{part}/{task_folder}/{h5.stem}",
                    source=NAME,
                    path=str(h5),
                    relpath=h5.relative_to(root_path).as_posix(),
                    split="test" if part == "test" else "train",
                    metadata={"part": part, "task_folder": task_folder, "video": str(h5.with_suffix(".mp4"))},
                )
            )
        return sorted(refs, key=lambda r: r.episode_id)

    def open(self, ref: EpisodeRef) -> OpenedEpisode:
        h5_path = Path(ref.path)
        mp4_path = h5_path.with_suffix(".mp4")
        has_video = mp4_path.is_file()
        if not has_video and self.require_video:
            raise EpisodeError(f"{mp4_path}: video file not found (pairs with {h5_path.name}); "
                               "without frames (--frame-size 0) the poses pass through without it")
        raw = read_hdf5(h5_path, ref.metadata.get("task_folder", h5_path.parent.name))
        if has_video:
            info = probe_video(str(mp4_path))
            width, height, fps = info.width, info.height, info.fps
            video_frames = info.num_frames if info.num_frames_exact else None
            size_from = "video"
        else:  # poses only: the image grid is the one K refers to, rows at the nominal rate
            info, video_frames, fps = None, None, NOMINAL_FPS
            width, height, size_from = *image_size_from_K(raw.K), "K" if raw.K is not None else "default"

        n = raw.T_world_cam.shape[0] if video_frames is None else min(raw.T_world_cam.shape[0], video_frames)
        if n == 0:
            raise EpisodeError(f"{mp4_path if info else h5_path}: no frames")
        try:
            fitted = raw.intrinsics(width, height)
        except IntrinsicsMismatch as exc:
            raise EpisodeError(f"{h5_path} with {mp4_path.name}: {raw.intrinsics_note}: {exc}") from None
        intr = fitted.intrinsics
        wrists = raw.joints_world[:n, :, 0]
        evidence = axis_evidence(raw.T_world_cam[:n], wrists, intr)
        axes = self.camera_axes
        if axes == "auto":
            axes = max(CAMERA_AXES, key=lambda a: (evidence[a], a == "opencv"))

        # stored frames: all n, or those nearest to k / target_fps (pose row i <-> video frame i at i / fps)
        keep = np.arange(n)
        if self.target_fps is not None:
            keep = select_nearest_frames(keep / fps, self.target_fps, 1 / fps)
        hands, camera = ground_truth_tracks(raw, keep, axes, intr)
        if fitted.rescaled:
            hands.processing.update(fitted.processing())
        extra = {
            "video": mp4_path.name if info is not None else None,
            "image_size_from": size_from,
            "pose_frames": int(raw.T_world_cam.shape[0]),
            "video_frames": video_frames,
            "camera_axes": axes,
            "axis_check": evidence,
            "intrinsics_note": raw.intrinsics_note + (
                f", scaled x {fitted.scale:.4f} from {fitted.native_size[0]}x{fitted.native_size[1]}"
                if fitted.rescaled else ""),
            "confidences": raw.confidence_note,
            "task_source": raw.task_source,
            "attributes": raw.attributes,
        }

        def frame_iter() -> Iterator[VideoFrame]:
            if info is None:  # no video: frames carry their pose row and time, no image
                for out, row in enumerate(keep):
                    yield VideoFrame(out, int(row), float(row) / fps, None)
            else:
                yield from _decode(mp4_path, info, keep)

        return OpenedEpisode(
            ref=ref,
            intrinsics=intr,
            fps=fps if self.target_fps is None else float(self.target_fps),
            frame_iter=frame_iter,
            num_frames=len(keep),
            hands=hands,
            camera=camera,
            task=raw.task,
            embodiment="human",
            T_opencv_source=CAMERA_AXES[axes].copy(),
            extra=extra,
        )


@dataclass
class RawEgoDex:
    """What one HDF5 holds, validated. T_world_cam (N, 4, 4) as stored (source axes); joints_world
    (N, 2, 21, 3) m, canonical order; confidence (N, 2, 21); K (3, 3) or None when unusable."""

    T_world_cam: np.ndarray
    joints_world: np.ndarray
    confidence: np.ndarray
    confidence_note: str
    K: np.ndarray | None
    intrinsics_note: str
    task: str
    task_source: str
    attributes: dict[str, str]

    def intrinsics(self, width: int, height: int) -> FittedIntrinsics:
        """K (stored, else the documented constant) on a ``width`` x ``height`` video
        (``egodex_intrinsics``: used as stored, scaled to a downscaled video, or IntrinsicsMismatch)."""
        if self.K is None:
            f, cx, cy, _, _ = DEFAULT_K
            return fit_intrinsics(f, f, cx, cy, width, height, "default")
        K = self.K
        return fit_intrinsics(K[0, 0], K[1, 1], K[0, 2], K[1, 2], width, height, "dataset")


def read_hdf5(path: Path, task_folder: str) -> RawEgoDex:
    try:
        f = h5py.File(path, "r")
    except (OSError, ValueError) as exc:
        raise EpisodeError(f"{path}: cannot open HDF5 ({exc})") from exc
    try:
        return _read_hdf5(f, path, task_folder)
    except (TypeError, ValueError, KeyError, AttributeError, OSError) as exc:
        # a group where a dataset belongs, strings where numbers belong, unreadable chunks
        raise EpisodeError(f"{path}: malformed EgoDex HDF5 ({type(exc).__name__}: {exc})") from exc


def _read_hdf5(f: h5py.File, path: Path, task_folder: str) -> RawEgoDex:
    with f:
        if "transforms" not in f or "camera" not in f["transforms"]:
            raise EpisodeError(f"{path}: missing dataset transforms/camera")
        tr = f["transforms"]
        names = [joint_name(s, j) for s in SIDES for j in JOINTS_21]
        missing = [n for n in names if n not in tr]
        if missing:
            raise EpisodeError(f"{path}: missing hand transforms {['transforms/' + m for m in missing[:6]]}"
                               + (f" and {len(missing) - 6} more" if len(missing) > 6 else ""))
        T_cam = np.asarray(tr["camera"][()], dtype=np.float64)
        if T_cam.ndim != 3 or T_cam.shape[1:] != (4, 4):
            raise EpisodeError(f"{path}: transforms/camera has shape {T_cam.shape}, expected (N, 4, 4)")
        n = T_cam.shape[0]
        _check_camera(path, T_cam)
        joints = np.empty((n, NUM_HANDS, NUM_KEYPOINTS, 3))
        for h, side in enumerate(SIDES):
            for k, j in enumerate(JOINTS_21):
                T = tr[joint_name(side, j)]
                if T.shape != (n, 4, 4):
                    raise EpisodeError(
                        f"{path}: transforms/{joint_name(side, j)} has shape {T.shape}, expected {(n, 4, 4)}"
                    )
                joints[:, h, k] = np.asarray(T[:, :3, 3], dtype=np.float64)

        confidence = np.ones((n, NUM_HANDS, NUM_KEYPOINTS))
        confidence_note = "dataset"
        if "confidences" not in f:
            confidence_note = "missing (1.0 used)"
        else:
            absent = []
            for h, side in enumerate(SIDES):
                for k, j in enumerate(JOINTS_21):
                    name = joint_name(side, j)
                    if name not in f["confidences"]:
                        absent.append(name)
                        continue
                    c = np.asarray(f["confidences"][name][()], dtype=np.float64).reshape(-1)
                    if c.shape[0] != n:
                        raise EpisodeError(
                            f"{path}: confidences/{name} has {c.shape[0]} rows, transforms have {n}"
                        )
                    confidence[:, h, k] = np.clip(np.nan_to_num(c, nan=0.0), 0.0, 1.0)
            if absent:
                confidence_note = f"missing for {absent} (1.0 used)"

        K, intrinsics_note = None, "camera/intrinsic missing: documented constant used"
        if "camera" in f and "intrinsic" in f["camera"]:
            k_raw = np.asarray(f["camera"]["intrinsic"][()], dtype=np.float64)
            if k_raw.shape == (3, 3) and np.all(np.isfinite(k_raw)) and k_raw[0, 0] > 0 and k_raw[1, 1] > 0:
                K, intrinsics_note = k_raw, "camera/intrinsic"
            else:
                shape = list(k_raw.shape)
                intrinsics_note = f"camera/intrinsic unusable (shape {shape}): documented constant used"

        task, task_source = task_description(f.attrs, task_folder)
        kept = ("task", "environment", "object", "session_name", "llm_type")
        attributes = {k: _attr_str(f.attrs, k) for k in kept if _attr_str(f.attrs, k) is not None}
    return RawEgoDex(
        T_world_cam=T_cam, joints_world=joints, confidence=confidence, confidence_note=confidence_note,
        K=K, intrinsics_note=intrinsics_note, task=task, task_source=task_source, attributes=attributes,
    )


def _check_camera(path: Path, T: np.ndarray) -> None:
    finite = np.isfinite(T).all(axis=(1, 2))
    R = T[:, :3, :3]
    with np.errstate(invalid="ignore"):
        ortho = np.abs(np.einsum("nij,nkj->nik", R, R) - np.eye(3)).max(axis=(1, 2)) < _RIGID_ATOL
        proper = np.abs(np.linalg.det(np.where(finite[:, None, None], R, np.eye(3))) - 1.0) < _RIGID_ATOL
        bottom = np.abs(T[:, 3] - [0, 0, 0, 1]).max(axis=1) < _RIGID_ATOL
    bad = np.flatnonzero(~(finite & ortho & proper & bottom))
    if bad.size:
        kind = "non-finite" if not finite[bad[0]] else "non-rigid"
        raise EpisodeError(
            f"{path}: transforms/camera is {kind} in {bad.size} of {len(T)} frames "
            f"(first: {bad[:5].tolist()})"
        )


# ----------------------------------------------------------------------------- video


def _decode(path: Path, info: VideoInfo, keep: np.ndarray) -> Iterator[VideoFrame]:
    """Decoded frames ``keep`` (sorted source indices; RGB uint8, video_io), re-indexed 0.. in order.

    Pose row i is decoded frame i, so a video that ends early or skips a frame raises :class:`EpisodeError`.
    """
    wanted = set(int(i) for i in keep)
    last = int(keep[-1])
    out = 0
    decoded = 0
    for frame in FrameReader(str(path), info=info):
        if frame.source_index != decoded:
            raise EpisodeError(
                f"{path}: frame {decoded} has a non-increasing timestamp: pose rows would misalign"
            )
        decoded += 1
        if frame.source_index in wanted:
            frame.index = out
            out += 1
            yield frame
        if frame.source_index >= last:
            return
    raise EpisodeError(f"{path}: video ended after {decoded} frames, the poses need {last + 1}")
