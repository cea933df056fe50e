"""Visual odometry through a distorting lens: rendered videos with exact poses seen through a barrel
lens (k1 = -0.2, k2 = 0.03 on normalised coordinates), with the lens given (sidecar), estimated
(self-calibration from a prior) and ignored (the pinhole baseline the numbers are compared with)."""

from __future__ import annotations

import numpy as np
import pytest

from dexhands_data.camera.self_calibration import estimate_focal
from dexhands_data.camera.vo import VisualOdometry
from dexhands_data.distortion import Distortion
from dexhands_data.geometry import Intrinsics, matrix_from_rotvec
from vo_scenes import (
    distorted_views, general_motion, load_rgb, render_planes, rotation_angle_deg, rotation_render,
    smooth_rotations, textured_planes, view_K,
)

LENS = Distortion(-0.2, 0.03)
SIZE = (640, 427)


def run_vo(frames, intr: Intrinsics, **options):
    session = VisualOdometry(background=False, **options).session(intr)
    for f in frames:
        session.step(f, None, None)
    return session.finish()


def pair_errors_deg(T_est: np.ndarray, R_true: np.ndarray) -> np.ndarray:
    rel_est = np.swapaxes(T_est[:-1, :3, :3], 1, 2) @ T_est[1:, :3, :3]
    rel_true = np.swapaxes(R_true[:-1], 1, 2) @ R_true[1:]
    return rotation_angle_deg(rel_est @ np.swapaxes(rel_true, 1, 2))


@pytest.fixture(scope="module")
def turning(shared_data):
    """A camera turning in front of a real photo, 60 frames, 640x427, f = 560 px, through LENS."""
    R = smooth_rotations(60)
    K = view_K(*SIZE, 560.0)
    source = load_rgb(shared_data / "hand_images" / "hamer_test3.jpg")
    return distorted_views(rotation_render(source, 560.0), R, K, SIZE, LENS), K, R


def test_rendered_lens_puts_a_point_where_the_model_says():
    """The renderer itself: a blob drawn at an ideal pixel shows up at its distorted pixel."""
    K = view_K(*SIZE, 560.0)
    ideal = np.array([[60.0, 50.0], [320.0, 213.0], [590.0, 390.0]])

    def blobs(pose, Kc, size):
        v, u = np.mgrid[0:size[1], 0:size[0]].astype(np.float64)
        at = ideal + (Kc[:2, 2] - K[:2, 2])  # frame pixels -> canvas pixels
        img = sum(np.exp(-((u - a) ** 2 + (v - b) ** 2) / (2 * 2.0**2)) for a, b in at)
        return np.repeat((255 * img).astype(np.uint8)[..., None], 3, axis=2)

    frame = distorted_views(blobs, [None], K, SIZE, LENS)[0, ..., 0].astype(np.float64)
    expected = Intrinsics.from_K(K, *SIZE, "sidecar", LENS).image_pixels(ideal)
    v, u = np.mgrid[0:SIZE[1], 0:SIZE[0]]
    for eu, ev in expected:
        near = (np.hypot(u - eu, v - ev) < 12) * frame
        centroid = np.array([(near * u).sum(), (near * v).sum()]) / near.sum()
        np.testing.assert_allclose(centroid, [eu, ev], atol=0.3)
    assert np.hypot(*(expected[0] - ideal[0])) > 15  # the corner blob really moved (barrel: inwards)


def test_vo_with_the_lens_from_a_sidecar_is_exact_and_ignoring_it_is_not(turning):
    frames, K, R = turning
    given = run_vo(frames, Intrinsics.from_K(K, *SIZE, "sidecar", LENS))
    ignored = run_vo(frames, Intrinsics.from_K(K, *SIZE, "sidecar"))
    assert given.valid.all() and given.intrinsics.distortion == LENS
    err = pair_errors_deg(given.T_world_cam, R)
    end = rotation_angle_deg(given.T_world_cam[-1, :3, :3] @ R[-1].T)
    assert np.median(err) < 0.01 and err.max() < 0.05 and end < 0.05, (np.median(err), err.max(), end)
    np.testing.assert_allclose(given.T_world_cam[:, :3, 3], 0.0, atol=1e-12)  # a pure rotation
    assert given.processing["rotation_only_frames"] == 59
    # the pinhole model on the same frames: ~100x the per-pair error, and translation appears
    bad = pair_errors_deg(ignored.T_world_cam, R)
    assert np.median(bad) > 30 * np.median(err) and np.median(bad) > 0.1
    assert np.abs(ignored.T_world_cam[:, :3, 3]).max() > 0.01


def test_vo_without_sidecar_estimates_focal_and_k1(turning):
    frames, K, R = turning
    prior = Intrinsics.from_fov(*SIZE, 90.0)  # true hfov 59.5 deg
    track = run_vo(frames, prior)
    calib = track.processing["self_calibration"]
    assert track.intrinsics.source == "self_calibrated" and calib["reason"] is None
    assert abs(track.intrinsics.fx / K[0, 0] - 1) < 0.02, track.intrinsics.fx
    # k1 alone stands in for the lens's k1 + k2 (k2 is not estimated): close to the true -0.2 + the
    # part of k2 r^4 a k1 r^2 absorbs over the frame
    k1 = track.intrinsics.distortion.k1
    assert -0.22 < k1 < -0.15 and calib["k1"] == k1 and 0 < calib["k1_sigma"] < 0.02
    assert track.intrinsics.distortion.k2 == 0.0 and calib["distortion_reason"] is None
    err = pair_errors_deg(track.T_world_cam, R)
    end = rotation_angle_deg(track.T_world_cam[-1, :3, :3] @ R[-1].T)
    assert track.valid.all() and np.median(err) < 0.02 and end < 0.2, (np.median(err), end)
    np.testing.assert_allclose(track.T_world_cam[:, :3, 3], 0.0, atol=1e-12)


def test_vo_through_the_lens_in_a_translating_3d_scene(shared_data):
    """Textured planes at 2.5-6 m, sideways + forward motion: two-view, triangulation and PnP all run on
    undistorted pixels; with the lens the rotation is right, without it it drifts."""
    photos = shared_data / "hand_images"
    planes = textured_planes([load_rgb(photos / n) for n in ("hamer_test3.jpg", "hamer_test1.jpg",
                                                            "hamer_test2.jpg", "mediapipe_hand_thumb_up.jpg")])
    size, K = (320, 240), view_K(320, 240, 250.0)
    T = general_motion(40, 0.01)
    frames = distorted_views(lambda pose, Kc, sz: render_planes(planes, pose, Kc, sz), T, K, size, LENS)
    given = run_vo(frames, Intrinsics.from_K(K, *size, "sidecar", LENS))
    ignored = run_vo(frames, Intrinsics.from_K(K, *size, "sidecar"))
    assert given.valid.all() and given.processing["pnp_frames"] > 0
    end = rotation_angle_deg(given.T_world_cam[-1, :3, :3] @ T[-1, :3, :3].T)
    end_ignored = rotation_angle_deg(ignored.T_world_cam[-1, :3, :3] @ T[-1, :3, :3].T)
    assert end < 0.3 and end_ignored > 3 * end, (end, end_ignored)
    # the direction of travel (up to scale)
    t_est, t_true = given.T_world_cam[-1, :3, 3], T[-1, :3, 3]
    cos = t_est @ t_true / (np.linalg.norm(t_est) * np.linalg.norm(t_true))
    assert np.rad2deg(np.arccos(min(cos, 1.0))) < 3.0


def test_k1_from_exactly_rotating_rays_and_no_k1_for_a_pinhole():
    rng = np.random.default_rng(1)
    f, cx, cy, width = 410.0, 240.0, 160.0, 480
    px = np.stack([rng.uniform(0, 480, 250), rng.uniform(0, 320, 250)], axis=1)
    for k1 in (-0.2, 0.1, 0.0):
        lens = Distortion(k1)
        rays = np.column_stack([lens.undistort_normalised((px - [cx, cy]) / f), np.ones(len(px))])
        pairs = []
        for rv in ([0.05, 0.08, 0.0], [-0.07, 0.03, 0.01], [0.0, -0.09, 0.02]):
            turned = rays @ matrix_from_rotvec(np.array(rv)).T
            seen = lens.distort_normalised(turned[:, :2] / turned[:, 2:]) * f + [cx, cy]
            pairs.append((px, seen + rng.normal(0, 0.1, px.shape)))
        est = estimate_focal(pairs, width, cx, cy)
        assert est.reason is None and est.pairs_used == 3
        assert abs(est.focal_px / f - 1) < 0.005, (k1, est.focal_px)
        if k1:
            assert abs(est.k1 - k1) < 0.005 and est.k1_sigma < 0.005 and est.distortion_reason is None
        else:  # a pinhole stays a pinhole, and says why
            assert est.k1 is None and "not significant" in est.distortion_reason


@pytest.mark.parametrize("with_sidecar", [True, False], ids=["sidecar", "no sidecar"])
def test_extract_a_distorted_video_end_to_end(turning, tmp_path, with_sidecar):
    """The rendered lens video written as H.264 (real decode, MediaPipe hands, VO), then the dataset:
    the episode row carries the lens, the hands' 3D lands on their stored 2D through it."""
    import json

    import pyarrow.parquet as pq

    from dexhands_data.dataset.validate import validate_dataset
    from dexhands_data.dataset.writer import DatasetWriter
    from dexhands_data.pipelines.extract import ExtractProcessor
    from dexhands_data.sources.videos import VideosSource
    from egodex_fixtures import write_mp4

    frames, K, R = turning
    write_mp4(tmp_path / "lens.mp4", frames[:, :426])  # even height for H.264; K unchanged by the crop
    if with_sidecar:
        (tmp_path / "lens.mp4.intrinsics.json").write_text(json.dumps(
            {"fx": K[0, 0], "fy": K[1, 1], "cx": K[0, 2], "cy": K[1, 2], "k1": LENS.k1, "k2": LENS.k2}))
    ref = VideosSource().discover(str(tmp_path))[0]
    ep = ExtractProcessor(source="videos", camera="vo").__call__(ref)
    intr = ep.intrinsics
    if with_sidecar:
        assert intr.source == "sidecar" and intr.distortion == LENS
    else:
        assert intr.source == "self_calibrated" and -0.22 < intr.distortion.k1 < -0.15
        assert ep.camera.processing["self_calibration"]["k1"] == intr.distortion.k1
    err = pair_errors_deg(ep.camera.T_world_cam, R)
    assert ep.camera.valid.all() and np.median(err) < 0.02, np.median(err)
    hands = ep.hands
    assert hands.valid.any() and hands.processing["lift_distortion"] == intr.distortion.to_list()
    v = hands.valid
    on_2d = np.linalg.norm(intr.project(hands.keypoints_cam[v]) - hands.keypoints_2d[v], axis=-1)
    assert np.median(on_2d) < 1e-3, np.median(on_2d)
    root = tmp_path / "out"
    writer = DatasetWriter(root)
    writer.write_shard("videos", "train", "s0", [ep], "h")
    writer.finalize({"videos": {}})
    assert validate_dataset(root).ok
    row = pq.read_table(root / "meta/episodes.parquet").to_pylist()[0]
    assert row["distortion"] == intr.distortion.to_list() and row["intrinsics_source"] == intr.source
