"""Sparse bundle adjustment of camera poses and anchored inverse-depth points.

Frames: poses are world-to-camera ``T_cw`` (F, 4, 4), OpenCV axes (x right, y down, z forward);
pixels on the grid of K. A point p is anchored in the frame ``anchor[p]`` that first observes it:
``m = (a, b, 1)`` is its normalised ray there and ``rho`` its inverse depth (1 / z in the anchor
camera, 0 = at infinity), i.e. its world position is ``R_aw^T (m / rho - t_aw)``. In homogeneous
form ``q = rho X_w = R_aw^T (m - rho t_aw)`` and the point seen from frame i is ``h = R_iw q + rho
t_iw`` (up to the positive factor rho, which projection ignores), so points at any depth, infinity
included, are well conditioned.

Two motion models:

* ``translation=True``: every free frame has 6 dof (left rotation increment + translation), every
  point 3 (a, b, rho). The scale is a gauge freedom unless fixed frames with a baseline pin it, so
  one extra residual holds the mean inverse depth at its initial value (``gauge_weight`` px per
  100 %; against many observations it only decides where they do not).
* ``translation=False`` (a camera that only rotates): frames have 3 dof, points 2 (a, b) with
  rho = 0, camera centres unchanged.

Optionally one common focal factor (fx and fy scaled together) is refined as well.

Residuals are reprojection errors in pixels with a robust loss (Huber by default, ``f_scale_px``) on
each observation's 2D error; the Jacobian is analytic and sparse, and the Levenberg-Marquardt steps
are solved by the Schur complement on the points.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
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
    cost (0.5 sum of the loss, px^2), the number of residuals and of free parameters, the median
    reprojection error before / after (px) and each observation's error after (px)."""

    T_cw: np.ndarray
    ab: np.ndarray
    rho: np.ndarray
    focal_factor: float
    cost: float
    residuals: int
    parameters: int
    median_px_before: float
    median_px_after: float
    converged: bool
    errors_px: np.ndarray


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

    def __init__(self, p: BAProblem, layout: _Layout, gauge_weight: float):
        self.p, self.L = p, layout
        self.R0 = p.T_cw[:, :3, :3]
        self.t0 = p.T_cw[:, :3, 3]
        self.gauge = gauge_weight if layout.translation and len(p.rho) else 0.0
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
        L = self.L
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

    def rebase(self, x: np.ndarray) -> np.ndarray:
        """Fold the rotation increments of ``x`` into the base rotations; returns ``x`` with them at 0."""
        R = self.unpack(x)[0]
        self.R0 = R
        x = x.copy()
        c = self.L.pose_col[self.L.pose_col >= 0]
        x[(c[:, None] + np.arange(3)).ravel()] = 0.0
        return x

    def _geometry(self, x: np.ndarray):
        """Per observation: the point seen from its frame, ``h = M m + rho tau`` with the relative pose
        anchor -> frame ``M = R_i R_a^T``, ``tau = t_i - M t_a`` (computed once per frame pair)."""
        p = self.p
        R, t, ab, rho, s = self.unpack(x)
        M = R[self.pair_i] @ np.swapaxes(R[self.pair_a], 1, 2)
        tau = t[self.pair_i] - np.einsum("kij,kj->ki", M, t[self.pair_a])
        Mo, tau_o = M[self.pair_of], tau[self.pair_of]
        j = p.obs_point
        a_, b_, r_ = ab[j, 0], ab[j, 1], rho[j]
        h = Mo[:, :, 0] * a_[:, None] + Mo[:, :, 1] * b_[:, None] + Mo[:, :, 2] + r_[:, None] * tau_o
        return R, t, ab, rho, s, Mo, tau_o, h

    def residuals(self, x: np.ndarray) -> np.ndarray:
        p = self.p
        R, t, ab, rho, s, Mo, tau_o, h = self._geometry(x)
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
        pair = i * len(p.T_cw) + a
        uniq, self.pair_of = np.unique(pair, return_inverse=True)
        self.pair_i, self.pair_a = uniq // len(p.T_cw), uniq % len(p.T_cw)
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
        """Sparse Jacobian of :meth:`residuals`. Rotations are differentiated by a left increment
        (``exp(d) R``), which is the derivative in the parameters at w = 0; :func:`bundle_adjust`
        re-bases the rotations after every step (:meth:`rebase`), so it is always taken there."""
        p, L = self.p, self.L
        R, t, ab, rho, s, Mo, tau_o, h = self._geometry(x)
        j = p.obs_point
        r_ = rho[j][:, None]
        z = np.maximum(h[:, 2], 1e-9)
        fx, fy = s * p.K[0, 0] / z, s * p.K[1, 1] / z
        gx, gy = fx * h[:, 0] / z, fy * h[:, 1] / z
        # rows of d(u, v)/dh: (fx/z, 0, -fx hx/z^2) and (0, fy/z, -fy hy/z^2)
        du = np.column_stack([fx, np.zeros_like(fx), -gx])
        dv = np.column_stack([np.zeros_like(fy), fy, -gy])
        Du = fx[:, None] * Mo[:, 0, :] - gx[:, None] * Mo[:, 2, :]  # d(u, v)/dq with q in the anchor frame
        Dv = fy[:, None] * Mo[:, 1, :] - gy[:, None] * Mo[:, 2, :]
        Rq = h - r_ * t[p.obs_frame]  # R_i q
        v = np.column_stack([ab[j], np.ones(len(j))]) - r_ * t[p.anchor[j]]
        # observer pose: dh/dw_i = -[R_i q]x -> row . (-[Rq]x) = Rq x row; dh/dt_i = rho I
        # anchor pose (in its own frame): dh/dw_a = M [v]x -> row . M [v]x = (row M) x v; dh/dt_a = -rho M
        cols = []
        for d, D in ((du, Du), (dv, Dv)):
            row = [np.cross(Rq, d)]
            if L.translation:
                row.append(r_ * d)
            row.append(np.cross(D, v))
            if L.translation:
                row.append(-r_ * D)
            cols.append(row)
        blk_i = np.stack([np.concatenate(c[: len(c) // 2], 1) for c in cols], 1)
        blk_a = np.stack([np.concatenate(c[len(c) // 2:], 1) for c in cols], 1)
        blk_i[self.zero_i] = 0.0
        blk_a[self.zero_a] = 0.0
        # point: dh/da = M e_x, dh/db = M e_y, dh/drho = tau
        blocks = [blk_i, blk_a, np.stack([Du[:, :2], Dv[:, :2]], 1)]
        if L.translation:
            blocks.append(np.stack([np.einsum("oi,oi->o", du, tau_o), np.einsum("oi,oi->o", dv, tau_o)], 1)[:, :, None])
        if L.focal_col >= 0:
            blocks.append(np.column_stack([p.K[0, 0] * h[:, 0] / z, p.K[1, 1] * h[:, 1] / z])[:, :, None])
        data = [np.concatenate(blocks, 2).ravel()]
        if self.gauge:
            data.append(np.full(len(rho), self.gauge / (len(rho) * self.rho_mean0)))
        return csr_matrix((np.concatenate(data), self.indices, self.indptr), shape=(self.n_rows, L.size))


def schur_step(H: np.ndarray, g: np.ndarray, lam: float, layout: "_Layout") -> np.ndarray:
    """The Levenberg-Marquardt step solving ``(H + lam diag(H)) d = -g`` by the Schur complement on
    the points, whose blocks (``point_dof`` square) are independent given the cameras."""
    L = layout
    k = L.point_dof
    pts = (L.point_col[:, None] + np.arange(k))  # (P, k)
    cam = np.concatenate([np.arange(L.n_pose), [L.focal_col] if L.focal_col >= 0 else []]).astype(int)
    D = H.diagonal().copy()
    A = H + np.diag(lam * np.maximum(D, 1e-9) + 1e-12)
    Hpp = A[pts[:, :, None], pts[:, None, :]]  # (P, k, k)
    Hpp_inv = np.linalg.inv(Hpp)
    gp = g[pts]  # (P, k)
    step = np.zeros(len(g))
    if len(cam):
        Hcp = A[np.ix_(cam, pts.ravel())].reshape(len(cam), len(pts), k)
        B = np.einsum("cpk,pkl->cpl", Hcp, Hpp_inv).reshape(len(cam), -1)
        S = A[np.ix_(cam, cam)] - B @ Hcp.reshape(len(cam), -1).T
        dc = np.linalg.solve(S, -g[cam] + B @ gp.ravel())
        step[cam] = dc
        gp = gp + np.einsum("cpk,c->pk", Hcp, dc)
    step[pts] = -np.einsum("pkl,pl->pk", Hpp_inv, gp)
    return step


def robust_weights(sq_px: np.ndarray, loss: str, scale_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Loss rho(s) and its derivative (the IRLS weight) of squared per-observation errors s (px^2)."""
    k2 = scale_px**2
    if loss == "huber":
        root = np.sqrt(np.maximum(sq_px, 1e-300))
        inner = sq_px <= k2
        return np.where(inner, sq_px, 2 * scale_px * root - k2), np.where(inner, 1.0, scale_px / root)
    if loss == "cauchy":
        return k2 * np.log1p(sq_px / k2), 1.0 / (1.0 + sq_px / k2)
    if loss == "linear":
        return sq_px, np.ones_like(sq_px)
    raise ValueError(f"unknown loss {loss!r} (huber, cauchy, linear)")


def bundle_adjust(problem: BAProblem, translation: bool = True, refine_focal: bool = False,
                  loss: str = "huber", f_scale_px: float = 1.0, gauge_weight: float = 10.0,
                  max_iterations: int = 15, rel_tolerance: float = 1e-5) -> BAResult:
    """Refine the free poses, the points and optionally the focal by robust least squares.

    Levenberg-Marquardt on the normal equations with iteratively reweighted residuals (the robust
    loss acts on each observation's 2D error), solved sparsely; after every accepted step the
    rotations are re-based, so each linearisation is exact. Stops when an accepted step lowers the
    cost by less than ``rel_tolerance`` of it, or after ``max_iterations`` Jacobians. (scipy's
    ``least_squares`` TRF + LSMR with the same sparse Jacobian had not converged after 100 evaluations
    on 30-frame windows of real video.) With ``translation=False`` the points are put at infinity
    (rho = 0) and only rotations change."""
    p = problem
    if not translation:
        p = BAProblem(p.T_cw, p.fixed, p.obs_frame, p.obs_point, p.obs_uv, p.anchor, p.ab,
                      np.zeros(len(p.anchor)), p.K)
    layout = _Layout(p, translation, refine_focal)
    model = _Model(p, layout, gauge_weight)
    n_obs = len(p.obs_frame)

    def evaluate(x: np.ndarray):
        r = model.residuals(x)
        sq = r[: 2 * n_obs].reshape(-1, 2)
        sq = (sq**2).sum(1)
        rho, w = robust_weights(sq, loss, f_scale_px)
        return r, sq, w, 0.5 * (rho.sum() + float((r[2 * n_obs:] ** 2).sum()))

    x = model.x0()
    r, sq, w, cost = evaluate(x)
    before = float(np.median(np.sqrt(sq))) if n_obs else 0.0
    converged = True
    if layout.size and n_obs:
        lam, converged = 1e-3, False
        for _ in range(max_iterations):
            J = model.jacobian(x)
            wr = np.concatenate([np.repeat(w, 2), np.ones(len(r) - 2 * n_obs)])
            Jw = J.multiply(wr[:, None]).tocsr()
            H = (J.T @ Jw).toarray()
            g = Jw.T @ r
            while lam < 1e8:
                x_new = x + schur_step(H, g, lam, layout)
                r_new, sq_new, w_new, cost_new = evaluate(x_new)
                if np.isfinite(cost_new) and cost_new < cost:
                    break
                lam *= 4.0
            else:
                converged = True
                break
            gain = cost - cost_new
            x, r, sq, w, cost = model.rebase(x_new), r_new, sq_new, w_new, cost_new
            lam = max(lam / 3.0, 1e-7)
            if gain < rel_tolerance * cost:
                converged = True
                break
    R, t, ab, rho, s = model.unpack(x)
    T = np.tile(np.eye(4), (len(R), 1, 1))
    T[:, :3, :3], T[:, :3, 3] = R, t
    e1 = np.sqrt(sq)
    return BAResult(T, ab, rho, float(s), float(cost), int(2 * n_obs), layout.size, before,
                    float(np.median(e1)) if n_obs else 0.0, converged, e1)
