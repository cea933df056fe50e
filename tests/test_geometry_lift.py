"""The translation lift of hand-centred keypoints into the camera (geometry.lift_to_camera)."""

from __future__ import annotations

import numpy as np
import pytest

from dexhands_data.geometry import Intrinsics, lift_to_camera, project

K = Intrinsics(615.0, 612.0, 320.0, 240.0, 640, 480).K
RNG = np.random.default_rng(11)


def hand_like(rng: np.random.Generator) -> np.ndarray:
    """21 points spread like a hand (about 18 cm across), centred on the origin."""
    pts = rng.uniform(-0.09, 0.09, size=(21, 3)) * np.array([1.0, 1.0, 0.3])
    return pts - pts.mean(axis=0)


@pytest.mark.parametrize(
    "t_true", [[0.0, 0.0, 0.5], [0.12, -0.08, 0.45], [-0.3, 0.2, 1.4], [0.02, 0.25, 0.8]]
)
def test_lift_recovers_known_translation_exactly(t_true):
    local = hand_like(RNG)
    t_true = np.asarray(t_true)
    uv = project(local + t_true, K)
    res = lift_to_camera(local, uv, K)
    np.testing.assert_allclose(res.translation, t_true, atol=1e-9)
    np.testing.assert_allclose(res.points_cam, local + t_true, atol=1e-9)
    assert res.residual_px < 1e-6
    assert res.per_point_error_px.shape == (21,)


def test_lift_with_pixel_noise_stays_close():
    local = hand_like(RNG)
    t_true = np.array([0.05, 0.02, 0.6])
    uv = project(local + t_true, K) + RNG.normal(scale=1.0, size=(21, 2))
    res = lift_to_camera(local, uv, K)
    assert np.linalg.norm(res.translation - t_true) < 0.01  # < 1 cm at 60 cm with 1 px noise
    assert 0.5 < res.residual_px < 2.0  # the RMS of the (fitted) noise


def test_lift_weights_ignore_an_outlier():
    local = hand_like(RNG)
    t_true = np.array([-0.1, 0.05, 0.7])
    uv = project(local + t_true, K)
    uv[3, 0] += 80.0  # one keypoint 80 px off
    w = np.ones(21)
    w[3] = 0.0
    res = lift_to_camera(local, uv, K, weights=w)
    np.testing.assert_allclose(res.translation, t_true, atol=1e-9)
    assert res.residual_px < 1e-6  # residual over the used keypoints only
    assert res.per_point_error_px[3] == pytest.approx(80.0, rel=1e-6)


def test_lift_is_scale_consistent():
    """A hand twice as large at twice the distance gives the same pixels: the lift finds each exactly."""
    local = hand_like(RNG)
    t = np.array([0.03, -0.02, 0.5])
    uv = project(local + t, K)
    np.testing.assert_allclose(project(2 * local + 2 * t, K), uv, atol=1e-9)
    res2 = lift_to_camera(2 * local, uv, K)
    np.testing.assert_allclose(res2.translation, 2 * t, atol=1e-9)
