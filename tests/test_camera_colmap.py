"""``--camera colmap`` (pycolmap): pose interpolation, failure reporting, and a short real EgoDex clip vs ARKit."""

from __future__ import annotations

import numpy as np
import pytest

from dexhands_data.camera.colmap_backend import interpolate_poses
from dexhands_data.camera.registry import create_camera_estimator
from dexhands_data.distortion import Distortion
from dexhands_data.geometry import Intrinsics, is_rigid, matrix_from_rotvec, relative_pose, se3
from vo_scenes import (
    distorted_views, general_motion, load_rgb, render_planes, rotation_angle_deg, textured_planes, view_K,
)


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
    # COLMAP with these settings registers only part of this clip, and not accurately (docs/camera.md:
    # 0.97 deg median error per 3-frame pair where ARKit turns ~0.5 deg): what is checked here is
    # that its output is consistent and that everything it did not register says so.
    info = track.processing
    assert info.get("failure") is None and info["registered_keyframes"] >= 3, info
    assert info["valid_frames"] == int(track.valid.sum()) and 0 < track.valid.sum() <= n
    assert track.intrinsics == ep.intrinsics  # a dataset K stays fixed
    assert all(is_rigid(T) for T in track.T_world_cam)
    first = int(np.argmax(track.valid))
    np.testing.assert_allclose(track.T_world_cam[first], np.eye(4), atol=1e-9)
    assert track.world_frame == ("first_camera" if first == 0 else "first_registered_camera")


def test_colmap_on_a_rendered_scene_recovers_rotation_and_focal(shared_data):
    """Planes at 2.5-6 m textured with the permissive photos, exact ground truth, no intrinsics."""
    names = ["hamer_test3.jpg", "hamer_test1.jpg", "hamer_test2.jpg", "mediapipe_hand_thumb_up.jpg"]
    planes = textured_planes([load_rgb(shared_data / "hand_images" / n) for n in names])
    T_true = general_motion(31, 0.02)
    K = view_K(640, 480, 500.0)
    session = create_camera_estimator("colmap").session(Intrinsics.from_fov(640, 480, 90.0))
    for T in T_true:
        session.step(render_planes(planes, T, K), None, None)
    track = session.finish()
    assert track.valid.mean() > 0.9, track.processing
    assert track.intrinsics.source == "self_calibrated"
    assert abs(track.intrinsics.fx / 500.0 - 1) < 0.02, track.intrinsics.fx
    pairs = [i for i in range(30) if track.valid[i] and track.valid[i + 1]]
    err = [rotation_angle_deg(relative_pose(track.T_world_cam[i], track.T_world_cam[i + 1])[:3, :3]
                              @ relative_pose(T_true[i], T_true[i + 1])[:3, :3].T) for i in pairs]
    assert np.median(err) < 0.05, err


def test_colmap_through_a_lens_given_by_the_sidecar(shared_data):
    """The same scene through a barrel lens (k1 = -0.2, k2 = 0.03) with its lens given: COLMAP's OPENCV
    camera model holds it: per pair 0.007 deg, end 0.014 deg, travel direction 0.1 deg (measured; the
    pinhole model on the same frames: 0.020 deg, 0.34 deg, 3.8 deg)."""
    names = ["hamer_test3.jpg", "hamer_test1.jpg", "hamer_test2.jpg", "mediapipe_hand_thumb_up.jpg"]
    planes = textured_planes([load_rgb(shared_data / "hand_images" / n) for n in names])
    T_true = general_motion(31, 0.02)
    K = view_K(640, 480, 500.0)
    lens = Distortion(-0.2, 0.03)
    frames = distorted_views(lambda T, Kc, size: render_planes(planes, T, Kc, size), T_true, K, (640, 480), lens)
    intr = Intrinsics.from_K(K, 640, 480, "sidecar", lens)
    session = create_camera_estimator("colmap").session(intr)
    for frame in frames:
        session.step(frame, None, None)
    track = session.finish()
    assert track.valid.mean() > 0.9, track.processing
    assert track.intrinsics == intr
    pairs = [i for i in range(30) if track.valid[i] and track.valid[i + 1]]
    err = [rotation_angle_deg(relative_pose(track.T_world_cam[i], track.T_world_cam[i + 1])[:3, :3]
                              @ relative_pose(T_true[i], T_true[i + 1])[:3, :3].T) for i in pairs]
    assert np.median(err) < 0.02, err
    a, b = np.flatnonzero(track.valid)[[0, -1]]
    est, true = relative_pose(track.T_world_cam[a], track.T_world_cam[b]), relative_pose(T_true[a], T_true[b])
    assert rotation_angle_deg(est[:3, :3] @ true[:3, :3].T) < 0.1
    cos = est[:3, 3] @ true[:3, 3] / (np.linalg.norm(est[:3, 3]) * np.linalg.norm(true[:3, 3]))
    assert np.rad2deg(np.arccos(min(cos, 1.0))) < 1.0
