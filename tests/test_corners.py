"""Corner detection by predicted tracking precision (camera/corners.py), with numbers."""

from __future__ import annotations

import cv2
import numpy as np

from dexhands_data.camera.corners import QUANTISATION_SIGMA, detect_corners, image_noise_sigma, min_eigenvalue_floor


def checker(h, w, cell, amplitude, rng=None):
    yy, xx = np.mgrid[0:h, 0:w]
    return amplitude * (((yy // cell) + (xx // cell)) % 2)


def test_noise_estimate_of_known_gaussian_noise():
    rng = np.random.default_rng(0)
    smooth = np.tile(np.linspace(40, 200, 320), (240, 1))
    for sigma in (1.0, 3.0, 6.0):
        img = np.clip(smooth + rng.normal(0, sigma, smooth.shape), 0, 255).astype(np.uint8)
        assert abs(image_noise_sigma(img) / sigma - 1) < 0.15, sigma
    assert image_noise_sigma(np.full((50, 50), 128, np.uint8)) == QUANTISATION_SIGMA


def test_eigenvalue_floor_matches_opencvs_scaling():
    # a ramp of g grey levels per pixel: cornerEigenValsAndVecs' larger eigenvalue over a 7x7 block
    g = 3.0
    ramp = np.tile((np.arange(64) * g)[None, :], (64, 1)).astype(np.uint8)
    lam = cv2.cornerEigenValsAndVecs(ramp, 7, 3)[32, 32, 0]
    # sum over the block of g^2 = 49 g^2 grey levels^2: the floor for sigma / std = sqrt(49) g
    np.testing.assert_allclose(min_eigenvalue_floor(7 * g, 1.0, 7), lam, rtol=1e-4)


def test_weak_texture_beside_a_strong_one_is_kept_and_flat_noise_is_not():
    rng = np.random.default_rng(1)
    h, w = 240, 480
    img = np.full((h, w), 100.0)
    img[:, :160] += checker(h, 160, 12, 150)  # a printed label: high contrast
    img[:, 160:320] += checker(h, 160, 12, 8)  # a table's faint texture: 8 grey levels
    img = np.clip(img + rng.normal(0, 1.0, img.shape), 0, 255).astype(np.uint8)  # right third: flat + noise
    mask = np.full((h, w), 255, np.uint8)
    pts = detect_corners(img, mask, 2000, 8.0, max_std_px=0.1)
    x = pts[:, 0]
    assert (x < 150).sum() > 50 and ((x > 170) & (x < 310)).sum() > 50
    assert (x > 330).sum() == 0
    # OpenCV's relative criterion (0.005 of the best corner) loses the faint texture entirely
    rel = cv2.goodFeaturesToTrack(img, 2000, 0.005, 8.0, mask=mask, blockSize=7).reshape(-1, 2)
    assert ((rel[:, 0] > 170) & (rel[:, 0] < 310)).sum() == 0
    # and nothing where the mask forbids
    mask[:, :240] = 0
    assert (detect_corners(img, mask, 2000, 8.0, 0.1)[:, 0] >= 240).all()
