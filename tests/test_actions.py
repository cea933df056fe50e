"""Action conventions against hand-computed values on small known trajectories."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from dexhands_data.actions import (
    compute_actions,
    dexwm_official_actions,
    dexwm_official_poses,
    action_mask,
    consecutive_pairs,
    relative_actions,
    relative_window_poses,
    window_poses,
    wrap_angles,
)
from dexhands_data.geometry import se3, se3_inverse, transform_points


def Rz(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def two_hands(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    kp = rng.uniform(-0.2, 0.2, size=(n, 2, 21, 3))
    kp[..., 2] += 0.5
    return kp.astype(np.float32)


def test_golden_two_frame_yaw_minus_001_gives_62732():
    """dexwm.md §13.4: a -0.01 rad yaw change becomes 6.2732 in dexwm-official, stays -0.01 in relative."""
    T0 = se3(np.eye(3), [1.0, 2.0, 3.0])
    T1 = se3(Rz(-0.01), [1.1, 2.0, 3.0])
    T = np.stack([T0, T1])
    kp = two_hands(0, 2)
    valid = np.ones((2, 2), bool)
    cam = np.ones(2, bool)

    a = dexwm_official_actions(kp, valid, T, cam)
    assert a.shape == (1, 44, 3) and a.dtype == np.float32
    np.testing.assert_array_equal(a[0, 43], np.float32([0.0, 0.0, 6.2731853]))
    assert a[0, 43, 2] == pytest.approx(2 * np.pi - 0.01, abs=1e-6)
    # camera position: float32 world differences, exactly as the released code subtracts
    np.testing.assert_array_equal(a[0, 42], np.float32([1.1, 2.0, 3.0]) - np.float32([1.0, 2.0, 3.0]))
    # keypoints by hand: frame-1 points into camera 0 = Rz(-0.01) q + (0.1, 0, 0)
    c, s = np.cos(-0.01), np.sin(-0.01)
    q = kp[1].reshape(42, 3).astype(np.float64)
    q0 = np.stack([c * q[:, 0] - s * q[:, 1] + 0.1, s * q[:, 0] + c * q[:, 1], q[:, 2]], 1)
    expected = q0.astype(np.float32) - kp[0].reshape(42, 3)
    np.testing.assert_allclose(a[0, :42], expected, atol=2e-7)

    r = compute_actions("relative", kp, valid, T, cam)
    np.testing.assert_allclose(r[0, 43], [0.0, 0.0, -0.01], atol=1e-7)
    np.testing.assert_allclose(r[0, 42], [0.1, 0.0, 0.0], atol=1e-7)
    # the first camera has an identity rotation: same keypoint rows
    np.testing.assert_allclose(r[0, :42], expected, atol=2e-7)


def test_wrap_across_pi_and_wrap_options():
    T = np.stack([se3(Rz(np.pi - 0.005), [0, 0, 0]), se3(Rz(-np.pi + 0.005), [0, 0, 0])])
    kp = two_hands(1, 2)
    args = (kp, np.ones((2, 2), bool), T, np.ones(2, bool))
    official = dexwm_official_actions(*args)
    assert official[0, 43, 2] == pytest.approx(0.01, abs=1e-5)  # a wrap across +-pi correctly becomes small
    raw = dexwm_official_actions(*args, wrap="none")
    assert raw[0, 43, 2] == pytest.approx(-2 * np.pi + 0.01, abs=1e-5)
    assert dexwm_official_actions(*args, wrap="pi")[0, 43, 2] == pytest.approx(0.01, abs=1e-5)
    rel = compute_actions("relative", *args)
    np.testing.assert_allclose(rel[0, 43], [0, 0, 0.01], atol=1e-7)
    # the mod-2pi quirk is the released torch op, bit for bit, in float32
    x = np.float32([-0.01, 0.0, 3.5, -7.0, 6.3])
    np.testing.assert_array_equal(wrap_angles(x, "mod2pi"), torch.tensor(x) % (2 * np.pi))
    expected_pi = [-0.01, 0.0, 3.5 - 2 * np.pi, -7.0 + 2 * np.pi, 6.3 - 2 * np.pi]
    np.testing.assert_allclose(wrap_angles(x, "pi"), expected_pi, atol=1e-6)
    with pytest.raises(ValueError, match="wrap"):
        compute_actions("relative", *args, wrap="mod2pi")
    with pytest.raises(ValueError, match="unknown action convention"):
        compute_actions("dexwm", *args)


def released_reference(p_world: np.ndarray, T_world_src: np.ndarray, indices: list[int]) -> np.ndarray:
    """The released EgoDex computation, re-derived from dexwm.md §2.2 on source-native data:
    world keypoints into the first window frame's (source) camera, world camera position and Euler
    'xyz', poses as float32, float32 differences, angle row % 2pi in torch."""
    cam_ext = np.linalg.inv(T_world_src[indices[0]])
    poses = []
    for k in indices:
        rows = [transform_points(cam_ext, p) for p in p_world[k]]
        rows.append(T_world_src[k][:3, 3])
        rows.append(Rotation.from_matrix(T_world_src[k][:3, :3]).as_euler("xyz"))
        poses.append(np.array(rows))
    pairs = [np.concatenate([poses[i], poses[i + 1]]) for i in range(len(indices) - 1)]
    x = torch.Tensor(np.array(pairs))
    d = x[:, 44:] - x[:, :44]
    d[:, -1] = d[:, -1] % (2 * np.pi)
    return d.numpy()


@pytest.mark.parametrize("axis_change", ["identity", "opengl"])
def test_official_reproduces_released_formula_from_source_native_poses(axis_change):
    """Readers store OpenCV cameras; with T_opencv_source recorded, the loader gives back the released
    code's numbers computed from the source's own camera poses and world keypoints."""
    n = 30
    rng = np.random.default_rng(3)
    S = np.eye(4) if axis_change == "identity" else np.diag([1.0, -1.0, -1.0, 1.0])
    rv = np.cumsum(rng.normal(0, 0.15, (n, 3)), axis=0) + [0.0, 0.0, 2.9]  # yaw near pi: wraps happen
    t = np.cumsum(rng.normal(0, 0.02, (n, 3)), axis=0) + [0, 1.5, 0]
    T_world_src = se3(Rotation.from_rotvec(rv).as_matrix(), t)
    p_world = rng.uniform(-0.5, 0.5, (n, 42, 3)) + [0, 1.5, 0]
    T_world_cam = T_world_src @ se3_inverse(S)  # what a reader stores (OpenCV camera)
    kp_cam = np.stack([transform_points(se3_inverse(T_world_cam[k]), p_world[k]) for k in range(n)])
    kp_cam = kp_cam.reshape(n, 2, 21, 3)
    indices = [2, 5, 6, 11, 15, 16, 20, 24, 29]
    ours = dexwm_official_actions(kp_cam, np.ones((n, 2), bool), T_world_cam, np.ones(n, bool), indices, S)
    ref = released_reference(p_world, T_world_src, indices)
    np.testing.assert_allclose(ours[:, :42], ref[:, :42], atol=2e-6)
    np.testing.assert_allclose(ours[:, 42:], ref[:, 42:], atol=2e-6)
    if axis_change == "identity":  # no axis change: camera rows are bit-identical
        np.testing.assert_array_equal(ours[:, 42:], ref[:, 42:])
    assert (ours[:, 43] > 3.0).any()  # small negative angle deltas became ~2pi, as released


def test_official_keypoints_in_first_camera_relative_in_pair_camera():
    n = 3
    rng = np.random.default_rng(5)
    T = se3(Rotation.from_rotvec(rng.normal(0, 0.3, (n, 3))).as_matrix(), rng.normal(0, 0.3, (n, 3)))
    kp = two_hands(2, n)
    args = (kp, np.ones((n, 2), bool), T, np.ones(n, bool))
    off = dexwm_official_actions(*args)
    rel = relative_actions(*args)
    R01 = (se3_inverse(T[0]) @ T[1])[:3, :3]
    np.testing.assert_allclose(off[0, :42], rel[0, :42], atol=1e-6)  # pair (0, 1): both in camera 0
    # pair (1, 2): camera 0 versus camera 1
    np.testing.assert_allclose(off[1, :42], rel[1, :42] @ R01.T, atol=1e-6)
    assert np.abs(off[1, :42] - rel[1, :42]).max() > 1e-3


def test_missing_hands_zero_in_official_nan_in_relative_and_static_camera():
    n = 4
    kp = two_hands(4, n)
    valid = np.ones((n, 2), bool)
    valid[:, 0] = False  # DROID: no left hand
    valid[2, 1] = False
    kp[~valid] = np.nan
    T = np.tile(se3(Rz(0.4), [0.2, -0.1, 0.9]), (n, 1, 1))  # static exterior camera
    args = (kp, valid, T, np.ones(n, bool))
    poses = dexwm_official_poses(*args)
    assert (poses[:, :21] == 0).all() and (poses[2, 21:42] == 0).all()
    off = dexwm_official_actions(*args)
    assert (off[:, 42:] == 0).all()  # static camera: exactly zero camera actions
    assert (off[:, :21] == 0).all()
    np.testing.assert_allclose(off[1, 21:42], -poses[1, 21:42].astype(np.float32))  # hand vanishes -> zeros
    rel = compute_actions("relative", *args)
    assert np.isnan(rel[:, :21]).all() and np.isnan(rel[1:3, 21:42]).all()
    assert np.isfinite(rel[0, 21:]).all() and (rel[:, 42:] == 0).all()


def test_relative_window_poses_and_unknown_camera():
    n = 5
    rng = np.random.default_rng(6)
    T = se3(Rotation.from_rotvec(rng.normal(0, 0.3, (n, 3))).as_matrix(), rng.normal(0, 0.3, (n, 3)))
    kp = two_hands(6, n)
    cam = np.ones(n, bool)
    cam[3] = False
    p = relative_window_poses(kp, np.ones((n, 2), bool), T, cam, [1, 2, 3, 4])
    assert (p[0, 42:] == 0).all()
    T12 = se3_inverse(T[1]) @ T[2]
    np.testing.assert_allclose(p[1, 42], T12[:3, 3], atol=1e-12)
    np.testing.assert_allclose(p[1, 43], Rotation.from_matrix(T12[:3, :3]).as_rotvec(), atol=1e-12)
    np.testing.assert_allclose(p[1, :42], transform_points(T12, kp[2].reshape(42, 3)), atol=1e-6)
    assert np.isnan(p[2, 42:]).all() and np.isfinite(p[3, 42:]).all()
    np.testing.assert_allclose(p[2, :42], kp[3].reshape(42, 3), atol=0)  # unknown camera: identity assumed
    rel = compute_actions("relative", kp, np.ones((n, 2), bool), T, cam, [1, 2, 3, 4])
    assert np.isnan(rel[1:3, 42:]).all() and np.isfinite(rel[0, 42:]).all()
    off = compute_actions("dexwm-official", kp, np.ones((n, 2), bool), T, cam, [1, 2, 3, 4])
    assert np.isnan(off[1:3, 42:]).all() and np.isfinite(off[0]).all()
    same = window_poses("relative", kp, np.ones((n, 2), bool), T, cam, [1, 2, 3, 4])
    np.testing.assert_array_equal(same, p)


@pytest.mark.parametrize("convention", ["relative", "dexwm-official"])
def test_batched_windows_equal_one_window_at_a_time(convention):
    """(W, T) windows and (P, 2) pairs go through the same implementation as one (T,) window."""
    n = 12
    rng = np.random.default_rng(9)
    T = se3(Rotation.from_rotvec(rng.normal(0, 0.8, (n, 3))).as_matrix(), rng.normal(0, 0.5, (n, 3)))
    kp = two_hands(9, n)
    valid = rng.random((n, 2)) > 0.2
    kp[~valid] = np.nan
    cam = rng.random(n) > 0.15
    S = np.diag([1.0, -1.0, -1.0, 1.0])
    for metric in (True, False):
        pw = compute_actions(convention, kp, valid, T, cam, consecutive_pairs(n), T_opencv_source=S,
                             translation_metric=metric)
        assert pw.shape == (n - 1, 1, 44, 3) and pw.dtype == np.float32
        windows = np.array([[0, 2, 3, 7], [4, 5, 6, 11], [1, 1, 8, 9]])
        batched = compute_actions(convention, kp, valid, T, cam, windows, T_opencv_source=S,
                                  translation_metric=metric)
        mask = action_mask(valid, cam, windows, metric)
        assert batched.shape == mask.shape == (3, 3, 44, 3)
        for i in range(n - 1):
            one = compute_actions(convention, kp, valid, T, cam, [i, i + 1], T_opencv_source=S,
                                  translation_metric=metric)[0]
            np.testing.assert_allclose(pw[i, 0], one, atol=1e-6, equal_nan=True)
        for w, idx in enumerate(windows):
            one = compute_actions(convention, kp, valid, T, cam, idx, T_opencv_source=S, translation_metric=metric)
            np.testing.assert_allclose(batched[w], one, atol=1e-6, equal_nan=True)
            np.testing.assert_array_equal(mask[w], action_mask(valid, cam, idx, metric))
        if convention == "relative":  # relative: NaN exactly where masked
            np.testing.assert_array_equal(np.isfinite(batched), mask)


def _vo_like_episode(n: int, scale: float, seed: int = 11):
    """Metric world keypoints seen by a moving camera; the camera track's translation multiplied by
    ``scale`` (what monocular VO gives: the right rotation, translation in an unknown unit)."""
    rng = np.random.default_rng(seed)
    R = Rotation.from_rotvec(np.cumsum(rng.normal(0, 0.1, (n, 3)), axis=0)).as_matrix()
    t = np.cumsum(rng.normal(0, 0.05, (n, 3)), axis=0)
    T_true = se3(R, t)
    p_world = rng.uniform(-0.2, 0.2, (n, 42, 3)) + [0.0, 0.0, 0.6]
    kp = transform_points(se3_inverse(T_true), p_world).reshape(n, 2, 21, 3).astype(np.float32)
    return kp, T_true, se3(R, t * scale)


def test_non_metric_translation_never_enters_metric_rows():
    """A VO track (translation up to scale): keypoint rows use the rotation only, so they do not depend
    on the unknown scale; camera-position rows are NaN and masked; the rotation rows are kept."""
    n = 6
    kp, T_true, T_vo = _vo_like_episode(n, scale=7.3)
    _, _, T_vo2 = _vo_like_episode(n, scale=0.2)
    valid, cam = np.ones((n, 2), bool), np.ones(n, bool)
    rel = relative_actions(kp, valid, T_vo, cam, translation_metric=False)
    np.testing.assert_array_equal(rel, relative_actions(kp, valid, T_vo2, cam, translation_metric=False))
    R01 = (se3_inverse(T_true[0]) @ T_true[1])[:3, :3]
    expected = kp[1].reshape(42, 3).astype(np.float64) @ R01.T - kp[0].reshape(42, 3)
    np.testing.assert_allclose(rel[0, :42], expected, atol=1e-6)
    assert np.isnan(rel[:, 42]).all()
    np.testing.assert_allclose(rel[0, 43], Rotation.from_matrix(R01).as_rotvec(), atol=1e-6)
    # the metric ground truth: the keypoint rows do use the translation
    gt = relative_actions(kp, valid, T_true, cam)
    np.testing.assert_allclose(gt[0, 42], (se3_inverse(T_true[0]) @ T_true[1])[:3, 3], atol=1e-6)
    assert np.abs(gt[:, :42] - rel[:, :42]).max() > 1e-3
    idx = [0, 2, 3, 5]
    off = dexwm_official_actions(kp, valid, T_vo, cam, idx, translation_metric=False)
    np.testing.assert_array_equal(off, dexwm_official_actions(kp, valid, T_vo2, cam, idx, translation_metric=False))
    poses = dexwm_official_poses(kp, valid, T_vo, cam, idx, translation_metric=False)
    R03 = (se3_inverse(T_true[0]) @ T_true[3])[:3, :3]  # the world from rotation only
    np.testing.assert_allclose(poses[2, :42], kp[3].reshape(42, 3) @ R03.T, atol=1e-6)
    assert np.isnan(poses[:, 42]).all() and np.isnan(off[:, 42]).all() and np.isfinite(off[:, 43]).all()
    mask = action_mask(valid, cam, idx, translation_metric=False)
    assert not mask[:, 42].any() and mask[:, 43].all() and mask[:, :42].all()
    assert action_mask(valid, cam, idx).all()


def test_action_mask_marks_missing_hands_and_unknown_cameras():
    n = 5
    valid = np.ones((n, 2), bool)
    valid[:, 0] = False
    valid[3, 1] = False
    cam = np.array([True, True, False, True, True])
    m = action_mask(valid, cam)
    assert m.shape == (4, 44, 3) and m.dtype == bool
    assert not m[:, :21].any()
    np.testing.assert_array_equal(m[:, 21:42].all(axis=(1, 2)), [True, True, False, False])
    np.testing.assert_array_equal(m[:, 42:].all(axis=(1, 2)), [True, False, False, True])
    # the zero-filled missing hands of dexwm-official are values, not data: the mask says so
    kp = two_hands(3, n)
    kp[~valid] = np.nan
    T = np.tile(np.eye(4), (n, 1, 1))
    off = dexwm_official_actions(kp, valid, T, cam)
    assert np.isfinite(off[:, :42]).all() and (off[:, :21] == 0).all()
