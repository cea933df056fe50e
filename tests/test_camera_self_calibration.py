"""Focal self-calibration from rotation-dominant video, and hands lifted again with the final K."""

from __future__ import annotations

import numpy as np
import pytest

from dexhands_data.camera.self_calibration import estimate_focal
from dexhands_data.camera.vo import VisualOdometry
from dexhands_data.geometry import Intrinsics, lift_to_camera, matrix_from_rotvec, project
from dexhands_data.hands.relift import relift_track
from dexhands_data.records import HandTrack
from vo_scenes import (
    general_motion, load_rgb, render_planes, rotation_angle_deg, rotation_sequence, single_plane,
    smooth_rotations, view_K,
)


def project_rays(rays, f, cx, cy):
    return np.stack([f * rays[:, 0] / rays[:, 2] + cx, f * rays[:, 1] / rays[:, 2] + cy], axis=1)


def test_focal_of_exactly_rotating_rays_is_recovered_and_translation_is_refused():
    rng = np.random.default_rng(1)
    f, cx, cy, width = 410.0, 240.0, 160.0, 480
    px = np.stack([rng.uniform(0, 480, 250), rng.uniform(0, 320, 250)], axis=1)
    rays = np.column_stack([(px - [cx, cy]) / f, np.ones(250)])
    pairs = []
    for rv in ([0.03, 0.05, 0.0], [-0.04, 0.02, 0.01], [0.0, -0.06, 0.02]):
        R = matrix_from_rotvec(np.array(rv))
        pairs.append((px, project_rays(rays @ R.T, f, cx, cy) + rng.normal(0, 0.1, px.shape)))
    est = estimate_focal(pairs, width, cx, cy)
    assert est.reason is None and est.pairs_used == 3
    assert abs(est.focal_px / f - 1) < 0.005, est.focal_px
    assert est.sigma_rel < 0.01
    # A camera translating sideways in front of points at 1-3 m: no focal makes it a rotation.
    X = rays * rng.uniform(1.0, 3.0, (250, 1))
    translated = [(px, project_rays(X + [0.05 * k, 0.0, 0.02 * k], f, cx, cy)) for k in (1, 2, 3)]
    refused = estimate_focal(translated, width, cx, cy)
    assert refused.focal_px is None and "not observable" in refused.reason
    # Roll about the optical axis alone does not constrain the focal either.
    R = matrix_from_rotvec(np.array([0.0, 0.0, 0.05]))
    roll = [(px, project_rays(rays @ R.T, f, cx, cy))] * 2
    assert estimate_focal(roll, width, cx, cy).focal_px is None


@pytest.fixture(scope="module")
def rotation_clip(shared_data):
    rotations = smooth_rotations(70)
    frames, K = rotation_sequence(load_rgb(shared_data / "hand_images" / "hamer_test3.jpg"), rotations)
    return frames, K, rotations


def test_vo_without_intrinsics_self_calibrates_on_a_rendered_rotation(rotation_clip):
    frames, K, R_true = rotation_clip
    h, w = frames.shape[1:3]
    prior = Intrinsics.from_fov(w, h, 90.0)  # true hfov is 59.5 deg
    session = VisualOdometry(background=True).session(prior)
    for f in frames:
        session.step(f, None, None)
    track = session.finish()
    assert track.intrinsics.source == "self_calibrated"
    assert abs(track.intrinsics.fx / K[0, 0] - 1) < 0.02, track.intrinsics.fx
    assert track.intrinsics.fx == track.intrinsics.fy and track.intrinsics.cx == prior.cx
    calib = track.processing["self_calibration"]
    assert calib["reason"] is None and calib["sigma_rel"] < 0.02 and calib["frames"] == 60
    assert track.valid.all() and len(track.valid) == 70
    err = rotation_angle_deg(track.T_world_cam[:, :3, :3] @ np.transpose(R_true, (0, 2, 1)))
    assert err.max() < 0.1, err.max()
    np.testing.assert_allclose(track.T_world_cam[:, :3, 3], 0.0, atol=1e-12)  # no invented translation


def test_focal_is_not_observable_on_a_translating_plane_and_the_prior_stays(shared_data):
    planes = single_plane(load_rgb(shared_data / "hand_images" / "hamer_test1.jpg"))
    K = view_K(640, 480, 500.0)
    frames = [render_planes(planes, T, K) for T in general_motion(30, 0.01)]
    prior = Intrinsics.from_fov(640, 480, 90.0)
    session = VisualOdometry(background=False, self_calibration_frames=30).session(prior)
    for f in frames:
        session.step(f, None, None)
    track = session.finish()
    assert track.intrinsics == prior
    assert "not observable" in track.processing["self_calibration"]["reason"]
    assert track.valid.mean() > 0.9


def test_sidecar_intrinsics_are_never_self_calibrated(rotation_clip):
    frames, K, _ = rotation_clip
    intr = Intrinsics.from_K(K, frames.shape[2], frames.shape[1], source="sidecar")
    session = VisualOdometry(background=False).session(intr)
    for f in frames[:5]:
        session.step(f, None, None)
    track = session.finish()
    assert track.intrinsics == intr and "self_calibration" not in track.processing


def test_relift_with_a_new_focal_reprojects_onto_the_same_pixels():
    rng = np.random.default_rng(0)
    shape = rng.normal(0, 0.04, (21, 3))
    K1 = Intrinsics.from_fov(640, 480, 90.0)
    K2 = Intrinsics(500.0, 500.0, K1.cx, K1.cy, 640, 480, "self_calibrated")
    uv = project(shape + [0.1, 0.05, 0.5], K2.K)  # the hand as a camera with K2 sees it
    track = HandTrack.empty(2, "mediapipe==test")
    track.keypoints_cam[0, 1] = lift_to_camera(shape, uv, K1.K).points_cam
    track.keypoints_2d[0, 1] = uv
    track.valid[0, 1] = True
    out = relift_track(track, K2)
    np.testing.assert_allclose(out.keypoints_cam[0, 1], shape + [0.1, 0.05, 0.5], atol=1e-4)
    assert out.lift_residual_px[0, 1] < 1e-3
    assert out.valid.sum() == 1 and np.isnan(out.keypoints_cam[1]).all()
    assert out.processing["relifted_with_intrinsics"] == "self_calibrated"
    # Same K: the lift is unchanged.
    same = relift_track(track, K1)
    np.testing.assert_allclose(same.keypoints_cam[0, 1], track.keypoints_cam[0, 1], atol=1e-5)


def test_extract_gives_the_episode_and_its_hands_the_self_calibrated_k(rotation_clip, tmp_path):
    """A rendered rotation written as a video without sidecar: real decode, MediaPipe, VO."""
    from dexhands_data.pipelines.extract import ExtractProcessor
    from dexhands_data.sources.videos import VideosSource
    from egodex_fixtures import write_mp4

    frames, K, _ = rotation_clip
    write_mp4(tmp_path / "turn.mp4", frames[:, :426])  # even height for H.264
    ref = VideosSource().discover(str(tmp_path))[0]
    ep = ExtractProcessor(source="videos", camera="vo").__call__(ref)
    assert ep.intrinsics.source == "self_calibrated" and abs(ep.intrinsics.fx / K[0, 0] - 1) < 0.02
    assert ep.camera.intrinsics == ep.intrinsics and ep.camera.valid.all()
    hands = ep.hands
    assert hands.processing["lift_intrinsics_source"] == "self_calibrated"
    assert hands.valid.any()
    for i, s in zip(*np.nonzero(hands.valid)):  # every lifted hand lands on its 2D with the episode's K
        uv = project(hands.keypoints_cam[i, s].astype(np.float64), ep.intrinsics.K)
        rms = np.sqrt(np.mean(np.sum((uv - hands.keypoints_2d[i, s]) ** 2, axis=-1)))
        assert rms < 1.0
