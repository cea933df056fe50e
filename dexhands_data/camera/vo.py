"""Monocular visual odometry with the hands masked out (CPU, OpenCV, no model weights).

Frames: the world is the first frame's camera (OpenCV axes: x right, y down, z forward);
``T_world_cam`` maps camera coordinates into it. Rotations are metric; translations are **up to
scale** (``translation_metric=False``): the unit is the median scene depth seen when the first
3D map is made (kept across map re-initialisations by re-using the last measured median depth).

Per frame (on a grey copy downscaled so its longer side is ``working_long_side`` px):

1. KLT tracking from the previous frame with a forward-backward check; tracks landing on a hand
   or forearm (dilated keypoint hulls and a band beyond the wrist, :mod:`.masks`) or in the
   border band are dropped.
2. Pose:
   * with >= ``min_pnp_points`` tracks that have a triangulated 3D point: PnP + RANSAC, then
     Levenberg-Marquardt refinement on the inliers (scale propagates through the map);
   * otherwise two-view against the current keyframe (:mod:`.two_view`): rotation, homography
     and essential matrix, the one with the lowest GRIC kept; of a homography's or essential
     matrix's decompositions the one closest to the constant-velocity prediction; the scale is
     set from the median depth unit, and once the triangulation angle reaches
     ``min_init_angle_deg`` and the decomposition has been stable for ``min_stable_frames`` the
     inliers become a new 3D map.
3. Keyframes: when too few tracks survive or too few of them have 3D points, tracks without a
   point are triangulated from their first observation (ray angle >= ``min_triangulation_deg``)
   and new corners are detected away from hands, borders and existing tracks.
4. With intrinsics that are only a prior, the focal is first self-calibrated over the first
   ``self_calibration_frames`` (:mod:`.calibrating_session`).
5. When no model can be fitted (too few tracks, degenerate geometry) the frame is marked invalid
   and tracking re-initialises on it; the new segment is anchored at the last valid pose (the
   motion across the gap is unknown, which the invalid frame between the segments records).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field

import cv2
import numpy as np

from ..geometry import Intrinsics, se3, se3_inverse
from ..records import CameraTrack
from .background import BackgroundSession
from .calibrating_session import PRIOR_SOURCES, SelfCalibratingSession
from .corners import detect_corners
from .bearings import bearings, fit_rotation_ransac, triangulate_midpoint
from .masks import MaskConfig, feature_mask, points_allowed, scale_keypoints
from .tracks import Tracks
from .two_view import TwoViewFit, fit_two_view
from .windowed_ba import WindowConfig, WindowedBundleAdjuster

NAME = "vo"
VERSION = "1.2"


@dataclass(frozen=True)
class VOConfig:
    """Settings of the odometry. Pixel thresholds refer to the downscaled working grid.

    ``feature_max_std_px`` (opt-in, e.g. 0.1): new corners must be trackable to this standard
    deviation, predicted from their gradients and the frame's noise (:mod:`.corners`), instead of
    ``feature_quality`` of the frame's best corner; ``window``: the windowed bundle adjustment
    (:mod:`.windowed_ba`), run when ``bundle_adjustment`` (opt-in). docs/camera.md has the figures."""

    working_long_side: int = 480
    max_features: int = 300
    feature_quality: float = 0.005
    feature_max_std_px: float | None = None
    feature_min_distance: float = 10.0
    klt_window: int = 11
    klt_levels: int = 3
    fb_max_error_px: float = 1.0
    min_tracks: int = 20
    min_pnp_points: int = 15
    pnp_reprojection_px: float = 2.0
    ransac_threshold_px: float = 1.0
    min_triangulation_deg: float = 1.0
    min_init_angle_deg: float = 3.0
    min_stable_frames: int = 2
    stable_direction_deg: float = 5.0
    keyframe_track_ratio: float = 0.7
    keyframe_min_map_ratio: float = 0.25
    min_keyframe_gap: int = 1
    self_calibration: bool = True
    self_calibration_frames: int = 60
    bundle_adjustment: bool = False
    mask: MaskConfig = field(default_factory=MaskConfig)
    window: WindowConfig = field(default_factory=WindowConfig)


class VisualOdometry:
    """The streaming :class:`~dexhands_data.camera.base.CameraEstimator` for monocular video.

    ``background=True`` (default) runs each session's steps in a worker thread, in order, so the
    odometry (OpenCV releases the GIL) overlaps with hand estimation and JPEG encoding of the next
    frames; results are identical to ``background=False``.
    """

    name = NAME
    version = VERSION

    def __init__(self, config: VOConfig | None = None, background: bool = True, **overrides):
        base = asdict(config or VOConfig())
        base.update(overrides)
        mask, window = base.pop("mask"), base.pop("window")
        self.cfg = VOConfig(**base, mask=mask if isinstance(mask, MaskConfig) else MaskConfig(**mask),
                            window=window if isinstance(window, WindowConfig) else WindowConfig(**window))
        self.background = background

    def config(self) -> dict:
        """Settings that change the output (``background`` does not)."""
        return asdict(self.cfg)

    def session(self, intrinsics: Intrinsics) -> "VOSession | SelfCalibratingSession | BackgroundSession":
        """A session for one episode; with ``self_calibration`` and intrinsics that are only a prior
        (``fov_prior``, ``default``) the focal is first estimated from the video."""
        if self.cfg.self_calibration and intrinsics.source in PRIOR_SOURCES:
            session = SelfCalibratingSession(lambda intr: VOSession(self.cfg, intr), intrinsics,
                                             self.cfg.self_calibration_frames)
        else:
            session = VOSession(self.cfg, intrinsics)
        return BackgroundSession(session) if self.background else session


class VOSession:
    """One episode of odometry: ``step`` every frame, then ``finish`` for the :class:`CameraTrack`."""

    def __init__(self, cfg: VOConfig, intrinsics: Intrinsics):
        self.cfg = cfg
        self.src = intrinsics
        self.scale = min(1.0, cfg.working_long_side / float(max(intrinsics.width, intrinsics.height)))
        w = int(round(intrinsics.width * self.scale))
        h = int(round(intrinsics.height * self.scale))
        self.size = (w, h)
        self.intr = intrinsics.scaled(w, h) if self.scale != 1.0 else intrinsics
        self.K = self.intr.K
        self.f = 0.5 * (self.intr.fx + self.intr.fy)
        self.rng = np.random.default_rng(0)
        self.poses: list[np.ndarray] = []
        self.valid: list[bool] = []
        self.modes: list[str] = []
        self.prev_grey: np.ndarray | None = None
        self.tracks = Tracks.empty()
        self.T_world_kf = np.eye(4)
        self.kf_count = 0
        self.last_valid_T = np.eye(4)
        self.depth_unit = 1.0
        self.force_keyframe = False
        self.kf_frame = 0
        self.counts = {"keyframes": 0, "reinitialisations": 0, "map_initialisations": 0,
                       "pnp_frames": 0, "essential_frames": 0, "homography_frames": 0,
                       "rotation_only_frames": 0}
        self.last_motion: tuple[int, np.ndarray] | None = None  # (keyframe, unit t) of the last two-view pose
        self.stable_count = 0
        self.invalid_reasons: Counter = Counter()
        self.next_track_id = 0
        self.adjuster = WindowedBundleAdjuster(self.K, cfg.window) if cfg.bundle_adjustment else None
        self.lk = dict(winSize=(cfg.klt_window, cfg.klt_window), maxLevel=cfg.klt_levels,
                       criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01))

    # ------------------------------------------------------------------ public

    def step(self, image: np.ndarray, hand_keypoints_2d: np.ndarray | None = None,
             hand_valid: np.ndarray | None = None) -> None:
        """Process one RGB uint8 frame of the source size; hand keypoints (2, 21, 2) source px."""
        self.step_prepared(*self.prepare(image, hand_keypoints_2d, hand_valid))

    def prepare(self, image: np.ndarray, hand_keypoints_2d: np.ndarray | None = None,
                hand_valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The grey working-grid image of a frame and its feature mask (hands, forearms, border off)."""
        grey = self._grey(image)
        kp = None if hand_keypoints_2d is None else scale_keypoints(hand_keypoints_2d, self.scale)
        return grey, feature_mask(grey.shape[0], grey.shape[1], kp, hand_valid, self.cfg.mask)

    def step_prepared(self, grey: np.ndarray, mask: np.ndarray) -> None:
        """Process one frame given as :meth:`prepare` returns it."""
        if self.prev_grey is None:
            self._restart(grey, mask, np.eye(4))
            self._record(np.eye(4), True, "first")
            self._log_views(np.eye(4), True)
            return
        self._track(grey, mask)
        T, mode = self._estimate()
        if T is None:
            self.invalid_reasons[mode] += 1
            self.counts["reinitialisations"] += 1
            self._record(self.last_valid_T, False, "lost")
            self._log_views(self.last_valid_T, False)
            self._restart(grey, mask, self.last_valid_T)
            return
        self._record(T, True, mode)
        self._maybe_keyframe(grey, mask, T)
        self._log_views(T, True)
        self.prev_grey = grey

    def _log_views(self, T: np.ndarray, valid: bool) -> None:
        """Hand this frame's pose and tracks to the windowed bundle adjustment."""
        if self.adjuster is not None:
            self.adjuster.add(T, valid, self.tracks.ids, self._ideal(self.tracks.pts), self.depth_unit)

    def tracked_points(self) -> np.ndarray:
        """Pixels (M, 2) of the features tracked in the last frame, on the source grid (for checks/plots)."""
        return (self.tracks.pts.astype(np.float64) + 0.5) / self.scale - 0.5

    def finish(self) -> CameraTrack:
        n = len(self.poses)
        poses = np.stack(self.poses) if n else np.zeros((0, 4, 4))
        if self.adjuster is not None and n:
            poses = self.adjuster.finish()
        valid = np.asarray(self.valid, bool)
        rot = np.array([m == "rotation" for m in self.modes], bool)
        segments = int(np.sum(rot & ~np.concatenate([[False], rot[:-1]]))) if n else 0
        processing = {**self.counts, "rotation_only_segments": segments, "frames": n,
                      "valid_frames": int(valid.sum()), "working_size": list(self.size),
                      # why frames are invalid: fewer than min_tracks features tracked (blank, dark
                      # or featureless frames, cuts) or no two-view model fits the tracks
                      "invalid_reasons": dict(self.invalid_reasons)}
        if self.adjuster is not None:
            processing["bundle_adjustment"] = self.adjuster.stats.as_dict()
        return CameraTrack(poses, valid, translation_metric=False, static=False, world_frame="first_camera",
                           estimator=f"{NAME}=={VERSION}", config=asdict(self.cfg), processing=processing,
                           intrinsics=self.src)

    # ------------------------------------------------------------------ stages

    def _ideal(self, pts: np.ndarray) -> np.ndarray:
        """Ideal (undistorted, same K) float64 pixels of tracked working-grid pixels (M, 2): all
        geometry (bearings, PnP, two-view, triangulation) runs on them; tracking and masks stay on
        the image pixels. Without distortion the pixels themselves."""
        return self.intr.ideal_pixels(pts) if self.intr.distorted else np.asarray(pts, dtype=np.float64)

    def check_frame(self, image: np.ndarray) -> None:
        """Raise ValueError unless ``image`` is an RGB frame of the intrinsics' size."""
        if image.ndim != 3 or image.shape[2] != 3 or image.shape[:2] != (self.src.height, self.src.width):
            raise ValueError(f"frame of shape {image.shape} does not match the intrinsics "
                             f"{self.src.width}x{self.src.height}")

    def _grey(self, image: np.ndarray) -> np.ndarray:
        self.check_frame(image)
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        return grey if self.scale == 1.0 else cv2.resize(grey, self.size, interpolation=cv2.INTER_AREA)

    def _record(self, T: np.ndarray, valid: bool, mode: str) -> None:
        self.poses.append(np.array(T, dtype=np.float64))
        self.valid.append(valid)
        self.modes.append(mode)
        if valid:
            self.last_valid_T = np.array(T, dtype=np.float64)
        if mode in ("pnp", "essential", "homography", "rotation"):
            self.counts[f"{'rotation_only' if mode == 'rotation' else mode}_frames"] += 1

    def _restart(self, grey: np.ndarray, mask: np.ndarray, T_world_cam: np.ndarray) -> None:
        """Start a segment on this frame: fresh corners, no map, keyframe here."""
        self.tracks = Tracks.empty()
        self.prev_grey = grey
        self._new_keyframe(grey, mask, T_world_cam)

    def _new_keyframe(self, grey: np.ndarray, mask: np.ndarray, T_world_cam: np.ndarray) -> None:
        self.counts["keyframes"] += 1
        room = self.cfg.max_features - len(self.tracks)
        if room > self.cfg.max_features // 5:
            det_mask = mask.copy()
            radius = int(self.cfg.feature_min_distance)
            for u, v in self.tracks.pts:
                cv2.circle(det_mask, (int(round(u)), int(round(v))), radius, 0, -1)
            pts = self._corners(grey, det_mask, room)
            if len(pts):
                d = bearings(self._ideal(pts), self.K) @ T_world_cam[:3, :3].T
                c = np.tile(T_world_cam[:3, 3], (len(pts), 1))
                ids = np.arange(self.next_track_id, self.next_track_id + len(pts), dtype=np.int64)
                self.next_track_id += len(pts)
                new = Tracks(pts, pts.copy(), c, d, np.full((len(pts), 3), np.nan), ids)
                self.tracks = self.tracks.append(new)
        self.tracks.kf_pts = self.tracks.pts.copy()
        self.T_world_kf = np.array(T_world_cam, dtype=np.float64)
        self.kf_count = len(self.tracks)
        self.kf_frame = len(self.poses)

    def _corners(self, grey: np.ndarray, mask: np.ndarray, room: int) -> np.ndarray:
        """New corners (M, 2): by predicted tracking precision when ``feature_max_std_px`` is set,
        else OpenCV's criterion (``feature_quality`` of the frame's best corner)."""
        if self.cfg.feature_max_std_px is not None:
            return detect_corners(grey, mask, room, self.cfg.feature_min_distance, self.cfg.feature_max_std_px)
        corners = cv2.goodFeaturesToTrack(grey, room, self.cfg.feature_quality, self.cfg.feature_min_distance,
                                          mask=mask, blockSize=7)
        return np.zeros((0, 2), np.float32) if corners is None else corners.reshape(-1, 2).astype(np.float32)

    def _track(self, grey: np.ndarray, mask: np.ndarray) -> None:
        if len(self.tracks) == 0:
            return
        p0 = self.tracks.pts.reshape(-1, 1, 2)
        p1, st1, _ = cv2.calcOpticalFlowPyrLK(self.prev_grey, grey, p0, None, **self.lk)
        p0r, st2, _ = cv2.calcOpticalFlowPyrLK(grey, self.prev_grey, p1, None, **self.lk)
        fb = np.linalg.norm((p0r - p0).reshape(-1, 2), axis=1)
        p1 = p1.reshape(-1, 2)
        ok = (st1.ravel() == 1) & (st2.ravel() == 1) & (fb < self.cfg.fb_max_error_px)
        ok &= points_allowed(mask, p1)
        self.tracks.pts = p1.astype(np.float32)
        self.tracks = self.tracks.keep(ok)

    def _estimate(self) -> tuple[np.ndarray | None, str]:
        tr = self.tracks
        if len(tr) < self.cfg.min_tracks:
            return None, "too_few_tracks"
        has_X = np.isfinite(tr.X).all(axis=1)
        if has_X.sum() >= self.cfg.min_pnp_points:
            T = self._pnp(has_X)
            if T is not None:
                return T, "pnp"
        return self._two_view()

    def _pnp(self, has_X: np.ndarray) -> np.ndarray | None:
        idx = np.flatnonzero(has_X)
        X = self.tracks.X[idx]
        uv = self._ideal(self.tracks.pts[idx])
        T_cw = se3_inverse(self.last_valid_T)
        rvec0, _ = cv2.Rodrigues(T_cw[:3, :3])
        ok, rvec, tvec, inl = cv2.solvePnPRansac(
            X, uv, self.K, None, rvec0.copy(), T_cw[:3, 3].reshape(3, 1).copy(), useExtrinsicGuess=True,
            iterationsCount=60, reprojectionError=self.cfg.pnp_reprojection_px, confidence=0.99,
            flags=cv2.SOLVEPNP_AP3P)
        if not ok or inl is None or len(inl) < self.cfg.min_pnp_points:
            return None
        inl = inl.ravel()
        rvec, tvec = cv2.solvePnPRefineLM(X[inl], uv[inl], self.K, None, rvec, tvec)
        R = cv2.Rodrigues(rvec)[0]
        T = se3_inverse(se3(R, tvec.ravel()))
        # Drop tracks whose 3D point disagrees with the pose (moving objects, bad triangulation).
        proj = (X @ R.T + tvec.ravel())
        depth = proj[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            px = proj[:, :2] / depth[:, None] * [self.K[0, 0], self.K[1, 1]] + [self.K[0, 2], self.K[1, 2]]
        err = np.linalg.norm(px - uv, axis=1)
        bad = ~((depth > 0) & (err < 2.0 * self.cfg.pnp_reprojection_px))
        keep = np.ones(len(self.tracks), bool)
        keep[idx[bad]] = False
        self.tracks = self.tracks.keep(keep)
        good = ~bad
        if good.any():
            self.depth_unit = float(np.median(depth[good]))
        return T

    def _two_view(self) -> tuple[np.ndarray | None, str]:
        tr = self.tracks
        p1, p2 = self._ideal(tr.kf_pts), self._ideal(tr.pts)
        b1, b2 = bearings(p1, self.K), bearings(p2, self.K)
        thr = self.cfg.ransac_threshold_px / self.f
        R_ck, rot_inl = fit_rotation_ransac(b1, b2, thr, self.rng)
        rotation_T = self.T_world_kf @ se3(R_ck.T, np.zeros(3))
        fit = fit_two_view(p1, p2, self.K, R_ck, rot_inl,
                           self.cfg.ransac_threshold_px, self._predicted_T_kf_cur())
        if fit is not None and fit.kind == "rotation":
            if rot_inl.sum() < self.cfg.min_tracks:
                return None, "no_model"
            self.tracks = tr.keep(rot_inl | (np.linalg.norm(b1 @ R_ck.T - b2, axis=-1) < 3 * thr))
            self.last_motion = None
            return rotation_T, "rotation"
        T = self._pose_from_motion(fit) if fit is not None else None
        if T is not None:
            return T, fit.kind
        if rot_inl.sum() >= self.cfg.min_tracks and rot_inl.mean() > 0.8:
            return rotation_T, "rotation"
        return None, "no_model"

    def _predicted_T_kf_cur(self) -> np.ndarray | None:
        """Constant-velocity prediction of this frame's pose relative to the keyframe (None without
        two valid previous poses)."""
        if len(self.poses) < 2 or not (self.valid[-1] and self.valid[-2]):
            return None
        T_prev, T_prev2 = self.poses[-1], self.poses[-2]
        return se3_inverse(self.T_world_kf) @ T_prev @ se3_inverse(T_prev2) @ T_prev

    def _pose_from_motion(self, fit: TwoViewFit) -> np.ndarray | None:
        """Pose from the kept homography/essential decomposition; the scale makes the inliers' median
        depth equal the current depth unit. Once the triangulation angle is large enough and the
        decomposition has been stable over ``min_stable_frames`` frames, the inliers become the map."""
        m, inl = fit.motion, fit.inliers
        if m.in_front.sum() < self.cfg.min_tracks:
            return None
        stable = (self.last_motion is not None and self.last_motion[0] == self.kf_frame
                  and float(m.t @ self.last_motion[1]) > np.cos(np.deg2rad(self.cfg.stable_direction_deg)))
        self.stable_count = self.stable_count + 1 if stable else 0
        self.last_motion = (self.kf_frame, m.t)
        good = m.in_front & (m.angle > np.deg2rad(self.cfg.min_triangulation_deg))
        # The median over all points in front (not only the well-triangulated, nearer ones) keeps
        # the depth unit unbiased.
        scale = self.depth_unit / float(np.median(m.X_kf[m.in_front, 2]))
        T_kf_cur = m.T_kf_cur
        T_kf_cur[:3, 3] *= scale
        T = self.T_world_kf @ T_kf_cur
        init_angle = np.deg2rad(self.cfg.min_init_angle_deg)
        if (good.sum() < self.cfg.min_tracks or np.median(m.angle[m.in_front]) < init_angle
                or self.stable_count < self.cfg.min_stable_frames):
            return T  # a pose, but too little baseline (or a still-changing solution) for a map yet
        tr = self.tracks
        X = np.full((len(tr), 3), np.nan)
        rows = np.flatnonzero(inl)[good]
        X[rows] = m.X_kf[good] * scale @ self.T_world_kf[:3, :3].T + self.T_world_kf[:3, 3]
        self.tracks.X = X
        self.tracks = self.tracks.keep(inl)
        self.counts["map_initialisations"] += 1
        self.force_keyframe = True
        return T

    def _maybe_keyframe(self, grey: np.ndarray, mask: np.ndarray, T: np.ndarray) -> None:
        tr = self.tracks
        n = len(tr)
        has_X = np.isfinite(tr.X).all(axis=1)
        forced, self.force_keyframe = self.force_keyframe, False
        few_tracks = n < self.cfg.keyframe_track_ratio * self.kf_count
        min_map = max(3 * self.cfg.min_pnp_points, self.cfg.keyframe_min_map_ratio * n)
        thin_map = has_X.any() and has_X.sum() < min_map
        # Fresh corners need a few frames of baseline before they can be triangulated, so a soft
        # trigger waits ``min_keyframe_gap`` frames; running out of tracks or 3D points does not.
        critical = n < 2 * self.cfg.min_tracks or (has_X.any() and has_X.sum() < 2 * self.cfg.min_pnp_points)
        soft = (few_tracks or thin_map) and len(self.poses) - self.kf_frame >= self.cfg.min_keyframe_gap
        if not (forced or critical or soft):
            return
        if has_X.any():
            self._triangulate_new(T, ~has_X)
        self._new_keyframe(grey, mask, T)

    def _triangulate_new(self, T: np.ndarray, rows: np.ndarray) -> None:
        """Give 3D points to tracks without one, from their first ray and the ray in this frame."""
        idx = np.flatnonzero(rows)
        if len(idx) == 0:
            return
        tr = self.tracks
        uv = self._ideal(tr.pts[idx])
        d2 = bearings(uv, self.K) @ T[:3, :3].T
        c2 = np.tile(T[:3, 3], (len(idx), 1))
        X, s1, s2, ang = triangulate_midpoint(tr.birth_c[idx], tr.birth_d[idx], c2, d2)
        T_cw = se3_inverse(T)
        pc = X @ T_cw[:3, :3].T + T_cw[:3, 3]
        with np.errstate(divide="ignore", invalid="ignore"):
            px = pc[:, :2] / pc[:, 2:3] * [self.K[0, 0], self.K[1, 1]] + [self.K[0, 2], self.K[1, 2]]
        err = np.linalg.norm(px - uv, axis=1)
        good = (s1 > 0) & (s2 > 0) & (ang > np.deg2rad(self.cfg.min_triangulation_deg))
        good &= err < self.cfg.pnp_reprojection_px
        tr.X[idx[good]] = X[good]
