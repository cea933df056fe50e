"""Focal length from the video itself: the homographies of a rotating camera determine K.

For a camera that only rotates, the bearings of a feature in two frames obey ``b2 = R b1`` exactly
when they are computed with the true focal length; with a wrong focal no rotation fits the whole
field of view (the error grows with the distance from the principal point). So over frame pairs
the focal is the one minimising the rotation residual. Pairs where no focal makes a rotation fit
(translation with parallax, a plane seen while moving) are not rotation-dominant and are left out;
where no pair is informative (too little pan/tilt, pure translation, a static camera) the focal
is **not observable** and the caller keeps its prior.

Lens distortion is estimated with the focal: the bearings are those of the *undistorted* pixels
(radial k1 of OpenCV's model, :mod:`dexhands_data.distortion`), and a barrel or pincushion lens
leaves a residual growing with the cube of the radius that no focal removes. So each pair is fitted
over (log f, k1) (Nelder-Mead, the rotation refitted at every step), and the summed cost over the
rotation-dominant pairs gives both. k1 is kept only when it is significant (|k1| >= 3 sigma, sigma
from the spread of the per-pair optima); otherwise the camera stays a pinhole and the focal is the
one of the pinhole fit, with the reason recorded. k2 and the tangential terms are not estimated.

Units: pixels on the grid the correspondences were measured on (the odometry's working grid);
square pixels, principal point fixed (the prior's, normally the image centre). k1 is dimensionless
(normalised coordinates), so it is the same on the source grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize, minimize_scalar

from ..distortion import Distortion
from .bearings import fit_rotation_ransac, rotation_from_bearings


@dataclass(frozen=True)
class FocalEstimate:
    """Result of :func:`estimate_focal`.

    focal_px: the estimate (None when not observable); sigma_rel: its 1-sigma relative uncertainty
    from the spread of the per-pair optima; pairs_used / pairs_total: rotation-dominant and
    informative pairs out of those given; reason: why the focal is not observable (else None).
    k1: the radial distortion found with the focal (None: pinhole kept); k1_sigma: its 1-sigma
    uncertainty (also when k1 was not kept); distortion_reason: why no k1 is kept (else None)."""

    focal_px: float | None
    sigma_rel: float | None
    pairs_used: int
    pairs_total: int
    reason: str | None
    k1: float | None = None
    k1_sigma: float | None = None
    distortion_reason: str | None = None

    def as_dict(self) -> dict:
        return {"focal_px": self.focal_px, "sigma_rel": self.sigma_rel, "pairs_used": self.pairs_used,
                "pairs_total": self.pairs_total, "reason": self.reason, "k1": self.k1,
                "k1_sigma": self.k1_sigma, "distortion_reason": self.distortion_reason}


@dataclass(frozen=True)
class CalibrationSettings:
    """inlier_px: a point fits the rotation when its residual is below this; min_inlier_ratio: a
    pair is rotation-dominant when that many of its points fit at the pair's best focal;
    min_gain_px2: a pair is informative when a 10 % focal change raises its mean squared residual
    by at least this; focal range as horizontal fields of view (deg); min_pairs to trust the result.
    estimate_distortion: fit k1 with the focal, within +-max_abs_k1 (per pair on at most
    max_fit_points inliers), on pairs where the pinhole fit leaves min_inlier_ratio of the points
    within lens_gate_px (a lens bends a rotation by a few px beyond what the focal absorbs;
    parallax does not fit at all: measured 90-100 % within 4 px on barrel lenses with k1 -0.2 to
    -0.35, 5-76 % on translating scenes); k1 is kept when |k1| >= k1_significance x its sigma."""

    inlier_px: float = 1.0
    truncate_px: float = 2.0
    min_inlier_ratio: float = 0.8
    min_gain_px2: float = 0.05
    min_hfov_deg: float = 20.0
    max_hfov_deg: float = 150.0
    min_pairs: int = 2
    min_points: int = 30
    coarse_steps: int = 16
    estimate_distortion: bool = True
    max_abs_k1: float = 0.5
    max_fit_points: int = 100
    lens_gate_px: float = 4.0
    k1_significance: float = 3.0


def _bearings(pixels: np.ndarray, f: float, cx: float, cy: float, k1: float = 0.0) -> np.ndarray:
    """Unit rays of image pixels at focal f with radial distortion k1 (NaN beyond the lens's fold)."""
    xy = (pixels - [cx, cy]) / f
    if k1:
        xy = Distortion(k1).undistort_normalised(xy)
    x = np.column_stack([xy, np.ones(len(pixels))])
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def rotation_residual_px(p1: np.ndarray, p2: np.ndarray, f: float, cx: float, cy: float,
                         inliers: np.ndarray | None = None, k1: float = 0.0) -> np.ndarray:
    """Per-point residuals (px, ~ f x angle) of the best rotation between pixels p1 -> p2 (M, 2) at focal f
    and radial distortion k1; the rotation is fitted on ``inliers`` (all points when None). NaN for
    a point beyond the lens's fold."""
    b1, b2 = _bearings(p1, f, cx, cy, k1), _bearings(p2, f, cx, cy, k1)
    sel = np.ones(len(p1), bool) if inliers is None else np.asarray(inliers, bool).copy()
    sel &= np.isfinite(b1).all(axis=1) & np.isfinite(b2).all(axis=1)
    if sel.sum() < 2:
        return np.full(len(p1), np.nan)
    R = rotation_from_bearings(b1[sel], b2[sel])
    return f * np.linalg.norm(b1 @ R.T - b2, axis=1)


def _truncated_cost(r: np.ndarray, truncate_px: float) -> float:
    """Mean squared residual, each truncated at ``truncate_px`` (a NaN counts as truncated)."""
    return float(np.mean(np.where(np.isfinite(r), np.minimum(r, truncate_px), truncate_px) ** 2))


def estimate_focal(pairs: list[tuple[np.ndarray, np.ndarray]], width: int, cx: float, cy: float,
                   settings: CalibrationSettings | None = None,
                   rng: np.random.Generator | None = None) -> FocalEstimate:
    """Focal (px) and radial distortion k1 of a camera from pixel correspondences of frame pairs
    ``[(p1, p2), ...]`` (M, 2 each, image pixels as the frames show them).

    ``width`` bounds the focal range (``min_hfov_deg`` .. ``max_hfov_deg``); the prior is not used."""
    s = settings or CalibrationSettings()
    rng = rng or np.random.default_rng(0)
    f_lo = 0.5 * width / np.tan(np.deg2rad(s.max_hfov_deg) / 2)
    f_hi = 0.5 * width / np.tan(np.deg2rad(s.min_hfov_deg) / 2)
    log_bounds = (np.log(f_lo), np.log(f_hi))
    k_bounds = (-s.max_abs_k1, s.max_abs_k1) if s.estimate_distortion else (0.0, 0.0)
    usable = [(np.asarray(a, np.float64), np.asarray(b, np.float64)) for a, b in pairs if len(a) >= s.min_points]
    per_pair, per_k1 = [], []
    accepted: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    grid = np.geomspace(f_lo, f_hi, s.coarse_steps)
    for p1, p2 in usable:
        # Inliers of a rotation at the coarse pinhole focal that explains most points (a wrong prior
        # can leave almost none within the threshold; a distorted lens only the central ones).
        inl = max((fit_rotation_ransac(_bearings(p1, f, cx, cy), _bearings(p2, f, cx, cy),
                                       2.0 * s.inlier_px / f, rng)[1] for f in grid), key=np.sum)
        if inl.sum() < s.min_points:
            continue
        logf = _fit_focal(p1[inl], p2[inl], cx, cy, log_bounds, s)
        k1 = 0.0
        pinhole_r = rotation_residual_px(p1, p2, float(np.exp(logf)), cx, cy, inl)
        if s.estimate_distortion and np.mean(pinhole_r < s.lens_gate_px) >= s.min_inlier_ratio:
            # a rotation that a lens may bend by a few px: fit the lens, take the points it fits, again
            logf, k1 = _fit_focal_k1(p1, p2, inl, cx, cy, (logf, 0.0), log_bounds, k_bounds, s)
            inl = rotation_residual_px(p1, p2, float(np.exp(logf)), cx, cy, inl, k1) < 2.0 * s.inlier_px
            if inl.sum() < s.min_points:
                continue
            logf, k1 = _fit_focal_k1(p1, p2, inl, cx, cy, (logf, k1), log_bounds, k_bounds, s)
        f = float(np.exp(logf))
        r = rotation_residual_px(p1, p2, f, cx, cy, inl, k1)
        if np.mean(r < s.inlier_px) < s.min_inlier_ratio:
            continue  # no focal (and lens) makes this pair a rotation: translation parallax

        def cost(step: float, p1=p1, p2=p2, inl=inl, k1=k1, logf=logf) -> float:
            """The cost at focal f e^step with the lens's bending in pixels unchanged (k1 acts on
            normalised coordinates: its pixel displacement k1 rho^3 / f^2 is held by k1 e^(2 step)),
            so only the focal's perspective effect is measured; with k1 = 0 the plain focal change."""
            return _truncated_cost(rotation_residual_px(p1[inl], p2[inl], float(np.exp(logf + step)), cx, cy,
                                                        k1=k1 * np.exp(2 * step)), s.truncate_px)

        fun = cost(0.0)
        gain = min(cost(np.log(1.1)), cost(-np.log(1.1))) - fun
        if gain < s.min_gain_px2:
            continue  # too little pan/tilt for the focal to matter
        per_pair.append(f)
        per_k1.append(k1)
        accepted.append((p1, p2, r < s.inlier_px))
    if len(per_pair) < s.min_pairs:
        reason = ("no frame pairs with enough tracked points" if not usable else
                  "focal not observable: fewer than {} rotation-dominant pairs with enough pan/tilt "
                  "({} of {})".format(s.min_pairs, len(per_pair), len(usable)))
        return FocalEstimate(None, None, len(per_pair), len(pairs), reason)

    def total(logf: float, k1: float = 0.0) -> float:
        f = float(np.exp(logf))
        return float(sum(_truncated_cost(rotation_residual_px(a[m], b[m], f, cx, cy, k1=k1), s.truncate_px)
                         for a, b, m in accepted))

    centre = float(np.log(np.median(per_pair)))
    window = (centre - np.log(1.5), centre + np.log(1.5))
    logs = np.log(per_pair)
    mad = 1.4826 * float(np.median(np.abs(logs - np.median(logs))))
    sigma = max(mad, 1e-4) / np.sqrt(len(per_pair))
    k1 = k1_sigma = None
    distortion_reason = "distortion not estimated"
    if s.estimate_distortion:
        k_mad = 1.4826 * float(np.median(np.abs(np.asarray(per_k1) - np.median(per_k1))))
        k1_sigma = max(k_mad, 1e-3) / np.sqrt(len(per_k1))
        k_start = float(np.median(per_k1))
        joint = minimize(lambda x: total(x[0], x[1]), [centre, k_start], method="Nelder-Mead",
                         bounds=[window, k_bounds],
                         options={"xatol": 1e-5, "fatol": 1e-7, "initial_simplex": _simplex(centre, k_start)})
        k_fit = float(joint.x[1])
        if abs(k_fit) >= s.k1_significance * k1_sigma:
            f = float(np.exp(joint.x[0]))
            return FocalEstimate(f, float(sigma), len(per_pair), len(pairs), None, k_fit, float(k1_sigma))
        distortion_reason = (f"distortion not significant: k1 = {k_fit:.4f} +- {k1_sigma:.4f} "
                             f"(< {s.k1_significance:g} sigma), pinhole kept")
    best = minimize_scalar(total, bounds=window, method="bounded", options={"xatol": 1e-5})
    f = float(np.exp(best.x))
    return FocalEstimate(f, float(sigma), len(per_pair), len(pairs), None, k1, k1_sigma, distortion_reason)


def _simplex(logf: float, k1: float) -> np.ndarray:
    return np.array([[logf, k1], [logf + 0.05, k1], [logf, k1 + 0.05]])


def _fit_focal(a: np.ndarray, b: np.ndarray, cx: float, cy: float, log_bounds: tuple[float, float],
               s: CalibrationSettings) -> float:
    """log f minimising the truncated pinhole rotation residual of correspondences a -> b (bounded 1-D)."""
    best = minimize_scalar(
        lambda lf: _truncated_cost(rotation_residual_px(a, b, float(np.exp(lf)), cx, cy), s.truncate_px),
        bounds=log_bounds, method="bounded", options={"xatol": 1e-4})
    return float(best.x)


def _fit_focal_k1(p1: np.ndarray, p2: np.ndarray, inl: np.ndarray, cx: float, cy: float,
                  start: tuple[float, float], log_bounds: tuple[float, float], k_bounds: tuple[float, float],
                  s: CalibrationSettings) -> tuple[float, float]:
    """(log f, k1) minimising one pair's truncated rotation residual (Nelder-Mead from ``start``) over at
    most ``max_fit_points`` of its inliers, spread evenly over the track list (the joint fit over all
    pairs then uses every inlier)."""
    a, b = p1[inl], p2[inl]
    if len(a) > s.max_fit_points:
        keep = np.linspace(0, len(a) - 1, s.max_fit_points).astype(int)
        a, b = a[keep], b[keep]

    def cost(x: np.ndarray) -> float:
        return _truncated_cost(rotation_residual_px(a, b, float(np.exp(x[0])), cx, cy, k1=x[1]), s.truncate_px)

    best = minimize(
        cost, list(start), method="Nelder-Mead", bounds=[log_bounds, k_bounds],
        options={"xatol": 1e-4, "fatol": 1e-7, "initial_simplex": _simplex(*start)})
    return float(best.x[0]), float(best.x[1])
