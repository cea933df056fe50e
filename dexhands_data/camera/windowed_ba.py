"""Windowed bundle adjustment of a visual-odometry track, with the motion model chosen per window.

The odometry (:mod:`.vo`) decides each frame's pose from two frames at a time, and calls a frame
rotation-only as soon as a pure rotation explains its tracks against the keyframe: a head that
translates a few millimetres per frame is indistinguishable from a rotation over such baselines.
Over a window of ``window_frames`` frames the translation adds up, so the decision is made there:

1. Every valid frame's tracks (persistent ids, working-grid pixels) are logged; when the window is
   full (or the segment ends: an invalid frame, the end of the episode) the tracks seen at least
   ``min_observations`` times become points, anchored in the first window frame that sees them.
2. Two bundle adjustments (:mod:`.bundle_adjustment`, robust loss) start from the odometry's poses:
   **rotation only** (3 dof per frame, points at infinity) and **general motion** (6 dof per frame,
   inverse-depth points; points without parallax in the odometry's poses start at the depth unit).
3. The model with the lower truncated BIC (:func:`robust_bic`; sigma, the tracks' noise, estimated
   from the rotation model's errors) is kept, so translation is only added where it explains the
   tracks better than its extra parameters cost;
   a camera that only rotates keeps exactly its centre. Once a window has translated, the next one
   (whose fixed frames then have different centres) is adjusted with general motion only, so a
   short window at the end of a segment cannot undo the translation its predecessor established.
   ``motion_model`` = ``rotation`` / ``general`` forces one model (ablations).
4. The last ``overlap_frames`` frames stay in the next window, fixed (gauge: pose and, through their
   points' depths, the scale); the first frame of a segment is fixed to the odometry's pose moved
   by the correction of the last refined frame. Frames that were not refined (invalid frames) move
   with the correction ``T_refined @ inv(T_odometry)`` of the last refined frame before them.

Memory and time are bounded by the window, not the episode. Poses are ``T_world_cam`` (4, 4),
OpenCV axes; translation in the odometry's depth unit; pixels on the odometry's working grid.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..geometry import se3_inverse
from .bearings import triangulate_midpoint
from .bundle_adjustment import BAProblem, BAResult, bundle_adjust


@dataclass(frozen=True)
class WindowConfig:
    """window_frames: frames per adjustment (overlap included); overlap_frames: fixed frames shared
    with the previous window; min_observations: views a track needs to become a point; loss and
    loss_scale_px: the robust loss (huber, cauchy, linear) and its scale; min_sigma_px: floor of the
    tracks' noise estimated for the model choice (exact synthetic tracks); max_points: the
    longest-lived tracks kept per window and max_iterations per adjustment (cost bounds);
    motion_model: auto (chosen per window), rotation or general."""

    window_frames: int = 30
    overlap_frames: int = 5
    min_observations: int = 3
    loss_scale_px: float = 1.0
    min_sigma_px: float = 0.01
    max_points: int = 120
    max_iterations: int = 20
    loss: str = "huber"
    motion_model: str = "auto"


@dataclass
class _Frame:
    index: int
    ids: np.ndarray
    pts: np.ndarray


@dataclass
class WindowStats:
    """What the adjustments did (``processing.camera.bundle_adjustment``); reprojection errors are the
    median per window, px on the working grid, before (the odometry's poses) and after."""

    windows: int = 0
    translation_windows: int = 0
    rotation_windows: int = 0
    skipped_windows: int = 0
    median_px_before: list = field(default_factory=list)
    median_px_after: list = field(default_factory=list)
    cpu_s: float = 0.0

    def as_dict(self) -> dict:
        med = (lambda v: round(float(np.median(v)), 4) if v else None)
        return {"windows": self.windows, "translation_windows": self.translation_windows,
                "rotation_windows": self.rotation_windows, "skipped_windows": self.skipped_windows,
                "median_reprojection_px_before": med(self.median_px_before),
                "median_reprojection_px_after": med(self.median_px_after),
                "cpu_s": round(self.cpu_s, 3)}


def robust_bic(result: BAResult, sigma_px: float) -> float:
    """BIC with each observation's squared error truncated at (2 sigma)^2, as in Torr's GRIC (an
    outlier costs the same under every model, so neither model is chosen for the outliers it bends
    to): ``sum min(e^2 / sigma^2, 4) + log(residuals) * free parameters``."""
    return float(np.minimum((result.errors_px / sigma_px) ** 2, 4.0).sum()
                 + np.log(max(result.residuals, 2)) * result.parameters)


class WindowedBundleAdjuster:
    """Feed every frame with :meth:`add` (in order), then :meth:`finish` for the refined poses."""

    def __init__(self, K: np.ndarray, cfg: WindowConfig | None = None):
        self.K = np.asarray(K, np.float64)
        self.cfg = cfg or WindowConfig()
        self.vo_poses: list[np.ndarray] = []
        self.refined: dict[int, np.ndarray] = {}
        self.last_refined: int | None = None  # windows run in frame order
        self.window: list[_Frame] = []
        self.n_fixed = 0
        self.points: dict[int, tuple[np.ndarray, float]] = {}  # id -> (q = rho X_world, rho)
        self.stats = WindowStats()
        self.depth_unit = 1.0

    # ------------------------------------------------------------------ public

    def add(self, T_world_cam: np.ndarray, valid: bool, ids: np.ndarray, pts: np.ndarray,
            depth_unit: float = 1.0) -> None:
        """One frame: the odometry's pose, validity, and its tracks (ids (M,), pixels (M, 2))."""
        index = len(self.vo_poses)
        self.vo_poses.append(np.array(T_world_cam, np.float64))
        self.depth_unit = depth_unit
        if not valid:
            self._flush()
            return
        self.window.append(_Frame(index, np.asarray(ids).copy(), np.asarray(pts, np.float64).copy()))
        if len(self.window) >= self.cfg.window_frames:
            self._adjust()
            keep = self.window[-self.cfg.overlap_frames:]
            self.window, self.n_fixed = keep, len(keep)

    def finish(self) -> np.ndarray:
        """Refined ``T_world_cam`` (N, 4, 4) of every frame added."""
        self._flush()
        out = np.stack(self.vo_poses) if self.vo_poses else np.zeros((0, 4, 4))
        delta = np.eye(4)
        for i, T in enumerate(self.vo_poses):
            if i in self.refined:
                out[i] = self.refined[i]
                delta = self.refined[i] @ se3_inverse(T)
            else:
                out[i] = delta @ T
        return out

    # ------------------------------------------------------------------ windows

    def _flush(self) -> None:
        if len(self.window) > max(self.n_fixed, 1):
            self._adjust()
        self.window, self.n_fixed, self.points = [], 0, {}

    def _initial_pose(self, index: int) -> np.ndarray:
        """T_world_cam to start from: refined if it was, else the odometry's moved by the last correction."""
        if index in self.refined:
            return self.refined[index]
        last = self.last_refined
        if last is None or last > index:
            return self.vo_poses[index]
        return self.refined[last] @ se3_inverse(self.vo_poses[last]) @ self.vo_poses[index]

    def _problem(self) -> tuple[BAProblem, np.ndarray] | None:
        cfg, frames = self.cfg, self.window
        T_wc = np.stack([self._initial_pose(f.index) for f in frames])
        T_cw = se3_inverse(T_wc)
        fixed = np.zeros(len(frames), bool)
        fixed[: max(self.n_fixed, 1)] = True
        ids = np.concatenate([f.ids for f in frames])
        fr = np.concatenate([np.full(len(f.ids), k) for k, f in enumerate(frames)])
        uv = np.concatenate([f.pts for f in frames])
        uniq, inv, counts = np.unique(ids, return_inverse=True, return_counts=True)
        last_free = np.zeros(len(uniq), bool)
        last_free[inv[~fixed[fr]]] = True
        ok = (counts >= cfg.min_observations) & last_free
        if ok.sum() > cfg.max_points:  # the longest-lived tracks carry the most geometry
            order = np.argsort(-counts * ok, kind="stable")
            ok = np.zeros(len(uniq), bool)
            ok[order[: cfg.max_points]] = True
        if ok.sum() < 10 or (~fixed).sum() == 0:
            return None
        point_of = np.full(len(uniq), -1)
        point_of[ok] = np.arange(ok.sum())
        sel = ok[inv]
        obs_frame, obs_point, obs_uv = fr[sel], point_of[inv[sel]], uv[sel]
        point_ids = uniq[ok]
        P = len(point_ids)
        first = np.full(P, len(frames))
        np.minimum.at(first, obs_point, obs_frame)
        last = np.full(P, -1)
        np.maximum.at(last, obs_point, obs_frame)
        Ki = np.linalg.inv(self.K)

        def obs_at(frame_k: np.ndarray) -> np.ndarray:
            rows = np.full(P, -1)
            hit = obs_frame == frame_k[obs_point]
            rows[obs_point[hit]] = np.flatnonzero(hit)
            return obs_uv[rows]

        uv_a, uv_l = obs_at(first), obs_at(last)
        ray_a = np.column_stack([uv_a, np.ones(P)]) @ Ki.T
        ab = ray_a[:, :2] / ray_a[:, 2:3]
        rho = np.full(P, 1.0 / self.depth_unit)
        # points seen before (refined in the previous window): their depth in the new anchor frame
        for k, pid in enumerate(point_ids):
            if pid in self.points:
                q, r = self.points[pid]
                h = T_cw[first[k], :3, :3] @ q + r * T_cw[first[k], :3, 3]
                if h[2] > 0 and r > 0:
                    rho[k] = r / h[2]
        # others: triangulated from the odometry's poses when their rays part by >= 1 deg
        new = np.array([pid not in self.points for pid in point_ids])
        ray_l = np.column_stack([uv_l, np.ones(P)]) @ Ki.T
        Ra, Rl = T_wc[first, :3, :3], T_wc[last, :3, :3]
        d1 = np.einsum("pij,pj->pi", Ra, ray_a / np.linalg.norm(ray_a, axis=1, keepdims=True))
        d2 = np.einsum("pij,pj->pi", Rl, ray_l / np.linalg.norm(ray_l, axis=1, keepdims=True))
        _, s1, s2, ang = triangulate_midpoint(T_wc[first, :3, 3], d1, T_wc[last, :3, 3], d2)
        tri = new & (s1 > 0) & (s2 > 0) & (ang > np.deg2rad(1.0))
        z_a = s1 * (ray_a[:, 2] / np.linalg.norm(ray_a, axis=1))  # depth along the anchor's optical axis
        rho[tri] = 1.0 / z_a[tri]
        problem = BAProblem(T_cw, fixed, obs_frame, obs_point, obs_uv, first, ab, rho, self.K)
        return problem, point_ids

    def _adjust(self) -> None:
        c0 = time.process_time()
        built = self._problem()
        self.stats.windows += 1
        if built is None:
            self.stats.skipped_windows += 1
            return
        problem, point_ids = built
        cfg = self.cfg
        kw = dict(f_scale_px=cfg.loss_scale_px, max_iterations=cfg.max_iterations, loss=cfg.loss)
        # a window that starts translating (fixed frames at different centres) cannot be a rotation
        fixed_centres = se3_inverse(problem.T_cw[problem.fixed])[:, :3, 3]
        still = bool(np.ptp(fixed_centres, axis=0).max() <= 1e-9 * (1.0 + np.abs(fixed_centres).max()))
        rotation_possible = cfg.motion_model == "rotation" or (cfg.motion_model == "auto" and still)
        rot = bundle_adjust(problem, translation=False, **kw) if rotation_possible else None
        start = problem if rot is None else BAProblem(  # the rotations the rotation model found, depths as before
            rot.T_cw, problem.fixed, problem.obs_frame, problem.obs_point, problem.obs_uv, problem.anchor,
            rot.ab, problem.rho, problem.K)
        full = bundle_adjust(start, translation=True, **kw) if cfg.motion_model != "rotation" else None
        use_full = rot is None
        if rot is not None and full is not None:
            # the tracks' noise, estimated from the rotation model's errors (the null hypothesis; the
            # median 2D error of Gaussian noise with sigma per axis is 1.1774 sigma)
            sigma = max(float(np.median(rot.errors_px)) / 1.1774, cfg.min_sigma_px)
            use_full = robust_bic(full, sigma) < robust_bic(rot, sigma)
        best = full if use_full else rot
        T_cw = best.T_cw
        if not use_full:  # the camera turned about the centre of the window's last fixed frame
            fixed_rows = np.flatnonzero(problem.fixed)
            C = se3_inverse(problem.T_cw[fixed_rows[-1]])[:3, 3]
            T_cw = T_cw.copy()
            T_cw[:, :3, 3] = -np.einsum("fij,j->fi", T_cw[:, :3, :3], C)
            T_cw[problem.fixed] = problem.T_cw[problem.fixed]
        self.stats.translation_windows += int(use_full)
        self.stats.rotation_windows += int(not use_full)
        self.stats.median_px_before.append((rot or full).median_px_before)  # the odometry's poses
        self.stats.median_px_after.append(best.median_px_after)
        T_wc = se3_inverse(T_cw)
        for k, f in enumerate(self.window):
            if not problem.fixed[k]:
                self.refined[f.index] = T_wc[k]
                self.last_refined = f.index
        # points for the next window, as homogeneous world points q = rho X_world
        Ra = T_cw[problem.anchor, :3, :3]
        ta = T_cw[problem.anchor, :3, 3]
        m = np.column_stack([best.ab, np.ones(len(best.ab))])
        q = np.einsum("pji,pj->pi", Ra, m - best.rho[:, None] * ta)
        self.points = {int(pid): (q[k], float(best.rho[k])) for k, pid in enumerate(point_ids)}
        self.stats.cpu_s += time.process_time() - c0
