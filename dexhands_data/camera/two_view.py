"""Two-view geometry between a keyframe and the current frame, with model selection.

Three models explain the correspondences ``p1`` (keyframe) -> ``p2`` (current) on the pixel grid of K:

* ``rotation``: ``b2 = R b1`` (the homography ``K R K^-1`` of a camera that only turns; 3 dof);
* ``homography``: ``p2 ~ H p1`` (a plane seen from two places, e.g. a tabletop; 8 dof);
* ``essential``: ``b2^T E b1 = 0`` (general 3D structure; 5 dof).

The winner is the model with the lowest GRIC (Torr's geometric robust information criterion), which
weighs the residuals against the model's dimension and parameters, so a plane picks the homography
(lower dimension) and a rotation the rotation model (fewer parameters) even though the essential
matrix fits them too. A homography and an essential matrix each decompose into several (R, t):
those placing the points in front of both cameras are kept, and among them the one closest to
the motion predicted from the previous frames (constant velocity), which stops the pose flipping
between the two valid planar solutions.

Conventions: ``x_cur = R x_kf + t`` (OpenCV's), t of unit length, K in pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .bearings import bearings, triangulate_midpoint

# GRIC constants (Torr 1998): r = 4 observed coordinates per correspondence.
_LAMBDA1 = np.log(4.0)
_LAMBDA3 = 2.0


def gric(residuals_sq_px: np.ndarray, sigma_px: float, model_dim: int, params: int) -> float:
    """GRIC of a model with squared residuals (px^2, one per correspondence), manifold dimension
    ``model_dim`` (2 for homographies, 3 for essential matrices) and ``params`` degrees of freedom."""
    n = len(residuals_sq_px)
    rho = np.minimum(residuals_sq_px / sigma_px**2, _LAMBDA3 * (4 - model_dim))
    return float(rho.sum() + _LAMBDA1 * model_dim * n + np.log(4.0 * n) * params)


def inverse3(M: np.ndarray) -> np.ndarray:
    """Inverse of a 3x3 matrix by its adjugate (no LAPACK call: this runs for every frame)."""
    a, b, c = M[0], M[1], M[2]
    adj = np.array([np.cross(b, c), np.cross(c, a), np.cross(a, b)]).T
    return adj / float(a @ np.cross(b, c))


def transfer_sq_px(H: np.ndarray, p1: np.ndarray, p2: np.ndarray) -> np.ndarray:
    """Half the symmetric transfer error (px^2) of homography H (p2 ~ H p1), ~ the error in both images."""
    def apply(M, p):
        q = np.column_stack([p, np.ones(len(p))]) @ M.T
        return q[:, :2] / q[:, 2:3]

    with np.errstate(divide="ignore", invalid="ignore"):
        e = np.sum((apply(H, p1) - p2) ** 2, axis=1) + np.sum((apply(inverse3(H), p2) - p1) ** 2, axis=1)
    return np.where(np.isfinite(e), 0.5 * e, np.inf)


def sampson_sq_px(E: np.ndarray, K: np.ndarray, p1: np.ndarray, p2: np.ndarray) -> np.ndarray:
    """Sampson's first-order geometric error (px^2) of the epipolar constraint of E."""
    Ki = inverse3(K)
    F = Ki.T @ E @ Ki
    x1 = np.column_stack([p1, np.ones(len(p1))])
    x2 = np.column_stack([p2, np.ones(len(p2))])
    Fx1, Ftx2 = x1 @ F.T, x2 @ F
    num = np.einsum("ij,ij->i", x2, Fx1) ** 2
    den = Fx1[:, 0] ** 2 + Fx1[:, 1] ** 2 + Ftx2[:, 0] ** 2 + Ftx2[:, 1] ** 2
    return num / np.maximum(den, 1e-300)


@dataclass
class Motion:
    """One relative motion hypothesis: ``x_cur = R x_kf + t`` (|t| = 1), and what it triangulates.

    X_kf: points (M, 3) in the keyframe camera with the unit baseline; in_front: both depths
    positive; angle: ray angle (rad) per point; normal: the plane normal for a homography (else None)."""

    R: np.ndarray
    t: np.ndarray
    in_front: np.ndarray
    X_kf: np.ndarray
    angle: np.ndarray
    normal: np.ndarray | None = None

    @property
    def T_kf_cur(self) -> np.ndarray:
        T = np.eye(4)
        T[:3, :3] = self.R.T
        T[:3, 3] = -self.R.T @ self.t
        return T


def triangulated(R: np.ndarray, t: np.ndarray, b1: np.ndarray, b2: np.ndarray, normal=None) -> Motion:
    """Triangulate bearings b1 (keyframe) / b2 (current) under ``x_cur = R x_kf + t`` (t unit)."""
    t = t / max(np.linalg.norm(t), 1e-12)
    c2 = np.tile(-R.T @ t, (len(b1), 1))
    X, s1, s2, ang = triangulate_midpoint(np.zeros_like(c2), b1, c2, b2 @ R)
    return Motion(R, t, (s1 > 0) & (s2 > 0), X, ang, normal)


def plane_visible(R: np.ndarray, normal: np.ndarray, b1: np.ndarray, b2: np.ndarray, ratio: float = 0.9) -> bool:
    """The plane ``normal . x_kf = d > 0`` faces both cameras at (nearly) all points: ``n . b1 > 0`` in
    the keyframe and ``(R n) . b2 > 0`` in the current frame."""
    return bool(np.mean(b1 @ normal > 0) >= ratio and np.mean(b2 @ (R @ normal) > 0) >= ratio)


def rotation_angle(Ra: np.ndarray, Rb: np.ndarray) -> float:
    """Angle (rad) of Ra^T Rb."""
    return float(np.arccos(np.clip((np.trace(Ra.T @ Rb) - 1) / 2, -1.0, 1.0)))


def choose_motion(candidates: list[Motion], predicted: np.ndarray | None,
                  min_front_ratio: float = 0.9) -> Motion | None:
    """The hypothesis to keep: among those with nearly the most points in front of both cameras
    (>= ``min_front_ratio`` of the best count), the one closest to the predicted motion
    (``T_kf_cur`` 4x4, or None: then the most points in front)."""
    if not candidates:
        return None
    counts = np.array([m.in_front.sum() for m in candidates])
    if counts.max() == 0:
        return None
    plausible = [m for m, c in zip(candidates, counts) if c >= min_front_ratio * counts.max()]
    if predicted is None or len(plausible) == 1:
        return max(plausible, key=lambda m: m.in_front.sum())
    R_pred = predicted[:3, :3].T  # x_cur = R_pred x_kf
    t_pred = -R_pred @ predicted[:3, 3]
    t_norm = np.linalg.norm(t_pred)

    def distance(m: Motion) -> float:
        d = rotation_angle(m.R, R_pred)
        if t_norm > 1e-9:
            d += 0.1 * float(np.arccos(np.clip(m.t @ t_pred / t_norm, -1.0, 1.0)))
        return d

    return min(plausible, key=distance)


@dataclass
class TwoViewFit:
    """The selected model: kind ("rotation", "homography", "essential"), its inliers and, unless a
    rotation, the kept decomposition; gric: the scores of every model fitted (for the record)."""

    kind: str
    inliers: np.ndarray
    R_rotation: np.ndarray
    motion: Motion | None
    gric: dict[str, float]


def fit_two_view(p1: np.ndarray, p2: np.ndarray, K: np.ndarray, R_rot: np.ndarray, rot_inliers: np.ndarray,
                 threshold_px: float, predicted: np.ndarray | None) -> TwoViewFit | None:
    """Fit the three models to keyframe/current pixels and keep the best by GRIC (None: nothing fits).

    ``R_rot``, ``rot_inliers``: the rotation model, already fitted by the caller."""
    f = 0.5 * (K[0, 0] + K[1, 1])
    b1, b2 = bearings(p1, K), bearings(p2, K)
    sigma = threshold_px / 2.0
    rot_sq = 0.5 * (f * np.linalg.norm(b1 @ R_rot.T - b2, axis=1)) ** 2
    n = len(p1)
    scores = {"rotation": gric(rot_sq, sigma, 2, 3)}
    fits: dict[str, np.ndarray] = {"rotation": rot_inliers}
    # A model is only fitted when even zero residuals could beat the best score so far (exact
    # selection, and the common cases, a rotation or a plane, skip the costlier fits).
    if min(scores.values()) > gric(np.zeros(n), sigma, 2, 8):
        H, h_inl = cv2.findHomography(p1, p2, cv2.RANSAC, threshold_px, maxIters=200, confidence=0.999)
        if H is not None and h_inl is not None and abs(np.linalg.det(H)) > 1e-12:
            scores["homography"] = gric(transfer_sq_px(H, p1, p2), sigma, 2, 8)
            fits["homography"] = h_inl.ravel() > 0
    if min(scores.values()) > gric(np.zeros(n), sigma, 3, 5):
        E, e_inl = cv2.findEssentialMat(p1, p2, K, cv2.USAC_DEFAULT, 0.999, threshold_px)
        if E is not None and E.shape == (3, 3) and e_inl is not None:
            scores["essential"] = gric(sampson_sq_px(E, K, p1, p2), sigma, 3, 5)
            fits["essential"] = e_inl.ravel() > 0
    kind = min(scores, key=scores.get)
    inliers = fits[kind]
    if kind == "rotation":
        return TwoViewFit(kind, inliers, R_rot, None, scores)
    sel = inliers
    if kind == "homography":
        n_sol, Rs, ts, ns = cv2.decomposeHomographyMat(H, K)
        cands = [triangulated(Rs[i], ts[i].ravel(), b1[sel], b2[sel], ns[i].ravel()) for i in range(n_sol)
                 if np.linalg.norm(ts[i]) > 1e-9 and plane_visible(Rs[i], ns[i].ravel(), b1[sel], b2[sel])]
    else:
        R_a, R_b, t = cv2.decomposeEssentialMat(E)
        cands = [triangulated(R, s * t.ravel(), b1[sel], b2[sel]) for R in (R_a, R_b) for s in (1.0, -1.0)]
    motion = choose_motion(cands, predicted)
    if motion is None:
        return None
    return TwoViewFit(kind, inliers, motion.R, motion, scores)
