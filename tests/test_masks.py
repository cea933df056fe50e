"""Hand masks for camera-motion features: geometry, and coverage of real hands (DexYCB segmentation)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from dexhands_data.camera.masks import (
    MaskConfig, feature_mask, hand_polygons, points_allowed, scale_keypoints,
)
from dexhands_data.geometry import Intrinsics


def square_hand(x0: float, y0: float, size: float) -> np.ndarray:
    """21 keypoints spread over a size x size square (a stand-in hand), (21, 2) px."""
    grid = np.stack(np.meshgrid(np.linspace(0, 1, 7), np.linspace(0, 1, 3)), -1).reshape(21, 2)
    return grid * size + [x0, y0]


def test_border_and_hulls_are_excluded_with_the_configured_margins():
    cfg = MaskConfig(relative_margin=0.1, margin_px=5.0, border_px=8, forearm_extension=0.0)
    kp = np.full((2, 21, 2), np.nan)
    kp[0] = square_hand(100, 60, 40)
    m = feature_mask(240, 320, kp, np.array([True, False]), cfg)
    assert m.dtype == np.uint8 and m.shape == (240, 320)
    assert (m[:8] == 0).all() and (m[-8:] == 0).all() and (m[:, :8] == 0).all() and (m[:, -8:] == 0).all()
    assert (m[8:-8, 8:-8][:40, 200:] == 255).all()  # far from the hand: usable
    # Hull corners move by 0.1 * diag (40 sqrt 2) + 5 px away from the centre, i.e. diagonally, so
    # the square's edges move out by that distance / sqrt(2).
    edge = (0.1 * 40 * np.sqrt(2) + 5.0) / np.sqrt(2)
    assert (m[60:101, 100:141] == 0).all()
    assert m[80, int(100 - edge + 1.5)] == 0 and m[80, int(100 - edge - 1.5)] == 255
    assert m[int(60 - edge + 1.5), 120] == 0 and m[int(60 - edge - 1.5), 120] == 255
    assert m[int(100 + edge - 1.5), 120] == 0 and m[int(100 + edge + 1.5), 120] == 255
    # Invalid hand and NaN points are ignored; no hands leaves only the border.
    no_hands = feature_mask(240, 320, config=cfg)
    assert (feature_mask(240, 320, kp, np.array([False, False]), cfg) == no_hands).all()
    assert len(hand_polygons(kp, np.array([True, True]), cfg)) == 1


def test_forearm_band_extends_from_the_wrist_away_from_the_fingers():
    # An upright hand: wrist at (160, 200), middle knuckle 40 px above it, fingers up to y = 80.
    kp = np.full((2, 21, 2), np.nan)
    kp[1, 0] = [160, 200]
    for finger, x in zip(range(5), (130, 145, 160, 175, 190)):
        for j in range(4):
            kp[1, 1 + 4 * finger + j] = [x, 160 - 25 * j]
    cfg = MaskConfig(relative_margin=0.0, margin_px=0.0, border_px=0, forearm_extension=2.0)
    m = feature_mask(320, 320, kp, np.array([False, True]), cfg)
    assert m[270, 160] == 0 and m[275, 145] == 0  # forearm: up to 2 x 40 px below the wrist
    assert m[290, 160] == 255  # beyond it
    assert m[40, 160] == 255  # nothing is added beyond the fingertips
    no_arm = feature_mask(320, 320, kp, np.array([False, True]), MaskConfig(0.0, 0.0, 0, 0.0))
    assert no_arm[270, 160] == 255 and (no_arm == 0).sum() < (m == 0).sum()


def test_points_allowed_reads_the_mask_and_rejects_outside_and_nan():
    m = feature_mask(100, 100, config=MaskConfig(border_px=10))
    pts = np.array([[50, 50], [5, 50], [50, 95], [-3, 10], [150, 50], [np.nan, 20], [10, 10]])
    np.testing.assert_array_equal(points_allowed(m, pts), [True, False, False, False, False, False, True])


def test_keypoint_scaling_matches_the_intrinsics_convention():
    intr = Intrinsics(500.0, 500.0, 319.5, 239.5, 640, 480)
    small = intr.scaled(480, 360)
    centre = scale_keypoints(np.array([[intr.cx, intr.cy]]), 0.75)
    np.testing.assert_allclose(centre, [[small.cx, small.cy]])


@pytest.mark.noncommercial
def test_mask_covers_real_hands_and_removes_their_features(shared_data):
    """DexYCB: hulls from the ground-truth 2D joints against the ground-truth hand segmentation."""
    labels = sorted((shared_data / "hand3d_gt" / "dexycb_nc").glob("*/*/labels_*.npz"))
    assert len(labels) == 48
    coverage, on_hand_masked, on_hand_unmasked, area_ratio = [], 0, 0, []
    for path in labels:
        d = np.load(path)
        seg = d["seg"] == 255
        kp = np.full((2, 21, 2), np.nan)
        kp[1] = d["joint_2d"][0]
        mask = feature_mask(480, 640, kp, np.array([False, True]))
        coverage.append(float((mask[seg] == 0).mean()))
        hands_only = feature_mask(480, 640, kp, np.array([False, True]), MaskConfig(border_px=0))
        area_ratio.append(float((hands_only == 0).sum() / seg.sum()))
        image_path = str(path).replace("labels_", "color_").replace(".npz", ".jpg")
        grey = cv2.imread(image_path, cv2.IMREAD_GRAYSCALE)
        for m, acc in ((mask, "masked"), (None, "unmasked")):
            c = cv2.goodFeaturesToTrack(grey, 400, 0.005, 10, mask=m).reshape(-1, 2).astype(int)
            n = int(seg[c[:, 1], c[:, 0]].sum())
            if acc == "masked":
                on_hand_masked += n
            else:
                on_hand_unmasked += n
    # Measured: 99.7 % mean, 96.1 % min coverage; 305 -> 3 corners on hands.
    assert np.mean(coverage) > 0.98 and np.min(coverage) > 0.93, (np.mean(coverage), np.min(coverage))
    assert on_hand_unmasked > 200  # corners love hands ...
    assert on_hand_masked <= 0.05 * on_hand_unmasked  # ... the mask removes at least 95 % of them
    assert np.median(area_ratio) < 4.0  # without blanking half the image
