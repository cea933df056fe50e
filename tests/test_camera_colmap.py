"""``--camera colmap`` (pycolmap): pose interpolation, failure reporting, and a short real EgoDex clip vs ARKit."""

from __future__ import annotations

import numpy as np
import pytest

from dexhands_data.camera.colmap_backend import interpolate_poses
from dexhands_data.camera.registry import create_camera_estimator
from dexhands_data.geometry import Intrinsics, matrix_from_rotvec, relative_pose, se3
from vo_scenes import rotation_angle_deg


def test_interpolation_between_registered_keyframes():
    a = se3(np.eye(3), np.zeros(3))
    b = se3(matrix_from_rotvec(np.array([0.0, np.deg2rad(40.0), 0.0])), np.array([1.0, 0.0, 2.0]))
    T, valid = interpolate_poses({0: a, 4: b, 20: b}, 22, max_gap=6)
    assert valid[:5].all() and not valid[5:20].any() and valid[20] and not valid[21]
    np.testing.assert_allclose(rotation_angle_deg(T[2, :3, :3]), 20.0, atol=1e-9)
    np.testing.assert_allclose(T[1, :3, 3], [0.25, 0.0, 0.5], atol=1e-12)
    np.testing.assert_array_equal(T[7], b)  # invalid frames hold the nearest registered pose


def test_a_black_video_is_invalid_with_a_reason():
    session = create_camera_estimator("colmap").session(Intrinsics.from_fov(320, 240, 70.0))
    for _ in range(9):
        session.step(np.zeros((240, 320, 3), np.uint8), None, None)
    track = session.finish()
    assert len(track.valid) == 9 and not track.valid.any()
    assert "registered" in track.processing["failure"]
    assert track.estimator == "colmap==1.0" and track.translation_metric is False


@pytest.mark.noncommercial
def test_colmap_on_a_real_egodex_clip_against_arkit(shared_data):
    from dexhands_data.sources.egodex import EgoDexSource

    src = EgoDexSource()
    ref = next(r for r in src.discover(str(shared_data / "egodex_real_nc"))
               if r.episode_id == "test/add_remove_lid/0")
    ep = src.open(ref)
    n = len(ep.camera.valid)  # 94 frames, ~3 s
    session = create_camera_estimator("colmap").session(ep.intrinsics)
    for i, frame in zip(range(n), ep.frames()):
        session.step(frame.image, ep.hands.keypoints_2d[i], ep.hands.valid[i])
    track = session.finish()
    assert track.processing.get("failure") is None, track.processing
    assert track.valid.mean() > 0.8 and track.world_frame == "first_camera"
    assert track.intrinsics == ep.intrinsics  # a dataset K stays fixed
    T_gt = ep.camera.T_world_cam[:n]
    pairs = [i for i in range(n - 6) if track.valid[i] and track.valid[i + 6]]
    err = [rotation_angle_deg(relative_pose(track.T_world_cam[i], track.T_world_cam[i + 6])[:3, :3]
                              @ relative_pose(T_gt[i], T_gt[i + 6])[:3, :3].T) for i in pairs]
    assert len(pairs) > 15 and np.median(err) < 0.5 and max(err) < 2.0, err
