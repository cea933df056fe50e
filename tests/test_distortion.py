"""Lens distortion (dexhands_data/distortion.py): the model against OpenCV, round trips at the image
corners, the fold of a too-strong barrel lens, and how distortion follows the intrinsics (resize,
display rotation)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from dexhands_data.distortion import (
    Distortion, check_covers_frame, distort_pixels, distortion_from_mapping, undistort_pixels,
)
from dexhands_data.geometry import Intrinsics
from dexhands_data.video_io import DisplayTransform

K = np.array([[500.0, 0.0, 319.5], [0.0, 480.0, 239.5], [0.0, 0.0, 1.0]])
CORNERS = np.array([[-0.5, -0.5], [639.5, -0.5], [-0.5, 479.5], [639.5, 479.5], [0.0, 239.5], [319.5, 0.0]])
LENSES = [Distortion(-0.3, 0.1), Distortion(0.2, -0.05), Distortion(-0.25, 0.08, 1e-3, -2e-3), Distortion(-0.1)]


def test_known_numbers_of_the_radial_model():
    # x = 0.5, y = 0: r^2 = 0.25, g = 1 - 0.2 * 0.25 = 0.95
    np.testing.assert_allclose(Distortion(-0.2).distort_normalised([0.5, 0.0]), [0.475, 0.0], atol=1e-15)
    # x = y = 0.3: r^2 = 0.18, g = 1 + 0.1 * 0.18 + 0.01 * 0.0324; tangential p1 = 0.01:
    # dx = 2 p1 x y = 0.0018, dy = p1 (r^2 + 2 y^2) = 0.0036
    g = 1 + 0.1 * 0.18 + 0.01 * 0.18**2
    np.testing.assert_allclose(Distortion(0.1, 0.01, 0.01).distort_normalised([0.3, 0.3]),
                               [0.3 * g + 0.0018, 0.3 * g + 0.0036], atol=1e-15)
    # the principal point never moves
    np.testing.assert_allclose(distort_pixels([[319.5, 239.5]], K, LENSES[0]), [[319.5, 239.5]], atol=1e-12)


@pytest.mark.parametrize("lens", LENSES, ids=lambda d: str(d.to_list()))
def test_round_trip_at_the_image_corners_and_agreement_with_opencv(lens):
    ideal = undistort_pixels(CORNERS, K, lens)
    assert np.isfinite(ideal).all()
    np.testing.assert_allclose(distort_pixels(ideal, K, lens), CORNERS, atol=1e-9)  # image -> ideal -> image
    rng = np.random.default_rng(3)
    grid = np.column_stack([rng.uniform(0, 639, 500), rng.uniform(0, 479, 500)])
    np.testing.assert_allclose(undistort_pixels(distort_pixels(grid, K, lens), K, lens), grid, atol=1e-9)
    # OpenCV: projectPoints distorts, undistortPointsIter inverts
    rays = np.column_stack([(ideal - K[:2, 2]) / [K[0, 0], K[1, 1]], np.ones(len(ideal))])
    cv_px, _ = cv2.projectPoints(rays, np.zeros(3), np.zeros(3), K, np.array(lens.to_list()))
    np.testing.assert_allclose(cv_px.reshape(-1, 2), CORNERS, atol=1e-6)
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 200, 1e-15)
    cv_ideal = cv2.undistortPointsIter(CORNERS.reshape(-1, 1, 2), K, np.array(lens.to_list()), None, K, criteria)
    np.testing.assert_allclose(cv_ideal.reshape(-1, 2), ideal, atol=1e-6)
    # barrel lenses show more than the pinhole frame at the corners, pincushion less
    outward = np.linalg.norm(ideal[:4] - K[:2, 2], axis=1) > np.linalg.norm(CORNERS[:4] - K[:2, 2], axis=1)
    assert outward.all() == (lens.k1 < 0)


def test_no_distortion_is_the_identity_and_nan_passes_through():
    pts = np.array([[10.0, 20.0], [np.nan, np.nan]])
    for lens in (None, Distortion(0.0)):
        np.testing.assert_array_equal(undistort_pixels(pts, K, lens), pts)
    out = undistort_pixels(pts, K, LENSES[0])
    assert np.isfinite(out[0]).all() and np.isnan(out[1]).all()


def test_a_lens_that_folds_inside_the_frame_is_refused():
    strong = Distortion(-0.8)  # r_d = r - 0.8 r^3 peaks at r = 0.645 (r_d = 0.430)
    assert strong.fold_radius() == pytest.approx(np.sqrt(1 / 2.4))
    corner = undistort_pixels(CORNERS[:1], K, strong)  # corner at r_d ~ 0.95: beyond the peak
    assert np.isnan(corner).all()
    with pytest.raises(ValueError, match="folds the image"):
        check_covers_frame(strong, K, 640, 480)
    with pytest.raises(ValueError, match="folds the image"):
        Intrinsics.from_K(K, 640, 480, "sidecar", strong)
    check_covers_frame(LENSES[0], K, 640, 480)  # a real barrel lens is fine
    assert Distortion(0.1).fold_radius() == np.inf


def test_bad_coefficients_are_refused():
    for bad in (float("nan"), float("inf"), "0.1", True, None):
        with pytest.raises(ValueError, match="k1"):
            Distortion(bad)
    with pytest.raises(ValueError, match="needs k1"):
        distortion_from_mapping({"k2": 0.1})
    assert distortion_from_mapping({"fx": 1.0}) is None
    assert distortion_from_mapping({"k1": -0.1, "p2": 0.001}).to_list() == [-0.1, 0.0, 0.0, 0.001]
    with pytest.raises(ValueError, match="values"):
        Distortion.from_list([0.1, 0.2, 0.3])


def test_distortion_follows_a_resize_of_the_pixel_grid():
    intr = Intrinsics.from_K(K, 640, 480, "sidecar", LENSES[2])
    small = intr.scaled(320, 240)
    assert small.distortion == intr.distortion  # normalised coordinates do not change
    ideal = np.array([[30.0, 40.0], [600.0, 450.0]])
    # the same ray seen on both grids (pixel-centre convention u' = (u + 0.5) s - 0.5)
    np.testing.assert_allclose(small.image_pixels((ideal + 0.5) * 0.5 - 0.5),
                               (intr.image_pixels(ideal) + 0.5) * 0.5 - 0.5, atol=1e-9)


@pytest.mark.parametrize("transform", [DisplayTransform(True, False, True), DisplayTransform(False, True, True),
                                       DisplayTransform(True, True, False), DisplayTransform(False, True, False)])
def test_distortion_follows_a_display_rotation(transform):
    """A point seen through the lens on the coded grid, then rotated for display, is where the displayed
    intrinsics (tangential terms swapped / negated) put it."""
    coded = Intrinsics.from_K(K, 640, 480, "sidecar", LENSES[2])
    shown = transform.apply_to_intrinsics(coded)
    rng = np.random.default_rng(5)
    ideal = np.column_stack([rng.uniform(0, 639, 50), rng.uniform(0, 479, 50)])
    expected = transform.apply_to_pixels(coded.image_pixels(ideal), 640, 480)
    got = shown.image_pixels(transform.apply_to_pixels(ideal, 640, 480))
    np.testing.assert_allclose(got, expected, atol=1e-9)
    assert shown.distortion.k1 == coded.distortion.k1 and shown.distortion.k2 == coded.distortion.k2


def test_intrinsics_project_applies_the_lens():
    intr = Intrinsics.from_K(K, 640, 480, "sidecar", Distortion(-0.2))
    point = np.array([[1.0, 0.0, 2.0]])  # x = 0.5: distorted to 0.475
    np.testing.assert_allclose(intr.project(point), [[500.0 * 0.475 + 319.5, 239.5]], atol=1e-12)
    assert not Intrinsics.from_K(K, 640, 480).distorted and intr.distorted
