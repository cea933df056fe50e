"""Lens distortion: OpenCV's radial-tangential model (k1, k2, p1, p2) on normalised coordinates.

A camera-frame point (X, Y, Z) has normalised coordinates x = X / Z, y = Y / Z. The lens moves them to

    r^2 = x^2 + y^2,   g = 1 + k1 r^2 + k2 r^4
    x_d = x g + 2 p1 x y + p2 (r^2 + 2 x^2)
    y_d = y g + p1 (r^2 + 2 y^2) + 2 p2 x y

and the pixel seen in the frame is u = fx x_d + cx, v = fy y_d + cy (``cv2.projectPoints`` with
``distCoeffs = [k1, k2, p1, p2]``). **Ideal pixels** are the pixels a pinhole camera with the same K
would see: u = fx x + cx. Geometry (lifting, PnP, two-view, triangulation) runs on ideal pixels; stored
``keypoints_2d`` are image pixels (distorted, where the frame shows them).

The inverse (undistortion) has no closed form: Newton's method on the 2x2 Jacobian, vectorised over
points, converges to 1e-12 in a few iterations inside the region where the model is one-to-one. A
point that does not converge (outside that region) becomes NaN.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

#: Sidecar / intrinsics-file keys, in the order of the stored ``distortion`` column.
DISTORTION_KEYS = ("k1", "k2", "p1", "p2")
_NEWTON_ITERATIONS = 20
_NEWTON_TOLERANCE = 1e-12


@dataclass(frozen=True)
class Distortion:
    """Radial (k1, k2) and tangential (p1, p2) coefficients of OpenCV's model, dimensionless
    (they act on normalised coordinates, so they do not change when the pixel grid is resized)."""

    k1: float
    k2: float = 0.0
    p1: float = 0.0
    p2: float = 0.0

    def __post_init__(self) -> None:
        for name in DISTORTION_KEYS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
                raise ValueError(f"distortion {name} must be a number, got {value!r}")
            if not math.isfinite(float(value)):
                raise ValueError(f"distortion {name} must be finite, got {value!r}")
            object.__setattr__(self, name, float(value))

    def to_list(self) -> list[float]:
        """[k1, k2, p1, p2] (the stored column, and OpenCV's ``distCoeffs``)."""
        return [self.k1, self.k2, self.p1, self.p2]

    @classmethod
    def from_list(cls, values) -> "Distortion":
        """From [k1, k2] or [k1, k2, p1, p2]."""
        values = list(values)
        if len(values) not in (2, 4):
            raise ValueError(f"distortion must be [k1, k2] or [k1, k2, p1, p2], got {len(values)} values")
        return cls(*values)

    @property
    def is_zero(self) -> bool:
        return not any(self.to_list())

    def distort_normalised(self, xy: np.ndarray) -> np.ndarray:
        """Distorted normalised coordinates (..., 2) of ideal ones (..., 2); NaN stays NaN."""
        xy = np.asarray(xy, dtype=np.float64)
        x, y = xy[..., 0], xy[..., 1]
        r2 = x * x + y * y
        g = 1.0 + r2 * (self.k1 + self.k2 * r2)
        xd = x * g + 2.0 * self.p1 * x * y + self.p2 * (r2 + 2.0 * x * x)
        yd = y * g + self.p1 * (r2 + 2.0 * y * y) + 2.0 * self.p2 * x * y
        return np.stack([xd, yd], axis=-1)

    def undistort_normalised(self, xy_d: np.ndarray) -> np.ndarray:
        """Ideal normalised coordinates (..., 2) of distorted ones, by Newton's method; NaN where it
        does not converge (beyond the radius where the lens folds the image, see :meth:`fold_radius`).
        A radial-only lens needs a scalar Newton on the radius; with p1, p2 the 2x2 one runs."""
        xy_d = np.asarray(xy_d, dtype=np.float64)
        target = xy_d.reshape(-1, 2)
        with np.errstate(divide="ignore", invalid="ignore"):
            radial = not (self.p1 or self.p2)
            out = self._undistort_radial(target) if radial else self._undistort_newton(target)
            miss = ~(np.abs(self.distort_normalised(out) - target).max(axis=1) < 1e-9)
            # the right root: the radius must not pass the fold (where d r_d / d r = 0)
            miss |= ~(np.hypot(out[:, 0], out[:, 1]) <= self._fold)
        out[miss] = np.nan
        return out.reshape(xy_d.shape)

    def _undistort_radial(self, target: np.ndarray) -> np.ndarray:
        """Solve r (1 + k1 r^2 + k2 r^4) = r_d for r per point, then scale the point by r / r_d."""
        k1, k2 = self.k1, self.k2
        rd = np.hypot(target[:, 0], target[:, 1])
        r = rd.copy()
        for _ in range(_NEWTON_ITERATIONS):
            r2 = r * r
            step = (r * (1.0 + r2 * (k1 + k2 * r2)) - rd) / (1.0 + r2 * (3.0 * k1 + 5.0 * k2 * r2))
            r = r - step
            if not np.any(np.abs(step) > _NEWTON_TOLERANCE):
                break
        scale = np.where(rd > 0, r / np.where(rd > 0, rd, 1.0), 1.0)
        return target * scale[:, None]

    def _undistort_newton(self, target: np.ndarray) -> np.ndarray:
        """2x2 Newton on (x_d, y_d) for the full radial-tangential model."""
        k1, k2, p1, p2 = self.to_list()
        x, y = target[:, 0].copy(), target[:, 1].copy()
        for _ in range(_NEWTON_ITERATIONS):
            r2 = x * x + y * y
            g = 1.0 + r2 * (k1 + k2 * r2)
            dg = 2.0 * k1 + 4.0 * k2 * r2  # the derivative of g by x is x dg, by y is y dg
            fx = x * g + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x) - target[:, 0]
            fy = y * g + p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y - target[:, 1]
            a = g + x * x * dg + 2.0 * p1 * y + 6.0 * p2 * x
            bc = x * y * dg + 2.0 * p1 * x + 2.0 * p2 * y  # d fx / dy = d fy / dx
            d = g + y * y * dg + 6.0 * p1 * y + 2.0 * p2 * x
            det = a * d - bc * bc
            dx = (d * fx - bc * fy) / det
            dy = (a * fy - bc * fx) / det
            x, y = x - dx, y - dy
            if not np.any(np.abs(dx) + np.abs(dy) > _NEWTON_TOLERANCE):
                break
        return np.stack([x, y], axis=-1)

    @functools.cached_property
    def _fold(self) -> float:
        return self.fold_radius()

    def fold_radius(self) -> float:
        """Ideal radius (normalised) where the radial map r -> r (1 + k1 r^2 + k2 r^4) stops
        increasing (inf when it never does); the model is one-to-one only inside it."""
        # d/dr [r + k1 r^3 + k2 r^5] = 1 + 3 k1 s + 5 k2 s^2, s = r^2
        roots = np.roots([5.0 * self.k2, 3.0 * self.k1, 1.0]) if self.k2 else (
            np.array([-1.0 / (3.0 * self.k1)]) if self.k1 else np.array([]))
        s = [float(r.real) for r in np.atleast_1d(roots) if abs(r.imag) < 1e-12 and r.real > 0]
        return math.sqrt(min(s)) if s else math.inf


def _normalised(uv: np.ndarray, K: np.ndarray) -> np.ndarray:
    uv = np.asarray(uv, dtype=np.float64)
    y = (uv[..., 1] - K[1, 2]) / K[1, 1]
    x = (uv[..., 0] - K[0, 2] - K[0, 1] * y) / K[0, 0]
    return np.stack([x, y], axis=-1)


def _pixels(xy: np.ndarray, K: np.ndarray) -> np.ndarray:
    return np.stack([K[0, 0] * xy[..., 0] + K[0, 1] * xy[..., 1] + K[0, 2], K[1, 1] * xy[..., 1] + K[1, 2]],
                    axis=-1)


def distort_pixels(uv_ideal: np.ndarray, K: np.ndarray, distortion: Distortion | None) -> np.ndarray:
    """Image pixels (..., 2) of ideal pixels (..., 2) on the grid of K (3x3); a copy when no distortion."""
    if distortion is None or distortion.is_zero:
        return np.array(uv_ideal, dtype=np.float64)
    K = np.asarray(K, dtype=np.float64)
    return _pixels(distortion.distort_normalised(_normalised(uv_ideal, K)), K)


def undistort_pixels(uv_image: np.ndarray, K: np.ndarray, distortion: Distortion | None) -> np.ndarray:
    """Ideal pixels (..., 2) of image pixels (..., 2) on the grid of K; NaN beyond the lens's fold."""
    if distortion is None or distortion.is_zero:
        return np.array(uv_image, dtype=np.float64)
    K = np.asarray(K, dtype=np.float64)
    return _pixels(distortion.undistort_normalised(_normalised(uv_image, K)), K)


def check_covers_frame(distortion: Distortion, K: np.ndarray, width: int, height: int) -> None:
    """Raise ValueError unless every pixel of a ``width`` x ``height`` frame undistorts (the lens
    model is one-to-one over the whole frame: the fold lies beyond the corners)."""
    corners = np.array([[-0.5, -0.5], [width - 0.5, -0.5], [-0.5, height - 0.5], [width - 0.5, height - 0.5]])
    edges = np.array([[(width - 1) / 2, -0.5], [(width - 1) / 2, height - 0.5],
                      [-0.5, (height - 1) / 2], [width - 0.5, (height - 1) / 2]])
    ideal = undistort_pixels(np.concatenate([corners, edges]), K, distortion)
    if not np.all(np.isfinite(ideal)):
        raise ValueError(f"distortion {distortion.to_list()} folds the image before the frame's corners "
                         f"({width}x{height}): not a valid lens for this frame")


def distortion_from_mapping(data: Mapping) -> Distortion | None:
    """The distortion given by ``k1``, ``k2`` (and optional ``p1``, ``p2``) keys of a sidecar or
    intrinsics-file entry; None when none of the keys is present. ValueError for a bad value."""
    present = [k for k in DISTORTION_KEYS if k in data]
    if not present:
        return None
    if "k1" not in data:
        raise ValueError(f"distortion needs k1 (got {', '.join(present)})")
    return Distortion(**{k: data[k] for k in present})
