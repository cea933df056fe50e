"""``--camera colmap``: structure from motion with pycolmap (CPU SIFT, sequential matching, incremental mapper).

Per episode: every ``keyframe_stride``-th frame is written (downscaled so its longer side is
``max_image_size`` px) into a temporary folder with its hand mask (hands, forearms and border
excluded, as for the VO, :mod:`.masks`); COLMAP extracts SIFT, matches each keyframe with the
next ``overlap`` ones and runs its incremental mapper (bundle adjustment inside) on one shared
camera. With intrinsics that are only a prior (``fov_prior``, ``default``) the focal is refined
(``refine_focal="auto"``) and returned as ``source = "self_calibrated"``; otherwise K stays fixed.

Frames: the world is the first registered keyframe's camera (``world_frame = "first_camera"``
when that is frame 0, else ``"first_registered_camera"``), OpenCV axes; translation up to scale
(the median depth of the points that keyframe sees is 1). Frames between two registered keyframes
at most ``2 * keyframe_stride`` apart are interpolated (slerp + linear) and valid; all other frames
are invalid and hold the nearest registered pose. A reconstruction that registers fewer than two
keyframes leaves every frame invalid, with the reason in ``processing.failure``.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import cv2
import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from ..geometry import Intrinsics, se3, se3_inverse
from ..records import CameraTrack
from .masks import MaskConfig, feature_mask, scale_keypoints

NAME = "colmap"
VERSION = "1.0"
PRIOR_SOURCES = ("fov_prior", "default")


@dataclass(frozen=True)
class ColmapConfig:
    keyframe_stride: int = 3
    max_image_size: int = 640
    max_num_features: int = 2048
    overlap: int = 10
    init_min_tri_angle_deg: float = 4.0  # COLMAP's 16 deg default rarely occurs in a few seconds of head motion
    refine_focal: str = "auto"  # "auto" (only when K is a prior), "always", "never"
    num_threads: int = 1
    random_seed: int = 0
    mask: MaskConfig = MaskConfig()


class ColmapCamera:
    """The ``colmap`` :class:`~dexhands_data.camera.base.CameraEstimator` (needs ``pycolmap``)."""

    name = NAME
    version = VERSION

    def __init__(self, **overrides):
        mask = overrides.pop("mask", None)
        cfg = ColmapConfig(**overrides)
        if mask is not None:
            cfg = replace(cfg, mask=mask if isinstance(mask, MaskConfig) else MaskConfig(**mask))
        if cfg.refine_focal not in ("auto", "always", "never"):
            raise ValueError(f"refine_focal must be auto, always or never, got {cfg.refine_focal!r}")
        import pycolmap  # noqa: F401  (fail at construction, not in the middle of an episode)

        self.cfg = cfg

    def config(self) -> dict:
        return asdict(self.cfg)

    def session(self, intrinsics: Intrinsics) -> "ColmapSession":
        return ColmapSession(self.cfg, intrinsics)


class ColmapSession:
    """Collects keyframes while streaming; ``finish`` runs the reconstruction."""

    def __init__(self, cfg: ColmapConfig, intrinsics: Intrinsics):
        self.cfg = cfg
        self.src = intrinsics
        self.scale = min(1.0, cfg.max_image_size / float(max(intrinsics.width, intrinsics.height)))
        self.size = (int(round(intrinsics.width * self.scale)), int(round(intrinsics.height * self.scale)))
        self.dir = Path(tempfile.mkdtemp(prefix="dexdata-colmap-"))
        (self.dir / "images").mkdir()
        (self.dir / "masks").mkdir()
        self.n = 0
        self.keyframes: list[int] = []

    def step(self, image: np.ndarray, hand_keypoints_2d: np.ndarray | None = None,
             hand_valid: np.ndarray | None = None) -> None:
        if image.ndim != 3 or image.shape[:2] != (self.src.height, self.src.width):
            raise ValueError(f"frame of shape {image.shape} does not match the intrinsics "
                             f"{self.src.width}x{self.src.height}")
        i, self.n = self.n, self.n + 1
        if i % self.cfg.keyframe_stride:
            return
        small = image if self.scale == 1.0 else cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
        kp = None if hand_keypoints_2d is None else scale_keypoints(hand_keypoints_2d, self.scale)
        mask = feature_mask(self.size[1], self.size[0], kp, hand_valid, self.cfg.mask)
        name = f"{i:06d}.png"
        cv2.imwrite(str(self.dir / "images" / name), cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(self.dir / "masks" / f"{name}.png"), np.where(mask > 0, 255, 0).astype(np.uint8))
        self.keyframes.append(i)

    def finish(self) -> CameraTrack:
        try:
            poses, focal, info = self._reconstruct()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
        return self._track(poses, focal, info)

    # ------------------------------------------------------------------ reconstruction

    def _refine(self) -> bool:
        return self.cfg.refine_focal == "always" or (
            self.cfg.refine_focal == "auto" and self.src.source in PRIOR_SOURCES)

    def _reconstruct(self) -> tuple[dict[int, np.ndarray], float | None, dict]:
        """Registered keyframes' T_world_cam (world = first registered), the working-grid focal, info."""
        import pycolmap

        pycolmap.logging.minloglevel = max(pycolmap.logging.minloglevel, 2)  # errors only: runs stay quiet
        info: dict = {"keyframes": len(self.keyframes), "refine_focal": self._refine()}
        if len(self.keyframes) < 2:
            info["failure"] = f"only {len(self.keyframes)} keyframe(s): nothing to reconstruct"
            return {}, None, info
        work = self.src.scaled(*self.size) if self.scale != 1.0 else self.src
        f = 0.5 * (work.fx + work.fy)
        db = self.dir / "database.db"
        reader = pycolmap.ImageReaderOptions()
        if work.distorted:  # COLMAP's OPENCV model is OpenCV's k1, k2, p1, p2 (held fixed below)
            reader.camera_model = "OPENCV"
            lens = ",".join(str(v) for v in work.distortion.to_list())
            reader.camera_params = f"{work.fx},{work.fy},{work.cx + 0.5},{work.cy + 0.5},{lens}"
        else:
            reader.camera_model = "SIMPLE_PINHOLE"
            reader.camera_params = f"{f},{work.cx + 0.5},{work.cy + 0.5}"  # COLMAP: pixel centres at +0.5
        reader.mask_path = str(self.dir / "masks")
        extraction = pycolmap.FeatureExtractionOptions()
        extraction.use_gpu = False
        extraction.num_threads = self.cfg.num_threads
        extraction.sift.max_num_features = self.cfg.max_num_features
        pycolmap.extract_features(db, self.dir / "images", camera_mode=pycolmap.CameraMode.SINGLE,
                                  reader_options=reader, extraction_options=extraction,
                                  device=pycolmap.Device.cpu)
        matching = pycolmap.FeatureMatchingOptions()
        matching.use_gpu = False
        matching.num_threads = self.cfg.num_threads
        pairing = pycolmap.SequentialPairingOptions()
        pairing.overlap = self.cfg.overlap
        pairing.num_threads = self.cfg.num_threads
        pycolmap.match_sequential(db, matching_options=matching, pairing_options=pairing,
                                  device=pycolmap.Device.cpu)
        options = pycolmap.IncrementalPipelineOptions()
        options.mapper.init_min_tri_angle = self.cfg.init_min_tri_angle_deg
        options.ba_refine_focal_length = self._refine()
        options.ba_refine_principal_point = False
        options.ba_refine_extra_params = False
        options.num_threads = self.cfg.num_threads
        options.random_seed = self.cfg.random_seed
        out = self.dir / "sparse"
        out.mkdir()
        models = pycolmap.incremental_mapping(db, self.dir / "images", out, options=options)
        if not models:
            info["failure"] = "COLMAP registered no images (too little texture or parallax, or a static camera)"
            return {}, None, info
        rec = max(models.values(), key=lambda r: r.num_reg_images())
        info["registered_keyframes"] = int(rec.num_reg_images())
        info["models"] = len(models)
        info["mean_reprojection_px"] = float(rec.compute_mean_reprojection_error())
        cam_from_world: dict[int, np.ndarray] = {}
        for image in rec.images.values():
            if image.has_pose:
                cam_from_world[int(Path(image.name).stem)] = image.cam_from_world().matrix()
        if len(cam_from_world) < 2:
            info["failure"] = f"COLMAP registered {len(cam_from_world)} keyframe(s); two are needed"
            return {}, None, info
        first = min(cam_from_world)
        T_w0 = se3_inverse(np.vstack([cam_from_world[first], [0, 0, 0, 1]]))
        poses = {k: se3_inverse(T_w0) @ se3_inverse(np.vstack([m, [0, 0, 0, 1]])) for k, m in cam_from_world.items()}
        # Scale: the median depth of the points the first registered keyframe sees is 1.
        first_image = next(im for im in rec.images.values() if int(Path(im.name).stem) == first)
        pts = np.array([rec.points3D[p.point3D_id].xyz for p in first_image.points2D if p.has_point3D()])
        if len(pts):
            depth = (pts @ cam_from_world[first][:3, :3].T + cam_from_world[first][:3, 3])[:, 2]
            unit = float(np.median(depth[depth > 0])) if (depth > 0).any() else 1.0
            for T in poses.values():
                T[:3, 3] /= unit
        focal = float(rec.cameras[first_image.camera_id].mean_focal_length()) if self._refine() else None
        return poses, focal, info

    def _track(self, poses: dict[int, np.ndarray], focal: float | None, info: dict) -> CameraTrack:
        n = self.n
        T = np.tile(np.eye(4), (n, 1, 1))
        valid = np.zeros(n, bool)
        intrinsics = self.src
        if focal is not None:
            f = focal / self.scale
            intrinsics = replace(self.src, fx=f, fy=f, source="self_calibrated")
            info["focal_px_source_grid"] = f
        if poses:
            T, valid = interpolate_poses(poses, n, 2 * self.cfg.keyframe_stride)
        world = "first_camera" if valid.any() and valid[0] else "first_registered_camera"
        info.update(frames=n, valid_frames=int(valid.sum()))
        return CameraTrack(T, valid, translation_metric=False, static=False, world_frame=world,
                           estimator=f"{NAME}=={VERSION}", config=asdict(self.cfg), processing=info,
                           intrinsics=intrinsics)


def interpolate_poses(keyed: dict[int, np.ndarray], n: int, max_gap: int) -> tuple[np.ndarray, np.ndarray]:
    """Poses (n, 4, 4) for frames 0..n-1 from poses at some frames: slerp/linear between neighbours
    at most ``max_gap`` apart (valid); elsewhere the nearest known pose (invalid)."""
    keys = np.array(sorted(keyed))
    T = np.tile(np.eye(4), (n, 1, 1))
    valid = np.zeros(n, bool)
    for i in range(n):
        j = int(np.searchsorted(keys, i))
        if j < len(keys) and keys[j] == i:
            T[i], valid[i] = keyed[i], True
            continue
        if 0 < j < len(keys) and keys[j] - keys[j - 1] <= max_gap:
            a, b = keys[j - 1], keys[j]
            w = (i - a) / (b - a)
            slerp = Slerp([0.0, 1.0], Rotation.from_matrix([keyed[a][:3, :3], keyed[b][:3, :3]]))
            T[i] = se3(slerp([w]).as_matrix()[0], (1 - w) * keyed[a][:3, 3] + w * keyed[b][:3, 3])
            valid[i] = True
            continue
        near = keys[np.argmin(np.abs(keys - i))]
        T[i] = keyed[near]
    return T, valid
