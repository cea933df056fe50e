"""Geometry on unit bearing vectors (camera frame, OpenCV axes): rays from pixels, rotation between
two bundles of rays, ray triangulation. Angles in radians, pixels on the grid of the given K."""

from __future__ import annotations

import numpy as np


def rotation_from_bearings(b1: np.ndarray, b2: np.ndarray) -> np.ndarray:
    """R minimising sum |b2 - R b1|^2 over unit bearings (M, 3) (Kabsch); batched over leading axes."""
    M = np.einsum("...ni,...nj->...ij", b2, b1)
    U, _, Vt = np.linalg.svd(M)
    d = np.sign(np.linalg.det(U @ Vt))
    D = np.zeros(M.shape)
    D[..., 0, 0] = 1.0
    D[..., 1, 1] = 1.0
    D[..., 2, 2] = d
    return U @ D @ Vt


def fit_rotation_ransac(
    b1: np.ndarray, b2: np.ndarray, threshold_rad: float, rng: np.random.Generator, iterations: int = 48
) -> tuple[np.ndarray, np.ndarray]:
    """Rotation R (b2 = R b1) by 2-point RANSAC and a least-squares refit; returns (R, inlier mask).

    A pair is an inlier when the angle between b2 and R b1 is below ``threshold_rad``."""
    n = len(b1)
    cos_thr = np.cos(threshold_rad)
    i = rng.integers(0, n, size=iterations)
    j = (i + rng.integers(1, n, size=iterations)) % n  # a different second point
    idx = np.stack([i, j], axis=1)
    Rs = rotation_from_bearings(b1[idx], b2[idx])  # (I, 3, 3)
    cos = np.einsum("kin,ni->kn", Rs @ b1.T, b2)  # (I, n) cosines between R b1 and b2
    counts = (cos > cos_thr).sum(axis=1)
    best = int(np.argmax(counts))
    R, inliers = Rs[best], cos[best] > cos_thr
    for _ in range(2):
        if inliers.sum() < 2:
            break
        R = rotation_from_bearings(b1[inliers], b2[inliers])
        inliers = np.einsum("ni,ni->n", b1 @ R.T, b2) > cos_thr
    return R, inliers


def bearings(pixels: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Unit rays (M, 3) in the camera frame of pixels (M, 2)."""
    p = np.asarray(pixels, dtype=np.float64)
    x = np.stack([(p[:, 0] - K[0, 2]) / K[0, 0], (p[:, 1] - K[1, 2]) / K[1, 1], np.ones(len(p))], axis=1)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def triangulate_midpoint(
    c1: np.ndarray, d1: np.ndarray, c2: np.ndarray, d2: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Midpoints (M, 3) of the closest points of rays (c, d unit); also the ray parameters s1, s2
    (depth along each ray) and the angle between the rays (rad)."""
    w = c1 - c2
    a = np.einsum("ij,ij->i", d1, d1)
    b = np.einsum("ij,ij->i", d1, d2)
    c = np.einsum("ij,ij->i", d2, d2)
    d = np.einsum("ij,ij->i", d1, w)
    e = np.einsum("ij,ij->i", d2, w)
    den = a * c - b * b
    with np.errstate(divide="ignore", invalid="ignore"):
        s1 = (b * e - c * d) / den
        s2 = (a * e - b * d) / den
    X = 0.5 * ((c1 + s1[:, None] * d1) + (c2 + s2[:, None] * d2))
    angle = np.arccos(np.clip(b / np.sqrt(a * c), -1.0, 1.0))
    return X, s1, s2, angle
