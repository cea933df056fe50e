"""Focal length from the video itself: the homographies of a rotating camera determine K.

For a camera that only rotates, the bearings of a feature in two frames obey ``b2 = R b1`` exactly
when they are computed with the true focal length; with a wrong focal no rotation fits the whole
field of view (the error grows with the distance from the principal point). So over frame pairs
the focal is the one minimising the rotation residual. Pairs where no focal makes a rotation fit
(translation with parallax, a plane seen while moving) are not rotation-dominant and are left out;
where no pair is informative (too little pan/tilt, pure translation, a static camera) the focal
is **not observable** and the caller keeps its prior.

Units: pixels on the grid the correspondences were measured on (the odometry's working grid);
square pixels, principal point fixed (the prior's, normally the image centre).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar

from .bearings import fit_rotation_ransac, rotation_from_bearings


@dataclass(frozen=True)
class FocalEstimate:
    """Result of :func:`estimate_focal`.

    focal_px: the estimate (None when not observable); sigma_rel: its 1-sigma relative uncertainty
    from the spread of the per-pair optima; pairs_used / pairs_total: rotation-dominant and
    informative pairs out of those given; reason: why the focal is not observable (else None)."""

    focal_px: float | None
    sigma_rel: float | None
    pairs_used: int
    pairs_total: int
    reason: str | None

    def as_dict(self) -> dict:
        return {"focal_px": self.focal_px, "sigma_rel": self.sigma_rel, "pairs_used": self.pairs_used,
                "pairs_total": self.pairs_total, "reason": self.reason}


@dataclass(frozen=True)
class CalibrationSettings:
    """inlier_px: a point fits the rotation when its residual is below this; min_inlier_ratio: a
    pair is rotation-dominant when that many of its points fit at the pair's best focal;
    min_gain_px2: a pair is informative when a 10 % focal change raises its mean squared residual
    by at least this; focal range as horizontal fields of view (deg); min_pairs to trust the result."""

    inlier_px: float = 1.0
    truncate_px: float = 2.0
    min_inlier_ratio: float = 0.8
    min_gain_px2: float = 0.05
    min_hfov_deg: float = 20.0
    max_hfov_deg: float = 150.0
    min_pairs: int = 2
    min_points: int = 30
    coarse_steps: int = 16


def _bearings(pixels: np.ndarray, f: float, cx: float, cy: float) -> np.ndarray:
    x = np.stack([(pixels[:, 0] - cx) / f, (pixels[:, 1] - cy) / f, np.ones(len(pixels))], axis=1)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def rotation_residual_px(p1: np.ndarray, p2: np.ndarray, f: float, cx: float, cy: float,
                         inliers: np.ndarray | None = None) -> np.ndarray:
    """Per-point residuals (px, ~ f x angle) of the best rotation between pixels p1 -> p2 (M, 2) at focal f;
    the rotation is fitted on ``inliers`` (all points when None)."""
    b1, b2 = _bearings(p1, f, cx, cy), _bearings(p2, f, cx, cy)
    sel = slice(None) if inliers is None else inliers
    R = rotation_from_bearings(b1[sel], b2[sel])
    return f * np.linalg.norm(b1 @ R.T - b2, axis=1)


def estimate_focal(pairs: list[tuple[np.ndarray, np.ndarray]], width: int, cx: float, cy: float,
                   settings: CalibrationSettings | None = None,
                   rng: np.random.Generator | None = None) -> FocalEstimate:
    """Focal (px) of a camera from pixel correspondences of frame pairs ``[(p1, p2), ...]`` (M, 2 each).

    ``width`` bounds the focal range (``min_hfov_deg`` .. ``max_hfov_deg``); the prior is not used."""
    s = settings or CalibrationSettings()
    rng = rng or np.random.default_rng(0)
    f_lo = 0.5 * width / np.tan(np.deg2rad(s.max_hfov_deg) / 2)
    f_hi = 0.5 * width / np.tan(np.deg2rad(s.min_hfov_deg) / 2)
    usable = [(np.asarray(a, np.float64), np.asarray(b, np.float64)) for a, b in pairs if len(a) >= s.min_points]
    per_pair, weights = [], []
    accepted: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    grid = np.geomspace(f_lo, f_hi, s.coarse_steps)
    for p1, p2 in usable:
        # Inliers of a rotation at the coarse focal that explains most points (a wrong prior can
        # leave almost none within the threshold).
        inl = max((fit_rotation_ransac(_bearings(p1, f, cx, cy), _bearings(p2, f, cx, cy),
                                       2.0 * s.inlier_px / f, rng)[1] for f in grid), key=np.sum)
        if inl.sum() < s.min_points:
            continue

        def cost(logf: float, p1=p1, p2=p2, inl=inl) -> float:
            r = rotation_residual_px(p1[inl], p2[inl], float(np.exp(logf)), cx, cy)
            return float(np.mean(np.minimum(r, s.truncate_px) ** 2))

        best = minimize_scalar(cost, bounds=(np.log(f_lo), np.log(f_hi)), method="bounded",
                               options={"xatol": 1e-4})
        f = float(np.exp(best.x))
        r = rotation_residual_px(p1, p2, f, cx, cy, inl)
        if np.mean(r < s.inlier_px) < s.min_inlier_ratio:
            continue  # no focal makes this pair a rotation: translation parallax
        gain = min(cost(best.x + np.log(1.1)), cost(best.x - np.log(1.1))) - best.fun
        if gain < s.min_gain_px2:
            continue  # too little pan/tilt for the focal to matter
        per_pair.append(f)
        weights.append(gain)
        accepted.append((p1, p2, r < s.inlier_px))
    if len(per_pair) < s.min_pairs:
        reason = ("no frame pairs with enough tracked points" if not usable else
                  "focal not observable: fewer than {} rotation-dominant pairs with enough pan/tilt "
                  "({} of {})".format(s.min_pairs, len(per_pair), len(usable)))
        return FocalEstimate(None, None, len(per_pair), len(pairs), reason)

    def total(logf: float) -> float:
        f = float(np.exp(logf))
        return float(sum(np.mean(np.minimum(rotation_residual_px(a[m], b[m], f, cx, cy), s.truncate_px) ** 2)
                         for a, b, m in accepted))

    centre = float(np.log(np.median(per_pair)))
    best = minimize_scalar(total, bounds=(centre - np.log(1.5), centre + np.log(1.5)), method="bounded",
                           options={"xatol": 1e-5})
    f = float(np.exp(best.x))
    logs = np.log(per_pair)
    mad = 1.4826 * float(np.median(np.abs(logs - np.median(logs))))
    sigma = max(mad, 1e-4) / np.sqrt(len(per_pair))
    return FocalEstimate(f, float(sigma), len(per_pair), len(pairs), None)
