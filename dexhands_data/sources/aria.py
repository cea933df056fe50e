"""``--source aria``: Project Aria recordings (VRS + MPS), as used by HOT3D, Ego-Exo4D and ADT.

**What ``--input`` points at.** A folder searched recursively for ``*.vrs`` files; each VRS is one
episode, and its MPS outputs are looked up in the VRS's folder (``TRAJECTORY_CANDIDATES``,
``HAND_CANDIDATES``: ``mps/slam/``, ``slam/``, ``trajectory/`` (the projectaria_tools sample layout),
ADT's ``aria_trajectory.csv``; ``mps/hand_tracking/``, ``hand_tracking/``)::

    <input>/<recording>/recording.vrs
    <input>/<recording>/mps/slam/closed_loop_trajectory.csv          (required)
    <input>/<recording>/mps/hand_tracking/hand_tracking_results.csv  (optional)

**Frames.** The RGB stream (``camera-rgb``, 214-1) is a Fisheye624 image stored rotated 90°. Each
frame is (1) rotated 90° **clockwise** to upright (``np.rot90(img, -1)``: upright pixel
(u', v') = (H-1-v, u), camera axes x' = -y, y' = x, z' = z, i.e.
``calibration.rotate_camera_calib_cw90deg``), then (2) undistorted (the mapping of
``calibration.distort_by_calibration``, applied with ``cv2.remap``) to a **pinhole** camera of
``pinhole_size`` x ``pinhole_size`` px, focal ``f = f_fisheye * pinhole_size / W_fisheye * focal_scale``,
principal point ((S-1)/2, (S-1)/2) (``calibration.get_linear_camera_calibration``). The episode's
:class:`Intrinsics` describe that pinhole image; ``keypoints_2d`` are pinhole projections of
``keypoints_cam``.

**Calibration** (``calibration``): ``auto`` (default) uses MPS ``online_calibration.jsonl`` next to
the trajectory when present (the record nearest the video's middle), else the VRS factory
calibration; ``online`` / ``factory`` force one. A calibration of another resolution is rescaled.

**Poses.** ``T_world_cam = T_world_device(t) @ T_device_rgb_upright``: the closed-loop trajectory
slerp-interpolated at the frame's device time, times the camera-rgb extrinsic with the upright
rotation applied. World: the MPS world (``"mps_world"``, gravity aligned,
metres). ``T_opencv_source`` is the fixed rotation from Aria's stored (rotated) RGB camera axes to the
upright camera, so ``T_world_cam @ T_opencv_source`` is Aria's own ``T_world_rgb``.

**Time alignment** (:mod:`.aria_mps`). Frame times are VRS ``DEVICE_TIME`` capture timestamps, the
clock of MPS ``tracking_timestamp_us``. Camera: interpolated inside the trajectory, invalid outside it
or across gaps > ``max_pose_gap_s`` (no overlap at all fails the episode). Hands: the nearest
hand-tracking row within ``hand_tolerance_s``, else invalid; rows outside the trajectory span are
invalid; hand tracking sharing no time with the trajectory fails the episode.

**Hands.** Landmarks re-ordered to MANO order; the thumb CMC, which Aria lacks, is estimated
(confidence 0, :func:`.aria_mps.estimate_thumb_cmc`). Wrist-only MPS output and hands with a keypoint
behind the camera are stored invalid.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..geometry import Intrinsics, se3, se3_inverse, transform_points
from ..keypoints import NUM_KEYPOINTS
from ..records import CameraTrack, EpisodeError, EpisodeRef, HandTrack, VideoFrame
from ..video_io import select_nearest_frames
from . import aria_mps
from .base import OpenedEpisode

NAME = "aria"
RGB_LABEL = "camera-rgb"

TRAJECTORY_CANDIDATES: tuple[str, ...] = (
    "mps/slam/closed_loop_trajectory.csv",
    "slam/closed_loop_trajectory.csv",
    "mps/trajectory/closed_loop_trajectory.csv",
    "trajectory/closed_loop_trajectory.csv",
    "closed_loop_trajectory.csv",
    "aria_trajectory.csv",
)
#: (relative path, kind) in order of preference: full landmarks before wrist-only files.
HAND_CANDIDATES: tuple[tuple[str, str], ...] = tuple(
    (f"{d}{name}", kind)
    for name, kind in (
        ("hand_tracking_results.csv", "landmarks"),
        ("hand_tracking_results_v2.csv", "landmarks"),
        ("wrist_and_palm_poses.csv", "wrist"),
        ("wrist_and_palm_poses_v2.csv", "wrist"),
    )
    for d in ("mps/hand_tracking/", "hand_tracking/", "")
)

#: where the camera-rgb calibration comes from (see AriaSource._rgb_calibration).
CALIBRATIONS: tuple[str, ...] = ("auto", "online", "factory")

#: upright camera axes from the stored (rotated) RGB camera axes: x' = -y, y' = x, z' = z.
T_UPRIGHT_RAW = se3(np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]), np.zeros(3))


def find_first(folder: Path, candidates: tuple[str, ...]) -> Path | None:
    for rel in candidates:
        p = folder / rel
        if p.is_file():
            return p
    return None


def find_hand_tracking(folder: Path) -> tuple[Path, str] | None:
    for rel, kind in HAND_CANDIDATES:
        p = folder / rel
        if p.is_file():
            return p, kind
    return None


class AriaSource:
    """Aria VRS + MPS reader (ground truth hands and camera). See the module docstring for frames."""

    name = NAME

    def __init__(
        self,
        pinhole_size: int | None = 1024,
        focal_scale: float = 1.0,
        hand_tolerance_s: float = 0.05,
        max_pose_gap_s: float = 0.1,
        target_fps: float | None = None,
        calibration: str = "auto",
    ):
        if pinhole_size is not None and pinhole_size < 16:
            raise ValueError(f"pinhole_size must be >= 16 px, got {pinhole_size}")
        if focal_scale <= 0:
            raise ValueError(f"focal_scale must be > 0, got {focal_scale}")
        if target_fps is not None and not target_fps > 0:
            raise ValueError(f"target_fps must be positive, got {target_fps}")
        if calibration not in CALIBRATIONS:
            raise ValueError(f"calibration must be one of {CALIBRATIONS}, got {calibration!r}")
        self.calibration = calibration
        self.pinhole_size = pinhole_size
        self.focal_scale = float(focal_scale)
        self.hand_tolerance_s = float(hand_tolerance_s)
        self.max_pose_gap_s = float(max_pose_gap_s)
        self.target_fps = target_fps
        self._maps: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}  # last calibration's remap tables

    def config(self) -> dict[str, Any]:
        return {
            "pinhole_size": self.pinhole_size,
            "focal_scale": self.focal_scale,
            "hand_tolerance_s": self.hand_tolerance_s,
            "max_pose_gap_s": self.max_pose_gap_s,
            "target_fps": self.target_fps,
            "calibration": self.calibration,
        }

    # ------------------------------------------------------------------ discovery

    def discover(self, root: str) -> list[EpisodeRef]:
        root_path = Path(root).resolve()
        if root_path.is_file() and root_path.suffix == ".vrs":
            vrs_files, base = [root_path], root_path.parent
        elif root_path.is_dir():
            vrs_files, base = sorted(root_path.rglob("*.vrs")), root_path
        else:
            raise ValueError(f"{root}: not a folder or a .vrs file")
        if not vrs_files:
            raise ValueError(f"{root}: no *.vrs recordings found (expected <recording>/*.vrs + MPS outputs)")
        refs = []
        for vrs in vrs_files:
            rel = vrs.relative_to(base).as_posix()
            traj = find_first(vrs.parent, TRAJECTORY_CANDIDATES)
            hands = find_hand_tracking(vrs.parent)
            refs.append(
                EpisodeRef(
                    episode_id=rel[: -len(".vrs")],
                    source=NAME,
                    path=str(vrs),
                    relpath=rel,
                    split="train",
                    metadata={
                        "trajectory": str(traj) if traj else None,
                        "hand_tracking": str(hands[0]) if hands else None,
                        "hand_tracking_kind": hands[1] if hands else None,
                    },
                )
            )
        return sorted(refs, key=lambda r: r.episode_id)

    # ------------------------------------------------------------------ opening

    def open(self, ref: EpisodeRef) -> OpenedEpisode:
        from projectaria_tools.core import calibration, data_provider
        from projectaria_tools.core.sensor_data import TimeDomain

        vrs = Path(ref.path)
        if not vrs.is_file():
            raise EpisodeError(f"{vrs}: VRS file not found")
        provider = data_provider.create_vrs_data_provider(str(vrs))
        if provider is None:
            raise EpisodeError(f"{vrs}: unreadable VRS (projectaria_tools could not open it)")
        stream = provider.get_stream_id_from_label(RGB_LABEL)
        if stream is None:
            raise EpisodeError(f"{vrs}: no {RGB_LABEL} stream")
        times_ns = np.asarray(provider.get_timestamps_ns(stream, TimeDomain.DEVICE_TIME), dtype=np.int64)
        if times_ns.size == 0:
            raise EpisodeError(f"{vrs}: the {RGB_LABEL} stream has no frames")
        if np.any(np.diff(times_ns) <= 0):
            raise EpisodeError(f"{vrs}: {RGB_LABEL} capture timestamps are not strictly increasing")
        rel_s = (times_ns - times_ns[0]) * 1e-9  # seconds from the first frame
        keep = np.arange(len(times_ns))
        if self.target_fps is not None:
            keep = select_nearest_frames(rel_s, self.target_fps)
        frame_times_s = times_ns[keep] * 1e-9

        traj_path = find_first(vrs.parent, TRAJECTORY_CANDIDATES)
        if traj_path is None:
            raise EpisodeError(
                f"{vrs.parent}: no closed-loop trajectory (looked for {list(TRAJECTORY_CANDIDATES)})"
            )
        fisheye, calib_source = self._rgb_calibration(vrs, provider, traj_path, frame_times_s)
        fisheye, rotated, pinhole, intr = self._cameras(provider, stream, fisheye, calibration)
        T_device_cam = rotated.get_transform_device_camera().to_matrix()

        # camera poses
        traj = aria_mps.read_closed_loop_trajectory(traj_path)
        T_world_device, cam_valid = aria_mps.interpolate_poses(traj, frame_times_s, self.max_pose_gap_s)
        if not np.any(cam_valid):
            t0, t1 = traj.span_s
            raise EpisodeError(
                f"{traj_path}: trajectory covers device time {t0:.3f}-{t1:.3f} s but {vrs.name} frames span "
                f"{frame_times_s[0]:.3f}-{frame_times_s[-1]:.3f} s: no frame has a camera pose"
            )
        T_world_cam = T_world_device @ T_device_cam
        T_world_cam[~cam_valid] = np.eye(4)
        camera = CameraTrack(
            T_world_cam=T_world_cam,
            valid=cam_valid,
            translation_metric=True,
            static=False,
            world_frame="mps_world",
            estimator=f"ground_truth:{NAME}",
            config={
                "trajectory": traj_path.name, "interpolation": "slerp", "max_pose_gap_s": self.max_pose_gap_s,
            },
        )

        hands, hand_extra = self._hands(vrs, traj, frame_times_s, T_device_cam, intr)

        n = len(keep)
        if self.target_fps is not None:
            fps = float(self.target_fps)
        elif n > 1:
            fps = float(1.0 / np.median(np.diff(frame_times_s)))
        else:
            fps = float(provider.get_nominal_rate_hz(stream))
        extra = {
            "vrs": vrs.name,
            "device_time_first_frame_s": float(frame_times_s[0]),
            "trajectory": str(traj_path.relative_to(vrs.parent)),
            "camera_invalid_frames": int(np.sum(~cam_valid)),
            "rgb_calibration": {
                "model": str(fisheye.get_model_name()),
                "params": [float(x) for x in fisheye.get_projection_params()],
                "image_size": [int(x) for x in fisheye.get_image_size()],
                "T_device_rgb": fisheye.get_transform_device_camera().to_matrix().tolist(),
                "source": calib_source,
            },
            "rectification": {
                "rotation": "cw90",
                "model": "pinhole",
                "focal_px": intr.fx,
                "size": [intr.width, intr.height],
            },
            **hand_extra,
        }

        def frame_iter() -> Iterator[VideoFrame]:
            map_x, map_y = self._undistort_maps(rotated, pinhole, calibration)  # built on first use
            for j, i in enumerate(keep.tolist()):
                try:
                    image_data, _ = provider.get_image_data_by_index(stream, i)
                    raw = image_data.to_numpy_array()
                except Exception as exc:  # projectaria raises plain RuntimeError on decode errors
                    raise EpisodeError(f"{vrs}: cannot decode {RGB_LABEL} frame {i} ({exc})") from exc
                if raw is None or raw.ndim != 3 or raw.shape[2] != 3:
                    raise EpisodeError(f"{vrs}: {RGB_LABEL} frame {i} is not an RGB image")
                # the tables read the stored image directly: rotation and undistortion in one remap
                image = cv2.remap(raw, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
                yield VideoFrame(j, i, float(rel_s[i]), image)

        return OpenedEpisode(
            ref=ref,
            intrinsics=intr,
            fps=fps,
            frame_iter=frame_iter,
            num_frames=n,
            hands=hands,
            camera=camera,
            task=None,
            embodiment="human",
            T_opencv_source=T_UPRIGHT_RAW.copy(),
            extra=extra,
        )

    def _rgb_calibration(self, vrs: Path, provider, traj_path: Path, frame_times_s: np.ndarray):
        """The camera-rgb calibration to use and where it came from.

        ``online`` (or ``auto`` when the file exists): the MPS ``online_calibration.jsonl`` next to the
        trajectory, the record nearest the middle of the video (it must lie within 1 s of the video,
        else the files are from another recording); ``factory``: the VRS's device calibration.
        """
        from projectaria_tools.core import mps

        online = traj_path.parent / "online_calibration.jsonl"
        if self.calibration == "online" and not online.is_file():
            raise EpisodeError(f"{online}: online calibration requested but not found")
        if self.calibration in ("online", "auto") and online.is_file():
            aria_mps.read_online_calibration(online)  # validates the file, naming it on errors
            records = [r for r in mps.read_online_calibration(str(online)) if r.get_camera_calib(RGB_LABEL)]
            times = np.array([r.tracking_timestamp.total_seconds() for r in records])
            if times.size == 0:
                raise EpisodeError(f"{online}: no {RGB_LABEL} calibration records")
            middle = 0.5 * (frame_times_s[0] + frame_times_s[-1])
            k = int(np.argmin(np.abs(times - middle)))
            if not frame_times_s[0] - 1.0 <= times[k] <= frame_times_s[-1] + 1.0:
                raise EpisodeError(
                    f"{online}: calibration records cover device time {times[0]:.3f}-{times[-1]:.3f} s but "
                    f"{vrs.name} frames span {frame_times_s[0]:.3f}-{frame_times_s[-1]:.3f} s: no overlap"
                )
            return records[k].get_camera_calib(RGB_LABEL), f"mps_online_calibration@{times[k]:.6f}s"
        device_calib = provider.get_device_calibration()
        fisheye = device_calib.get_camera_calib(RGB_LABEL) if device_calib is not None else None
        if fisheye is None:
            raise EpisodeError(f"{vrs}: no {RGB_LABEL} calibration in the VRS")
        return fisheye, "vrs_device_calibration"

    def _cameras(self, provider, stream, fisheye, calibration):
        """The fisheye calibration on the stored image grid, its upright rotation, the target pinhole and
        the episode's intrinsics."""
        config = provider.get_image_configuration(stream)
        w, h = int(config.image_width), int(config.image_height)
        cw, ch = (int(x) for x in fisheye.get_image_size())
        if (w, h) != (cw, ch):  # recorded at another resolution than calibrated (e.g. 1408 vs 2880)
            fisheye = fisheye.rescale(np.array([w, h]), w / cw)
        rotated = calibration.rotate_camera_calib_cw90deg(fisheye)
        size = self.pinhole_size or w
        focal = float(fisheye.get_focal_lengths()[0]) * size / w * self.focal_scale
        pinhole = calibration.get_linear_camera_calibration(
            size, size, focal, RGB_LABEL, rotated.get_transform_device_camera()
        )
        cx, cy = (float(x) for x in pinhole.get_principal_point())
        intr = Intrinsics(focal, focal, cx, cy, size, size, "calibration")
        return fisheye, rotated, pinhole, intr

    def _undistort_maps(self, rotated, pinhole, calibration) -> tuple[np.ndarray, np.ndarray]:
        """cv2.remap tables: pinhole pixel -> pixel of the *stored* (not yet rotated) fisheye image,
        float32, -1 outside the fisheye's valid circle.

        Built once per calibration by running ``calibration.distort_by_calibration`` (upright fisheye ->
        pinhole) on coordinate ramps (bilinear interpolation of a linear ramp is exact), then mapping
        upright pixels (u', v') back to stored ones (u, v) = (v', H-1-u'). Each frame then costs one
        ``cv2.remap`` instead of projectaria's per-pixel model evaluation plus a rotated copy.
        """
        key = (tuple(rotated.get_projection_params()), tuple(rotated.get_image_size()),
               tuple(pinhole.get_projection_params()), tuple(pinhole.get_image_size()))
        if key not in self._maps:
            w, h = (int(x) for x in rotated.get_image_size())
            v, u = np.mgrid[0:h, 0:w].astype(np.float32)
            map_x = calibration.distort_by_calibration(u, pinhole, rotated)
            map_y = calibration.distort_by_calibration(v, pinhole, rotated)
            inside = calibration.distort_by_calibration(np.ones((h, w), np.float32), pinhole, rotated) > 0.999
            stored_u = np.where(inside, map_y, -1).astype(np.float32)
            stored_v = np.where(inside, (h - 1) - map_x, -1).astype(np.float32)
            self._maps = {key: (stored_u, stored_v)}
        return self._maps[key]

    def _hands(
        self, vrs: Path, traj: aria_mps.Trajectory, frame_times_s: np.ndarray, T_device_cam: np.ndarray,
        intr: Intrinsics,
    ) -> tuple[HandTrack, dict[str, Any]]:
        """Hands at frame times in the upright camera. A valid hand has all 21 keypoints: the thumb CMC
        (no Aria landmark) is estimated (confidence 0); a hand with a keypoint behind the camera and the
        wrist-only ``wrist_and_palm_poses`` output are stored invalid (the contract needs 21 keypoints)."""
        n = len(frame_times_s)
        estimator = f"ground_truth:{NAME}"
        found = find_hand_tracking(vrs.parent)
        if found is None:
            return HandTrack.empty(n, estimator), {"hand_tracking": None}
        path, kind = found
        if kind == "landmarks":
            samples = aria_mps.read_hand_tracking_results(path)
        else:
            samples = aria_mps.read_wrist_and_palm_poses(path)
        aligned = aria_mps.align_hands(samples, traj, frame_times_s, self.hand_tolerance_s)
        kp_device = aligned.keypoints_device.copy()
        kp_device[:, :, 1] = aria_mps.estimate_thumb_cmc(kp_device)
        kp_cam = transform_points(se3_inverse(T_device_cam), kp_device)
        confidence = np.repeat(aligned.confidence[..., None], NUM_KEYPOINTS, -1)
        confidence[:, :, 1] = 0.0  # estimated thumb CMC
        hands = HandTrack.from_camera_points(
            kp_cam, intr.K, estimator, valid=aligned.valid, confidence=confidence,
            config={"hand_tracking": path.name, "kind": kind, "tolerance_s": self.hand_tolerance_s,
                    "thumb_cmc": "estimated"})
        hands.processing = {f"hand_frames_{k}": v for k, v in aligned.dropped.items()}
        hands.processing["hands_incomplete_or_behind_camera"] = int(np.sum(aligned.valid & ~hands.valid))
        extra = {
            "hand_tracking": str(path.relative_to(vrs.parent)),
            "hand_tracking_kind": kind,
            "thumb_cmc": "estimated from wrist, thumb MCP and index MCP (confidence 0)",
        }
        if kind == "wrist":
            extra["hand_note"] = "wrist_and_palm_poses holds only wrists: hands stored invalid"
        return hands, extra
