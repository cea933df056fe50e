"""Bundle adjustment (camera/bundle_adjustment.py) on synthetic scenes with exact poses, with numbers."""

from __future__ import annotations

import numpy as np
import pytest

from dexhands_data.camera.bundle_adjustment import BAProblem, _Layout, _Model, bundle_adjust
from dexhands_data.geometry import matrix_from_rotvec, se3, se3_inverse

K = np.array([[400.0, 0, 320.0], [0, 400.0, 240.0], [0, 0, 1]])


def scene(rng, frames=6, points=150, step=np.array([0.05, 0.0, 0.01]), noise_px=0.0):
    """Exact world-to-camera poses, world points 2-6 m ahead, and every point seen by every frame."""
    rv = rng.normal(0, 0.02, (frames, 3))
    rv[0] = 0
    T_wc = se3(matrix_from_rotvec(rv), np.arange(frames)[:, None] * step)
    T_cw = se3_inverse(T_wc)
    X = np.column_stack([rng.uniform(-2, 2, points), rng.uniform(-1.5, 1.5, points), rng.uniform(2, 6, points)])
    obs_frame = np.repeat(np.arange(frames), points)
    obs_point = np.tile(np.arange(points), frames)
    xc = np.einsum("oij,oj->oi", T_cw[obs_frame, :3, :3], X[obs_point]) + T_cw[obs_frame, :3, 3]
    uv = xc[:, :2] / xc[:, 2:3] * [K[0, 0], K[1, 1]] + K[:2, 2] + rng.normal(0, noise_px, (len(xc), 2)) * (noise_px > 0)
    xa = X @ T_cw[0, :3, :3].T + T_cw[0, :3, 3]  # every point anchored in frame 0
    return T_cw, X, obs_frame, obs_point, uv, xa[:, :2] / xa[:, 2:3], 1.0 / xa[:, 2]


def rotation_deg(Ra, Rb):
    return float(np.degrees(np.arccos(np.clip((np.trace(Ra.T @ Rb) - 1) / 2, -1, 1))))


@pytest.mark.parametrize("translation", [True, False])
@pytest.mark.parametrize("refine_focal", [True, False])
def test_jacobian_matches_central_differences(translation, refine_focal):
    rng = np.random.default_rng(1)
    T_cw, X, of, op, uv, ab, rho = scene(rng, frames=4, points=12)
    anchor = rng.integers(0, 4, 12)  # anchors other than frame 0 too
    p = BAProblem(T_cw, np.array([True, False, False, False]), of, op, uv + rng.normal(0, 2, uv.shape), anchor,
                  ab + rng.normal(0, 0.05, ab.shape), rho, K)
    model = _Model(p, _Layout(p, translation, refine_focal), 10.0)
    x = model.x0() + rng.normal(0, 0.01, model.L.size) * np.r_[np.zeros(model.L.n_pose), np.ones(model.L.size - model.L.n_pose)]
    J = model.jacobian(x).toarray()
    numeric = np.zeros_like(J)
    for k in range(len(x)):
        d = np.zeros(len(x))
        d[k] = 1e-6
        numeric[:, k] = (model.residuals(x + d) - model.residuals(x - d)) / 2e-6
    assert np.abs(J - numeric).max() < 1e-5 * np.abs(numeric).max()


def test_recovers_a_perturbed_pose_and_reduces_reprojection_error():
    rng = np.random.default_rng(2)
    T_cw, X, of, op, uv, ab, rho = scene(rng, noise_px=0.2)
    start = T_cw.copy()
    start[3] = se3(matrix_from_rotvec(np.array([0.0, np.deg2rad(1.0), 0.0])), np.array([0.05, -0.03, 0.0])) @ T_cw[3]
    start[4, :3, 3] += [0.0, 0.02, 0.02]
    fixed = np.zeros(len(T_cw), bool)
    fixed[0] = True  # gauge: the first pose; the scale through the points' mean inverse depth
    problem = BAProblem(start, fixed, of, op, uv, np.zeros(len(X), int), ab, rho * rng.uniform(0.9, 1.1, len(rho)), K)
    result = bundle_adjust(problem, translation=True)
    before = bundle_adjust(problem, translation=True, max_iterations=0).errors_px
    moved = np.isin(of, [3, 4])
    assert result.converged
    assert np.median(before[moved]) > 5.0 and np.median(result.errors_px[moved]) < 0.3
    assert result.median_px_after < result.median_px_before and result.median_px_after < 0.3
    for i in (3, 4):
        assert rotation_deg(result.T_cw[i, :3, :3], T_cw[i, :3, :3]) < 0.05  # from 1 deg, 0.2 px noise
        c_est, c_true = se3_inverse(result.T_cw[i])[:3, 3], se3_inverse(T_cw[i])[:3, 3]
        assert np.linalg.norm(c_est - c_true) < 0.01 * np.linalg.norm(c_true)  # 1 % of the baseline
    np.testing.assert_array_equal(result.T_cw[0], start[0])
    # the recovered depths
    assert np.median(np.abs(result.rho / rho - 1)) < 0.01


def test_rotation_only_model_recovers_rotations_and_keeps_centres():
    rng = np.random.default_rng(3)
    T_cw, X, of, op, uv, ab, rho = scene(rng, step=np.zeros(3), noise_px=0.2)
    start = T_cw.copy()
    for i in (2, 5):
        start[i, :3, :3] = matrix_from_rotvec(rng.normal(0, np.deg2rad(0.7), 3)) @ T_cw[i, :3, :3]
    fixed = np.zeros(len(T_cw), bool)
    fixed[0] = True
    problem = BAProblem(start, fixed, of, op, uv, np.zeros(len(X), int), ab, rho, K)
    result = bundle_adjust(problem, translation=False)
    before = bundle_adjust(problem, translation=False, max_iterations=0).errors_px
    moved = np.isin(of, [2, 5])
    assert np.median(before[moved]) > 3.0 and np.median(result.errors_px[moved]) < 0.3
    for i in range(len(T_cw)):
        assert rotation_deg(result.T_cw[i, :3, :3], T_cw[i, :3, :3]) < 0.02  # from ~0.7 deg
    np.testing.assert_array_equal(result.T_cw[:, :3, 3], start[:, :3, 3])
    assert np.all(result.rho == 0)
    # 3 dof per free frame + 2 per point
    assert result.parameters == 3 * 5 + 2 * len(X)


def test_robust_loss_keeps_the_pose_with_gross_outliers():
    rng = np.random.default_rng(4)
    T_cw, X, of, op, uv, ab, rho = scene(rng, noise_px=0.2)
    bad = rng.random(len(uv)) < 0.1
    uv = uv.copy()
    uv[bad] += rng.uniform(-30, 30, (bad.sum(), 2))
    start = T_cw.copy()
    start[2, :3, 3] += [0.03, 0.0, 0.0]
    fixed = np.zeros(len(T_cw), bool)
    fixed[0] = True
    problem = BAProblem(start, fixed, of, op, uv, np.zeros(len(X), int), ab, rho, K)
    huber = bundle_adjust(problem, translation=True, loss="huber")
    plain = bundle_adjust(problem, translation=True, loss="linear")
    err = lambda r: np.linalg.norm(se3_inverse(r.T_cw[2])[:3, 3] - se3_inverse(T_cw[2])[:3, 3])
    assert err(huber) < 0.01 and err(huber) < 0.2 * err(plain), (err(huber), err(plain))  # 3 cm moved
    with pytest.raises(ValueError, match="unknown loss"):
        bundle_adjust(problem, loss="tukey")
