"""Where camera-motion features may be tracked: everything but the hands, forearms and image border.

Hands move independently of the camera, so features on them corrupt ego-motion. The mask is built
from the frame's 2D hand keypoints (pixels of the grid the mask is made for): per valid hand the
convex hull of its 21 keypoints, pushed outwards by a margin proportional to the hand's size plus a
fixed number of pixels (fingers are wider than their joints and the keypoints are noisy), is
excluded, as is a band for the forearm (from the wrist, away from the middle knuckle, about a hand
long: egocentric arms enter the view from the bottom), and a band along the border (vignetting,
rolling-shutter edges, warped borders). ``255`` marks usable pixels, ``0`` excluded ones (OpenCV's
mask convention).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class MaskConfig:
    """relative_margin: hull growth as a fraction of the hand's 2D bounding-box diagonal;
    margin_px and border_px: pixels of the grid the mask is built on; forearm_extension: length of
    the forearm band beyond the wrist in units of the wrist-to-middle-knuckle distance (0: none)."""

    relative_margin: float = 0.15
    margin_px: float = 6.0
    border_px: int = 8
    forearm_extension: float = 2.0


def scale_keypoints(keypoints_2d: np.ndarray, scale: float) -> np.ndarray:
    """Keypoints (..., 2) in source pixels to a grid resized by ``scale`` (pixel-centre convention)."""
    return (np.asarray(keypoints_2d, dtype=np.float64) + 0.5) * scale - 0.5


def _grow(polygon: np.ndarray, amount: float) -> np.ndarray:
    """Vertices pushed ``amount`` px away from the polygon's vertex centroid."""
    out = polygon - polygon.mean(axis=0)
    norm = np.linalg.norm(out, axis=1, keepdims=True)
    return polygon + np.divide(out, norm, out=np.zeros_like(out), where=norm > 1e-9) * amount


def _forearm(kp: np.ndarray, extension: float) -> np.ndarray | None:
    """Quadrilateral (4, 2) from the wrist away from the middle knuckle, as wide as the palm
    (widening by 20 %), or None when the wrist or knuckles are missing."""
    wrist, index_mcp, middle_mcp, little_mcp = kp[0], kp[5], kp[9], kp[17]
    if extension <= 0 or not np.isfinite([wrist, index_mcp, middle_mcp, little_mcp]).all():
        return None
    axis = wrist - middle_mcp
    length = float(np.linalg.norm(axis))
    if length < 1e-6:
        return None
    axis /= length
    perp = np.array([-axis[1], axis[0]])
    half = 0.6 * max(float(np.linalg.norm(index_mcp - little_mcp)), 0.5 * length)
    far = wrist + axis * extension * length
    return np.array([wrist + perp * half, far + perp * 1.2 * half, far - perp * 1.2 * half,
                     wrist - perp * half])


def hand_polygons(
    keypoints_2d: np.ndarray, hand_valid: np.ndarray, config: MaskConfig = MaskConfig()
) -> list[np.ndarray]:
    """Excluded polygons (K, 2) float64 of the valid hands: each hand's dilated convex hull and, when
    its wrist and knuckles are known, its dilated forearm band. Keypoints (2, 21, 2) px, NaN allowed."""
    polygons = []
    for h in range(keypoints_2d.shape[0]):
        if not bool(hand_valid[h]):
            continue
        kp = keypoints_2d[h]
        pts = kp[np.all(np.isfinite(kp), axis=-1)]
        if len(pts) < 3:
            continue
        hull = cv2.convexHull(pts.astype(np.float32)).reshape(-1, 2).astype(np.float64)
        diag = float(np.linalg.norm(pts.max(axis=0) - pts.min(axis=0)))
        polygons.append(_grow(hull, config.relative_margin * diag + config.margin_px))
        forearm = _forearm(kp, config.forearm_extension)
        if forearm is not None:
            polygons.append(_grow(forearm, config.margin_px))
    return polygons


def feature_mask(
    height: int,
    width: int,
    keypoints_2d: np.ndarray | None = None,
    hand_valid: np.ndarray | None = None,
    config: MaskConfig = MaskConfig(),
) -> np.ndarray:
    """uint8 (height, width) mask: 255 where features may be tracked, 0 on hands and the border.

    ``keypoints_2d`` (2, 21, 2) are pixels of this (height, width) grid; ``hand_valid`` (2,) bool.
    """
    mask = np.zeros((height, width), np.uint8)
    b = int(config.border_px)
    mask[b : height - b, b : width - b] = 255
    if keypoints_2d is not None and hand_valid is not None:
        kp = np.asarray(keypoints_2d, dtype=np.float64)
        for poly in hand_polygons(kp, np.asarray(hand_valid, bool), config):
            # Fixed-point vertices (4 fractional bits) keep sub-pixel hull positions.
            cv2.fillPoly(mask, [np.round(poly * 16).astype(np.int32)], 0, lineType=cv2.LINE_8, shift=4)
    return mask


def points_allowed(mask: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(M,) bool: the points (M, 2) px fall on usable pixels of ``mask`` (outside the grid: False)."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    h, w = mask.shape
    finite = np.isfinite(pts).all(axis=1)
    uv = np.round(np.where(finite[:, None], pts, -1.0)).astype(np.int64)
    inside = finite & (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h)
    ok = np.zeros(len(pts), bool)
    ok[inside] = mask[uv[inside, 1], uv[inside, 0]] > 0
    return ok
