"""Sparse bundle adjustment of camera poses and anchored inverse-depth points (scipy least_squares).

Frames: poses are world-to-camera ``T_cw`` (F, 4, 4), OpenCV axes (x right, y down, z forward);
pixels on the grid of K. A point p is anchored in the frame ``anchor[p]`` that first observes it:
``m = (a, b, 1)`` is its normalised ray there and ``rho`` its inverse depth (1 / z in the anchor
camera, 0 = at infinity), i.e. its world position is ``R_aw^T (m / rho - t_aw)``. In homogeneous
form ``q = rho X_w = R_aw^T (m - rho t_aw)`` and the point seen from frame i is ``h = R_iw q + rho
t_iw`` (up to the positive factor rho, which projection ignores), so points at any depth, infinity
included, are well conditioned.

Two motion models:

* ``translation=True``: every free frame has 6 dof (left rotation increment + translation), every
  point 3 (a, b, rho). The scale is a gauge freedom when fewer than two fixed frames pin it, so one
  extra residual holds the mean inverse depth at its initial value (``gauge_weight`` px per 100 %).
* ``translation=False`` (a camera that only rotates): frames have 3 dof, points 2 (a, b) with
  rho = 0, camera centres unchanged.

Optionally one common focal factor (fx and fy scaled together) is refined as well.

Residuals are reprojection errors in pixels with a robust loss (Huber by default, ``f_scale`` px); the
Jacobian is analytic and sparse (``jac_sparsity`` implied by the sparse matrix it returns).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares
from scipy.sparse import csr_matrix

from ..geometry import matrix_from_rotvec


@dataclass
class BAProblem:
    """Observations and the initial state of one bundle adjustment.

    T_cw (F, 4, 4) initial world-to-camera poses; fixed (F,) poses held; obs_frame, obs_point (O,)
    indices and obs_uv (O, 2) pixels; anchor (P,) each point's anchor frame; ab (P, 2) and rho (P,)
    initial anchored point coordinates; K (3, 3)."""

    T_cw: np.ndarray
    fixed: np.ndarray
    obs_frame: np.ndarray
    obs_point: np.ndarray
    obs_uv: np.ndarray
    anchor: np.ndarray
    ab: np.ndarray
    rho: np.ndarray
    K: np.ndarray


@dataclass
class BAResult:
    """Refined poses T_cw (F, 4, 4), points (ab, rho), the focal factor (1 = unchanged), the robust
    cost (0.5 sum of the loss, px^2), the number of residuals and of free parameters, and the median
    reprojection error before / after (px)."""

    T_cw: np.ndarray
    ab: np.ndarray
    rho: np.ndarray
    focal_factor: float
    cost: float
    residuals: int
    parameters: int
    median_px_before: float
    median_px_after: float
    success: bool


def _skew(v: np.ndarray) -> np.ndarray:
    """Cross-product matrices (..., 3, 3) of vectors (..., 3)."""
    z = np.zeros(v.shape[:-1])
    return np.stack([np.stack([z, -v[..., 2], v[..., 1]], -1),
                     np.stack([v[..., 2], z, -v[..., 0]], -1),
                     np.stack([-v[..., 1], v[..., 0], z], -1)], -2)


def _left_jacobian(w: np.ndarray) -> np.ndarray:
    """Left Jacobians (..., 3, 3) of SO(3) at rotation vectors w: exp(w + d) = exp(J_l(w) d) exp(w)."""
    theta = np.linalg.norm(w, axis=-1)[..., None, None]
    W = _skew(w)
    small = theta < 1e-8
    th = np.where(small, 1.0, theta)
    c1 = np.where(small, 0.5, (1 - np.cos(th)) / th**2)
    c2 = np.where(small, 1.0 / 6.0, (th - np.sin(th)) / th**3)
    return np.eye(3) + c1 * W + c2 * (W @ W)


class _Layout:
    """Where each unknown lives in the parameter vector."""

    def __init__(self, p: BAProblem, translation: bool, refine_focal: bool):
        F, P = len(p.T_cw), len(p.anchor)
        self.translation = translation
        self.pose_dof = 6 if translation else 3
        self.point_dof = 3 if translation else 2
        free = np.flatnonzero(~p.fixed)
        self.pose_col = np.full(F, -1)
        self.pose_col[free] = np.arange(len(free)) * self.pose_dof
        self.n_pose = len(free) * self.pose_dof
        self.point_col = self.n_pose + np.arange(P) * self.point_dof
        self.focal_col = self.n_pose + P * self.point_dof if refine_focal else -1
        self.size = self.n_pose + P * self.point_dof + (1 if refine_focal else 0)


class _Model:
    """Residuals and their sparse Jacobian for one layout."""

    def __init__(self, p: BAProblem, layout: _Layout, loss_gauge: float):
        self.p, self.L = p, layout
        self.R0 = p.T_cw[:, :3, :3]
        self.t0 = p.T_cw[:, :3, 3]
        self.gauge = loss_gauge if layout.translation and len(p.rho) else 0.0
        self.rho_mean0 = float(np.mean(p.rho)) if len(p.rho) else 0.0
        if self.rho_mean0 <= 0:
            self.gauge = 0.0
        self._structure()

    def x0(self) -> np.ndarray:
        L, p = self.L, self.p
        x = np.zeros(L.size)
        free = L.pose_col >= 0
        if L.translation:
            x[(L.pose_col[free, None] + 3 + np.arange(3)).ravel()] = self.t0[free].ravel()
        cols = L.point_col[:, None] + np.arange(L.point_dof)
        pts = np.column_stack([p.ab, p.rho]) if L.translation else p.ab
        x[cols.ravel()] = pts.ravel()
        if L.focal_col >= 0:
            x[L.focal_col] = 1.0
        return x

    def unpack(self, x: np.ndarray):
        L, p = self.L, self.p
        R, t = self.R0.copy(), self.t0.copy()
        free = np.flatnonzero(L.pose_col >= 0)
        if len(free):
            c = L.pose_col[free]
            w = x[c[:, None] + np.arange(3)]
            R[free] = matrix_from_rotvec(w) @ self.R0[free]
            if L.translation:
                t[free] = x[c[:, None] + 3 + np.arange(3)]
        pts = x[L.point_col[:, None] + np.arange(L.point_dof)]
        ab = pts[:, :2]
        rho = pts[:, 2] if L.translation else np.zeros(len(ab))
        s = x[L.focal_col] if L.focal_col >= 0 else 1.0
        return R, t, ab, rho, s

    def _geometry(self, x: np.ndarray):
        p = self.p
        R, t, ab, rho, s = self.unpack(x)
        i, j = p.obs_frame, p.obs_point
        a = p.anchor[j]
        m = np.column_stack([ab[j], np.ones(len(j))])
        v = m - rho[j, None] * t[a]
        q = np.einsum("oji,oj->oi", R[a], v)  # R_a^T v
        h = np.einsum("oij,oj->oi", R[i], q) + rho[j, None] * t[i]
        return R, t, ab, rho, s, i, j, a, m, v, q, h

    def residuals(self, x: np.ndarray) -> np.ndarray:
        p = self.p
        R, t, ab, rho, s, i, j, a, m, v, q, h = self._geometry(x)
        z = np.maximum(h[:, 2], 1e-9)
        K = p.K
        r = np.column_stack([s * K[0, 0] * h[:, 0] / z + K[0, 2] - p.obs_uv[:, 0],
                             s * K[1, 1] * h[:, 1] / z + K[1, 2] - p.obs_uv[:, 1]]).ravel()
        if self.gauge:
            r = np.append(r, self.gauge * (np.mean(rho) / self.rho_mean0 - 1.0))
        return r

    def _structure(self) -> None:
        """Column indices of the Jacobian's non-zeros, fixed for the problem: per observation two rows
        of [observer pose | anchor pose | point | focal]. Blocks that are zero (a fixed pose, or both
        poses of the anchor's own view, whose contributions cancel) keep their slots with value 0."""
        p, L = self.p, self.L
        i, j = p.obs_frame, p.obs_point
        a = p.anchor[j]
        ci, ca = L.pose_col[i], L.pose_col[a]
        self.zero_i = (ci < 0) | (i == a)
        self.zero_a = (ca < 0) | (i == a)
        k = np.arange(L.pose_dof)
        cols = [np.where(ci < 0, 0, ci)[:, None] + k, np.where(ca < 0, 0, ca)[:, None] + k,
                L.point_col[j][:, None] + np.arange(L.point_dof)]
        if L.focal_col >= 0:
            cols.append(np.full((len(i), 1), L.focal_col))
        cols = np.concatenate(cols, axis=1)
        self.row_nnz = cols.shape[1]
        indices = [np.repeat(cols[:, None, :], 2, axis=1).ravel()]
        indptr = list(np.arange(2 * len(i) + 1) * self.row_nnz)
        if self.gauge:
            indices.append(L.point_col + 2)
            indptr.append(indptr[-1] + len(L.point_col))
        self.indices = np.concatenate(indices)
        self.indptr = np.asarray(indptr)
        self.n_rows = len(self.indptr) - 1

    def jacobian(self, x: np.ndarray) -> csr_matrix:
        p, L = self.p, self.L
        R, t, ab, rho, s, i, j, a, m, v, q, h = self._geometry(x)
        O = len(i)
        z = np.maximum(h[:, 2], 1e-9)
        fx, fy = s * p.K[0, 0], s * p.K[1, 1]
        dp = np.zeros((O, 2, 3))  # d(u, v) / dh
        dp[:, 0, 0] = fx / z
        dp[:, 0, 2] = -fx * h[:, 0] / z**2
        dp[:, 1, 1] = fy / z
        dp[:, 1, 2] = -fy * h[:, 1] / z**2
        Jl = np.tile(np.eye(3), (len(R), 1, 1))
        free = np.flatnonzero(L.pose_col >= 0)
        Jl[free] = _left_jacobian(x[L.pose_col[free, None] + np.arange(3)])
        Rq = np.einsum("oij,oj->oi", R[i], q)
        RiRaT = np.einsum("oij,okj->oik", R[i], R[a])
        D = np.einsum("orj,ojk->ork", dp, RiRaT)  # d(u, v) / dq
        # observer pose: dh/dw_i = -[R_i q]x J_l(w_i), dh/dt_i = rho I
        # anchor pose:   dq/dw_a = R_a^T [v]x J_l(w_a), dq/dt_a = -rho R_a^T
        blk_i = [np.einsum("orj,ojk->ork", np.cross(Rq[:, None, :], dp), Jl[i])]
        blk_a = [np.einsum("orj,ojk->ork", np.cross(D, v[:, None, :]), Jl[a])]
        if L.translation:
            blk_i.append(dp * rho[j, None, None])
            blk_a.append(-D * rho[j, None, None])
        blk_i, blk_a = np.concatenate(blk_i, 2), np.concatenate(blk_a, 2)
        blk_i[self.zero_i] = 0.0
        blk_a[self.zero_a] = 0.0
        # point: dh/da = R_i R_a^T e_x, dh/db = R_i R_a^T e_y, dh/drho = t_i - R_i R_a^T t_a
        blocks = [blk_i, blk_a, D[:, :, :2]]
        if L.translation:
            d_rho = t[i] - np.einsum("oij,oj->oi", RiRaT, t[a])
            blocks.append(np.einsum("orj,oj->or", dp, d_rho)[:, :, None])
        if L.focal_col >= 0:
            blocks.append(np.column_stack([p.K[0, 0] * h[:, 0] / z, p.K[1, 1] * h[:, 1] / z])[:, :, None])
        data = [np.concatenate(blocks, 2).ravel()]
        if self.gauge:
            data.append(np.full(len(rho), self.gauge / (len(rho) * self.rho_mean0)))
        return csr_matrix((np.concatenate(data), self.indices, self.indptr), shape=(self.n_rows, L.size))


def bundle_adjust(problem: BAProblem, translation: bool = True, refine_focal: bool = False,
                  loss: str = "huber", f_scale_px: float = 1.0, gauge_weight: float = 10.0,
                  max_nfev: int = 30) -> BAResult:
    """Refine the free poses, the points and optionally the focal by robust least squares.

    With ``translation=False`` the points are put at infinity (rho = 0) and only rotations change."""
    p = problem
    if not translation:
        p = BAProblem(p.T_cw, p.fixed, p.obs_frame, p.obs_point, p.obs_uv, p.anchor, p.ab,
                      np.zeros(len(p.anchor)), p.K)
    layout = _Layout(p, translation, refine_focal)
    model = _Model(p, layout, gauge_weight)
    x0 = model.x0()
    r0 = model.residuals(x0)[: 2 * len(p.obs_frame)].reshape(-1, 2)
    before = float(np.median(np.linalg.norm(r0, axis=1))) if len(r0) else 0.0
    if layout.size == 0 or len(p.obs_frame) == 0:
        return BAResult(p.T_cw.copy(), p.ab.copy(), p.rho.copy(), 1.0, 0.0, len(r0) * 2, 0, before, before, True)
    sol = least_squares(model.residuals, x0, jac=model.jacobian, method="trf", loss=loss, f_scale=f_scale_px,
                        x_scale="jac", tr_solver="lsmr", max_nfev=max_nfev, xtol=1e-10, ftol=1e-6)
    R, t, ab, rho, s = model.unpack(sol.x)
    T = np.tile(np.eye(4), (len(R), 1, 1))
    T[:, :3, :3], T[:, :3, 3] = R, t
    r1 = sol.fun[: 2 * len(p.obs_frame)].reshape(-1, 2)
    return BAResult(T, ab, rho, float(s), float(sol.cost), int(2 * len(p.obs_frame)), layout.size, before,
                    float(np.median(np.linalg.norm(r1, axis=1))), bool(sol.success))
