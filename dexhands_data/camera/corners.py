"""Corner detection by the precision a corner can be tracked with, not by its rank in the image.

Shi and Tomasi's criterion ("Good features to track", 1994) accepts a window when the smaller
eigenvalue of its gradient matrix ``G = sum grad I grad I^T`` is large enough for the image noise:
KLT's displacement estimate has a covariance ~ ``sigma_n^2 G^-1``, so its standard deviation along the
worst direction is ``sigma_n / sqrt(lambda_min(G))``. OpenCV's ``goodFeaturesToTrack`` instead keeps
corners above a fraction of the image's *best* corner: one high-contrast object (a printed label)
then suppresses the weaker but perfectly trackable texture of the rest of the scene (a table, a
wall), and on egocentric video what is left are features on the objects the hands move.

Here the threshold is absolute: ``lambda_min >= (sigma_n / max_std_px)^2``, with the image noise
``sigma_n`` (grey levels) estimated per frame by a median form of Immerkaer's Laplacian method
(floored at the quantisation noise 1/sqrt(12)); the strongest corners still come first, spaced ``min_distance``.
Pixels and grey levels refer to the image given (the odometry's working grid).
"""

from __future__ import annotations

import cv2
import numpy as np

QUANTISATION_SIGMA = 1.0 / np.sqrt(12.0)
_IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)


def image_noise_sigma(grey: np.ndarray) -> float:
    """Standard deviation (grey levels) of white noise in a uint8 image: Immerkaer's Laplacian-difference
    operator (its response to noise of std sigma has std 6 sigma), taken as a median so that edges and
    corners, a minority of the pixels, do not count (Immerkaer's mean does count them)."""
    h, w = grey.shape
    if h < 3 or w < 3:
        return QUANTISATION_SIGMA
    r = cv2.filter2D(grey.astype(np.float32), -1, _IMMERKAER)[1:-1, 1:-1]
    sigma = float(np.median(np.abs(r))) / (6.0 * 0.6745)
    return max(sigma, QUANTISATION_SIGMA)


def min_eigenvalue_floor(sigma_grey: float, max_std_px: float, block: int) -> float:
    """The threshold on OpenCV's ``cornerMinEigenVal`` (3x3 Sobel, ``block`` x ``block`` sum) for a
    predicted tracking standard deviation of ``max_std_px``. OpenCV scales the Sobel derivatives by
    1 / (4 block 255) (8 bit), i.e. a gradient g grey levels/px becomes 2 g / (255 block)."""
    g_min = (sigma_grey / max_std_px) ** 2  # grey levels^2, summed over the block
    return g_min * (2.0 / (255.0 * block)) ** 2


def detect_corners(grey: np.ndarray, mask: np.ndarray, max_corners: int, min_distance: float,
                   max_std_px: float, block: int = 7) -> np.ndarray:
    """Corners (M, 2) float32 where the mask allows, strongest first, each trackable to
    ``max_std_px`` (predicted from the image noise), at most ``max_corners``."""
    if max_corners <= 0:
        return np.zeros((0, 2), np.float32)
    eig = cv2.cornerMinEigenVal(grey, block, 3)
    peak = float(eig[mask > 0].max()) if (mask > 0).any() else 0.0
    floor = min_eigenvalue_floor(image_noise_sigma(grey), max_std_px, block)
    if peak <= floor:
        return np.zeros((0, 2), np.float32)
    corners = cv2.goodFeaturesToTrack(grey, max_corners, floor / peak, min_distance, mask=mask, blockSize=block)
    return np.zeros((0, 2), np.float32) if corners is None else corners.reshape(-1, 2).astype(np.float32)
