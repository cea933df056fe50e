"""SE(3), pinhole projection and intrinsics: exact round trips on random, seeded data."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from dexhands_data.geometry import (
    Intrinsics,
    is_rigid,
    matrix_from_euler_xyz,
    matrix_from_rotvec,
    project,
    relative_pose,
    rotvec_from_matrix,
    se3,
    se3_inverse,
    transform_points,
    unproject,
)

RNG = np.random.default_rng(7)


def random_pose(rng: np.random.Generator) -> np.ndarray:
    return se3(Rotation.random(random_state=rng.integers(1 << 31)).as_matrix(), rng.normal(size=3))


def test_se3_inverse_is_exact_inverse():
    for _ in range(20):
        T = random_pose(RNG)
        assert is_rigid(T)
        np.testing.assert_allclose(T @ se3_inverse(T), np.eye(4), atol=1e-12)
        np.testing.assert_allclose(se3_inverse(se3_inverse(T)), T, atol=1e-12)


def test_se3_inverse_batched_matches_single():
    Ts = np.stack([random_pose(RNG) for _ in range(5)])
    np.testing.assert_allclose(se3_inverse(Ts), np.stack([se3_inverse(T) for T in Ts]), atol=1e-12)


def test_compose_transform_points_and_relative_pose():
    T_w_a, T_w_b = random_pose(RNG), random_pose(RNG)
    p_b = RNG.normal(size=(10, 3))
    # composing then applying == applying twice
    np.testing.assert_allclose(transform_points(T_w_a @ se3_inverse(T_w_a), p_b), p_b, atol=1e-12)
    T_a_b = relative_pose(T_w_a, T_w_b)
    np.testing.assert_allclose(
        transform_points(T_w_a, transform_points(T_a_b, p_b)), transform_points(T_w_b, p_b), atol=1e-12
    )
    np.testing.assert_allclose(T_w_a @ T_a_b, T_w_b, atol=1e-12)


def test_transform_points_batched_known_rotation_round_trip_and_broadcast():
    """Batched transforms (..., 4, 4) apply each to its own points (..., P, 3): a known 90 deg yaw plus
    a shift by hand, an exact round trip, one-at-a-time equality, and leading axes that broadcast."""
    yaw = se3(matrix_from_rotvec(np.array([0.0, 0.0, np.pi / 2])), [1.0, 2.0, 3.0])
    T = np.stack([yaw, se3(np.eye(3), [0.0, 0.0, -1.0])])
    p = np.array([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    want = np.array([[[1.0, 3.0, 3.0], [0.0, 2.0, 3.0]], [[1.0, 0.0, -1.0], [0.0, 1.0, -1.0]]])
    np.testing.assert_allclose(transform_points(T, p), want, atol=1e-12)
    Ts = np.stack([random_pose(RNG) for _ in range(6)])
    pts = RNG.normal(size=(6, 21, 3))
    np.testing.assert_allclose(transform_points(se3_inverse(Ts), transform_points(Ts, pts)), pts, atol=1e-12)
    one_by_one = np.stack([transform_points(T_k, pts[k]) for k, T_k in enumerate(Ts)])
    np.testing.assert_allclose(transform_points(Ts, pts), one_by_one, atol=1e-12)
    hands = RNG.normal(size=(6, 2, 21, 3))  # two hands per frame: the frame's transform for both
    np.testing.assert_allclose(transform_points(Ts[:, None], hands)[:, 1], transform_points(Ts, hands[:, 1]),
                               atol=1e-12)
    with pytest.raises(ValueError, match="4, 4"):
        transform_points(np.eye(3), pts[0])
    with pytest.raises(ValueError, match="P, 3"):
        transform_points(Ts, pts[:, 0, :2])


def test_is_rigid_rejects_non_rigid():
    T = random_pose(RNG)
    assert not is_rigid(T @ np.diag([1.1, 1.0, 1.0, 1.0]))
    reflect = T.copy()
    reflect[:3, 0] *= -1
    assert not is_rigid(reflect)
    bad = T.copy()
    bad[0, 3] = np.nan
    assert not is_rigid(bad)


def test_rotvec_and_euler_round_trip():
    R = Rotation.random(16, random_state=3).as_matrix()
    np.testing.assert_allclose(matrix_from_rotvec(rotvec_from_matrix(R)), R, atol=1e-12)
    np.testing.assert_allclose(matrix_from_euler_xyz(Rotation.from_matrix(R).as_euler("xyz")), R, atol=1e-12)
    # known rotation: +90 deg about z maps x to y
    Rz = matrix_from_rotvec(np.array([0, 0, np.pi / 2]))
    np.testing.assert_allclose(Rz @ [1, 0, 0], [0, 1, 0], atol=1e-12)


def test_project_unproject_round_trip():
    K = Intrinsics(600.0, 610.0, 320.5, 239.5, 640, 480).K
    pts = np.column_stack([RNG.uniform(-1, 1, 50), RNG.uniform(-1, 1, 50), RNG.uniform(0.3, 5, 50)])
    uv = project(pts, K)
    np.testing.assert_allclose(unproject(uv, pts[:, 2], K), pts, atol=1e-12)
    # the principal point is where the optical axis lands
    np.testing.assert_allclose(project(np.array([0.0, 0.0, 2.0]), K), [320.5, 239.5])


def test_project_behind_camera_is_nan():
    K = Intrinsics.from_fov(640, 480, 90).K
    uv = project(np.array([[0.1, 0.1, -1.0], [0.1, 0.1, 0.0], [0.1, 0.1, 1.0]]), K)
    assert np.isnan(uv[:2]).all() and np.isfinite(uv[2]).all()


def test_intrinsics_from_fov():
    intr = Intrinsics.from_fov(640, 360, 90.0)
    assert intr.fx == pytest.approx(320.0) and intr.fy == pytest.approx(320.0)
    # pixel-centre convention: pixel i covers [i - 0.5, i + 0.5], the image spans [-0.5, W - 0.5]
    assert (intr.cx, intr.cy, intr.source) == (319.5, 179.5, "fov_prior")
    # the image border (u = W - 0.5) is at the half field of view, on both sides
    edge = np.tan(np.deg2rad(45.0))
    u = project(np.array([[edge, 0.0, 1.0], [-edge, 0.0, 1.0]]), intr.K)[:, 0]
    np.testing.assert_allclose(u, [639.5, -0.5])
    # consistent with Intrinsics.scaled: the same camera at half resolution
    half = Intrinsics.from_fov(320, 180, 90.0)
    scaled = intr.scaled(320, 180)
    assert (half.cx, half.cy) == pytest.approx((scaled.cx, scaled.cy))
    with pytest.raises(ValueError):
        Intrinsics.from_fov(640, 360, 180.0)


def test_intrinsics_scaled_round_trip_and_pixel_centres():
    intr = Intrinsics(500.0, 505.0, 319.5, 239.5, 640, 480, "sidecar")
    half = intr.scaled(320, 240)
    assert (half.fx, half.fy, half.width, half.height, half.source) == (250.0, 252.5, 320, 240, "sidecar")
    # pixel-centre convention: the centre of the image stays the centre
    assert (half.cx, half.cy) == (159.5, 119.5)
    back = half.scaled(640, 480)
    np.testing.assert_allclose(back.to_list(), intr.to_list(), atol=1e-12)
    # a 3D point projects to corresponding (scaled) pixels on both grids
    p = np.array([0.2, -0.1, 1.5])
    uv, uv_half = project(p, intr.K), project(p, half.K)
    np.testing.assert_allclose((uv + 0.5) * 0.5 - 0.5, uv_half, atol=1e-12)


def test_from_K_validates():
    with pytest.raises(ValueError):
        Intrinsics.from_K(np.eye(2), 10, 10)
    with pytest.raises(ValueError):
        Intrinsics.from_K(np.diag([-1.0, 1.0, 1.0]), 10, 10)
