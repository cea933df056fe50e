"""Aria source on the real fixtures: MPS trajectory/calibration/hand parsing against projectaria_tools,
time alignment (the fixture's quirks), the VRS RGB rotation + undistortion checked against the raw
pixels and gravity, and per-episode errors.
Fixtures: shared_data/aria_mps_sample, shared_data/aria_adt_vrs."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation, Slerp

from dexhands_data.geometry import se3
from dexhands_data.records import EpisodeError
from dexhands_data.sources import aria_mps
from dexhands_data.sources.aria import T_UPRIGHT_RAW, AriaSource

mps = pytest.importorskip("projectaria_tools.core.mps")
from projectaria_tools.core import calibration, data_provider  # noqa: E402

VRS_FRAME_TIMES_US = (87551170813, 87551204152, 87551237472)  # camera-rgb DEVICE_TIME of the ADT clip


@pytest.fixture(scope="module")
def mps_dir(shared_data) -> Path:
    return shared_data / "aria_mps_sample"


@pytest.fixture(scope="module")
def adt_dir(shared_data) -> Path:
    return shared_data / "aria_adt_vrs"


@pytest.fixture(scope="module")
def trajectory(mps_dir):
    return aria_mps.read_closed_loop_trajectory(mps_dir / "trajectory/closed_loop_trajectory.csv")


@pytest.fixture(scope="module")
def adt_episode(adt_dir):
    src = AriaSource()
    (ref,) = src.discover(str(adt_dir))
    return src.open(ref)


# ----------------------------------------------------------------------------- MPS parsing


def test_trajectory_matches_projectaria(mps_dir, trajectory):
    ref = mps.read_closed_loop_trajectory(str(mps_dir / "trajectory/closed_loop_trajectory.csv"))
    assert len(trajectory.times_s) == len(ref) == 11517
    want = np.stack([p.transform_world_device.to_matrix() for p in ref])
    np.testing.assert_allclose(trajectory.T_world_device(), want, atol=1e-12)
    ref_times = [p.tracking_timestamp.total_seconds() for p in ref]
    np.testing.assert_allclose(trajectory.times_s, ref_times, atol=1e-9)
    assert trajectory.span_s == pytest.approx((149.20261, 160.597999))
    # round trip through projectaria's SE3: T_world_rgb and a point world -> rgb camera -> world
    oc = mps.read_online_calibration(str(mps_dir / "trajectory/online_calibration.jsonl"))
    T_device_rgb = oc[0].get_camera_calib("camera-rgb").get_transform_device_camera()
    for i in (0, 5000, 11516):
        ours = trajectory.T_world_device(i)[0] @ T_device_rgb.to_matrix()
        theirs = (ref[i].transform_world_device @ T_device_rgb).to_matrix()
        np.testing.assert_allclose(ours, theirs, atol=1e-12)
        p_world = np.array([0.3, -1.2, 0.8])
        p_cam = (ref[i].transform_world_device @ T_device_rgb).inverse().to_matrix() @ np.append(p_world, 1)
        np.testing.assert_allclose((ours @ p_cam)[:3], p_world, atol=1e-12)


def test_trajectory_tolerates_missing_optional_columns(adt_dir):
    """ADT's aria_trajectory.csv has no geo/ECEF columns."""
    traj = aria_mps.read_closed_loop_trajectory(adt_dir / "aria_trajectory.csv")
    ref = mps.read_closed_loop_trajectory(str(adt_dir / "aria_trajectory.csv"))
    assert len(traj.times_s) == 6
    want = np.stack([p.transform_world_device.to_matrix() for p in ref])
    np.testing.assert_allclose(traj.T_world_device(), want, atol=1e-12)
    assert traj.quality[0] == pytest.approx(0.8366202971204001)


def test_slerp_interpolation_and_no_extrapolation(trajectory):
    ts = trajectory.times_s
    # at the pose times: exactly the poses
    T, ok = aria_mps.interpolate_poses(trajectory, ts[[0, 100, 11516]])
    assert ok.all()
    np.testing.assert_allclose(T, trajectory.T_world_device([0, 100, 11516]), atol=1e-12)
    # between poses: scipy's Slerp and linear translation
    q = ts[200] + 0.3 * (ts[201] - ts[200])
    T, ok = aria_mps.interpolate_poses(trajectory, np.array([q]))
    poses = trajectory.T_world_device(slice(200, 202))
    slerp = Slerp(ts[200:202], Rotation.from_matrix(poses[:, :3, :3]))
    np.testing.assert_allclose(T[0, :3, :3], slerp([q]).as_matrix()[0], atol=1e-12)
    np.testing.assert_allclose(T[0, :3, 3], 0.7 * poses[0, :3, 3] + 0.3 * poses[1, :3, 3], atol=1e-12)
    # outside the span (beyond 1 ms) and across a gap: invalid, identity
    T, ok = aria_mps.interpolate_poses(trajectory, np.array([ts[0] - 0.0005, ts[0] - 0.01, ts[-1] + 0.5]))
    assert ok.tolist() == [True, False, False]
    np.testing.assert_allclose(T[0], trajectory.T_world_device(0)[0], atol=1e-12)
    np.testing.assert_array_equal(T[1:], np.tile(np.eye(4), (2, 1, 1)))
    sparse = aria_mps.Trajectory("x", ts[[0, 5000]], trajectory.translation[[0, 5000]],
                                 trajectory.quat_xyzw[[0, 5000]], np.zeros(2))
    assert not aria_mps.interpolate_poses(sparse, np.array([ts[2500]]), max_gap_s=0.1)[1][0]


def test_online_calibration_quaternion_is_w_first(mps_dir):
    path = mps_dir / "trajectory/online_calibration.jsonl"
    times, calibs = aria_mps.read_online_calibration(path)
    ref = mps.read_online_calibration(str(path))
    assert len(calibs) == len(ref) == 122
    for c, r in zip(calibs, ref):
        rc = r.get_camera_calib("camera-rgb")
        T_ref = rc.get_transform_device_camera().to_matrix()
        np.testing.assert_allclose(c.T_device_camera, T_ref, atol=1e-12)
        np.testing.assert_allclose(c.params, rc.get_projection_params(), atol=0)
    # the JSON names the model "FisheyeRadTanThinPrism": projectaria's FISHEYE624
    # (f, cx, cy, k0-k5, p0-p1, s0-s3)
    c0 = calibs[0]
    assert (c0.width, c0.height, c0.model, len(c0.params)) == (2880, 2880, "FisheyeRadTanThinPrism", 15)
    assert str(ref[0].get_camera_calib("camera-rgb").get_model_name()).endswith("FISHEYE624")
    np.testing.assert_allclose(times, [r.tracking_timestamp.total_seconds() for r in ref], atol=1e-9)
    # reading the same four numbers as x, y, z, w would give a different rotation (the trap)
    import json

    cams = json.loads(path.read_text().splitlines()[0])["CameraCalibrations"]
    w, xyz = next(c for c in cams if c["Label"] == "camera-rgb")["T_Device_Camera"]["UnitQuaternion"]
    wrong = Rotation.from_quat([w, *xyz]).as_matrix()  # w-first numbers read as x, y, z, w
    assert np.abs(wrong - calibs[0].T_device_camera[:3, :3]).max() > 0.5


def test_hand_landmarks_remapped_to_mano_order(mps_dir):
    path = mps_dir / "hand_tracking/hand_tracking_results_v2.csv"
    ours = aria_mps.read_hand_tracking_results(path)
    ref = mps.hand_tracking.read_hand_tracking_results(str(path))
    assert ours.keypoints_device.shape == (8, 2, 21, 3) and ours.kind == "landmarks"
    for i, r in enumerate(ref):
        for h, hand in enumerate((r.left_hand, r.right_hand)):
            if hand is None:
                assert np.isnan(ours.keypoints_device[i, h]).all() and ours.confidence[i, h] == -1
                continue
            lm = np.asarray(hand.landmark_positions_device)
            for row, aria_id in enumerate(aria_mps.ARIA_TO_CANONICAL):
                if aria_id < 0:
                    assert np.isnan(ours.keypoints_device[i, h, row]).all()  # thumb CMC: no Aria landmark
                else:
                    np.testing.assert_allclose(ours.keypoints_device[i, h, row], lm[aria_id], atol=1e-9)
            # canonical wrist = Aria landmark 5 = translation of T_device_wrist
            wrist = hand.transform_device_wrist.translation()[0]
            np.testing.assert_allclose(ours.keypoints_device[i, h, 0], wrist, atol=1e-6)
            # index tip (canonical 8) is the landmark farthest along the index chain from the wrist
            chain = ours.keypoints_device[i, h, [5, 6, 7, 8]]
            assert np.all(np.diff(np.linalg.norm(chain - ours.keypoints_device[i, h, 0], axis=-1)) > 0)
    assert int((ours.confidence > 0).sum()) == 6  # rows with hands: left; both; both; right


@pytest.mark.noncommercial
def test_thumb_cmc_estimate_on_dexycb_ground_truth(shared_data):
    """The CMC coefficients reproduce DexYCB's MANO thumb CMC to ~9 mm (the figure in aria_mps)."""
    files = sorted((shared_data / "hand3d_gt/dexycb_nc").glob("*/*/labels_*.npz"))
    joints = np.stack([np.load(f)["joint_3d"][0] for f in files]).astype(np.float64)
    assert joints.shape == (48, 21, 3)
    err_mm = 1000 * np.linalg.norm(aria_mps.estimate_thumb_cmc(joints) - joints[:, 1], axis=-1)
    assert err_mm.mean() < 9.5 and err_mm.max() < 12.0
    bone_mm = 1000 * np.linalg.norm(joints[:, 1] - joints[:, 0], axis=-1)
    assert err_mm.mean() < 0.3 * bone_mm.mean()  # well under the wrist-CMC bone length (~37 mm)


# ----------------------------------------------------------------------------- time alignment


def test_hand_tracking_from_another_recording_fails_loudly(mps_dir, trajectory):
    hands = aria_mps.read_hand_tracking_results(mps_dir / "hand_tracking/hand_tracking_results_v2.csv")
    pattern = r"hand_tracking_results_v2.csv: .*1762.609-1817.200 s.*149.203-160.598 s: no overlap"
    with pytest.raises(EpisodeError, match=pattern):
        aria_mps.align_hands(hands, trajectory, np.arange(150.0, 151.0, 1 / 30), 0.05)


def test_wrist_rows_before_trajectory_are_invalid(mps_dir, trajectory, tmp_path):
    src = mps_dir / "hand_tracking/wrist_and_palm_poses_v2.csv"
    hands = aria_mps.read_wrist_and_palm_poses(src)
    assert hands.span_s == pytest.approx((148.502526, 160.602528)) and hands.kind == "wrist"
    frames = np.arange(148.5, 160.6, 1 / 30)
    aligned = aria_mps.align_hands(hands, trajectory, frames, tolerance_s=0.05)
    before = frames < trajectory.span_s[0]
    assert not aligned.valid[before].any()
    nearest = aria_mps.nearest_within(hands.times_s, frames, 0.05)
    t_row = hands.times_s[nearest]
    n_before = int(np.sum(t_row < trajectory.span_s[0] - 1e-3))  # rows 148.50-149.10 s
    n_after = int(np.sum(t_row > trajectory.span_s[1] + 1e-3))  # the last row, 160.6025 s > 160.598 s
    assert (n_before, n_after) == (20, 1)
    assert aligned.dropped["sample_outside_trajectory"] == n_before + n_after
    # the six tracked rows (right hand, 159.40-159.90 s) appear, confidence kept, wrist only
    right = aligned.valid[:, 1]
    assert not aligned.valid[:, 0].any()
    t_right = frames[right]
    assert t_right.min() > 159.35 and t_right.max() < 159.95
    i = int(np.argmin(np.abs(frames - 159.402529)))
    assert aligned.confidence[i, 1] == pytest.approx(0.996126)
    assert aligned.keypoints_device[i, 1, 0, 0] == pytest.approx(0.244013)
    assert np.isnan(aligned.keypoints_device[i, 1, 1:]).all()
    # a tracked hand before the trajectory starts is dropped, not extrapolated
    rows = list(csv.reader(src.open()))
    rows[1][1], rows[1][2:5] = "0.9", ["0.1", "0.2", "0.3"]
    patched = tmp_path / "wrist_and_palm_poses.csv"
    with patched.open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    early = aria_mps.read_wrist_and_palm_poses(patched)
    aligned = aria_mps.align_hands(early, trajectory, np.array([148.5026]), 0.05)
    assert not aligned.valid.any() and aligned.dropped["sample_outside_trajectory"] == 1


def test_nearest_within_tolerance():
    queries = np.array([-0.06, -0.04, 0.049, 0.051, 0.26, 0.3])
    idx = aria_mps.nearest_within(np.array([0.0, 0.1, 0.2]), queries, 0.05)
    assert idx.tolist() == [-1, 0, 0, 1, -1, -1]


# ----------------------------------------------------------------------------- VRS episode


def test_adt_episode_intrinsics_and_rotation(adt_episode, adt_dir):
    ep = adt_episode
    assert ep.num_frames == 3 and ep.fps == pytest.approx(30.0, rel=1e-3)
    f_fisheye = 610.9410078676575
    assert ep.intrinsics.to_list() == pytest.approx([f_fisheye * 1024 / 1408] * 2 + [511.5, 511.5])
    assert (ep.intrinsics.width, ep.intrinsics.height, ep.intrinsics.source) == (1024, 1024, "calibration")
    np.testing.assert_array_equal(ep.T_opencv_source, T_UPRIGHT_RAW)
    # T_world_cam @ T_opencv_source is Aria's own T_world_rgb = T_world_device(t) @ T_device_rgb
    provider = data_provider.create_vrs_data_provider(str(adt_dir / "video.vrs"))
    fisheye = provider.get_device_calibration().get_camera_calib("camera-rgb")
    rotated = calibration.rotate_camera_calib_cw90deg(fisheye)
    traj = mps.read_closed_loop_trajectory(str(adt_dir / "aria_trajectory.csv"))
    assert ep.camera.valid.all()  # frame 0 is 0.1 ms before the first pose: within the 1 ms edge tolerance
    t_pose = np.array([p.tracking_timestamp.total_seconds() for p in traj])
    T_pose = np.stack([p.transform_world_device.to_matrix() for p in traj])
    t_frames = np.clip(np.array(VRS_FRAME_TIMES_US) * 1e-6, t_pose[0], t_pose[-1])
    R_wd = Slerp(t_pose, Rotation.from_matrix(T_pose[:, :3, :3]))(t_frames).as_matrix()
    t_wd = np.stack([np.interp(t_frames, t_pose, T_pose[:, j, 3]) for j in range(3)], axis=1)
    T_wd = se3(R_wd, t_wd)
    np.testing.assert_allclose(ep.camera.T_world_cam @ ep.T_opencv_source,
                               T_wd @ fisheye.get_transform_device_camera().to_matrix(), atol=1e-6)
    T_device_upright = rotated.get_transform_device_camera().to_matrix()
    np.testing.assert_allclose(ep.camera.T_world_cam, T_wd @ T_device_upright, atol=1e-6)
    # physical check of the upright rotation: image-down points along gravity (ADT world: gravity -y),
    # image-right is horizontal
    g = np.array([0.0, -1.0, 0.0])
    assert np.all(ep.camera.T_world_cam[:, :3, 1] @ g > 0.85)
    assert np.all(np.abs(ep.camera.T_world_cam[:, :3, 0] @ g) < 0.05)
    assert ep.camera.world_frame == "mps_world" and ep.camera.translation_metric
    assert not ep.hands.valid.any() and ep.extra["hand_tracking"] is None


def test_target_fps_subsamples_frames_and_poses(adt_episode, adt_dir):
    src = AriaSource(target_fps=15.0)
    (ref,) = src.discover(str(adt_dir))
    ep = src.open(ref)
    assert ep.num_frames == 2 and ep.fps == 15.0
    np.testing.assert_allclose(ep.camera.T_world_cam, adt_episode.camera.T_world_cam[[0, 2]], atol=1e-12)
    frames = list(ep.frames())
    assert [(f.index, f.source_index) for f in frames] == [(0, 0), (1, 2)]
    dt = (VRS_FRAME_TIMES_US[2] - VRS_FRAME_TIMES_US[0]) * 1e-6
    assert frames[1].timestamp == pytest.approx(dt, abs=1e-6)


def _resample_raw(raw: np.ndarray, pinhole_uv: np.ndarray, K: np.ndarray, fisheye, upright_from_raw):
    """Colours of the raw (stored, rotated) fisheye image along the rays of pinhole pixels."""
    rays = np.linalg.solve(K, np.vstack([pinhole_uv.T, np.ones(len(pinhole_uv))])).T
    rays_raw = rays @ upright_from_raw[:3, :3]  # p_raw = R^T p_upright
    px = np.array([fisheye.project(r) for r in rays_raw], dtype=object)
    keep = np.array([p is not None for p in px])
    pts = np.stack([np.asarray(p, float).ravel() for p in px[keep]]).astype(np.float32)
    sampled = cv2.remap(raw, pts[:, 0:1], pts[:, 1:2], cv2.INTER_LINEAR).reshape(-1, 3)
    return sampled.astype(float), keep


def test_undistorted_pixels_match_raw_fisheye_rays(adt_episode, adt_dir):
    """Each pinhole pixel shows what the stored fisheye image shows along the same ray: checks the
    cw rotation, the stated intrinsics and T_opencv_source against real pixels."""
    frame = next(iter(adt_episode.frames()))
    assert frame.image.shape == (1024, 1024, 3) and frame.timestamp == 0.0
    provider = data_provider.create_vrs_data_provider(str(adt_dir / "video.vrs"))
    stream = provider.get_stream_id_from_label("camera-rgb")
    raw = provider.get_image_data_by_index(stream, 0)[0].to_numpy_array()
    fisheye = provider.get_device_calibration().get_camera_calib("camera-rgb")
    ticks = np.arange(150, 900, 25)
    grid = np.stack(np.meshgrid(ticks, ticks), -1).reshape(-1, 2).astype(float)
    K = adt_episode.intrinsics.K
    ours = frame.image[grid[:, 1].astype(int), grid[:, 0].astype(int)].astype(float)
    sampled, keep = _resample_raw(raw, grid, K, fisheye, adt_episode.T_opencv_source)
    err = np.abs(ours[keep] - sampled).mean()
    assert keep.mean() > 0.95 and err < 4.0, err
    # the opposite rotation (ccw) gives a clearly different picture
    ccw = se3(adt_episode.T_opencv_source[:3, :3].T, np.zeros(3))
    sampled_ccw, keep_ccw = _resample_raw(raw, grid, K, fisheye, ccw)
    assert np.abs(ours[keep_ccw] - sampled_ccw).mean() > 5 * err


def _recording(
    tmp_path: Path, adt_dir: Path, trajectory: Path, hands: Path | None = None, hands_name: str = ""
) -> Path:
    rec = tmp_path / "rec"
    (rec / "mps/slam").mkdir(parents=True)
    (rec / "recording.vrs").symlink_to(adt_dir / "video.vrs")
    (rec / "mps/slam/closed_loop_trajectory.csv").symlink_to(trajectory)
    if hands is not None:
        (rec / "mps/hand_tracking").mkdir(parents=True)
        (rec / "mps/hand_tracking" / hands_name).symlink_to(hands)
    return tmp_path


def _open_single(root: Path):
    src = AriaSource()
    (ref,) = src.discover(str(root))
    return src.open(ref)


def test_hands_in_episode_project_like_projectaria(tmp_path, adt_dir, mps_dir):
    """Real hand-tracking rows re-timed to the ADT frames (the sample's own recording has no VRS)."""
    rows = list(csv.reader((mps_dir / "hand_tracking/hand_tracking_results_v2.csv").open()))
    for row, t in zip(rows[1:4], VRS_FRAME_TIMES_US):
        row[0] = str(t)
    hand_csv = tmp_path / "hand_tracking_results.csv"
    with hand_csv.open("w", newline="") as f:
        csv.writer(f).writerows(rows[:4])
    root = _recording(tmp_path / "ds", adt_dir, adt_dir / "aria_trajectory.csv", hand_csv,
                      "hand_tracking_results.csv")
    ep = _open_single(root)
    assert ep.ref.episode_id == "rec/recording"
    assert ep.hands.valid.tolist() == [[True, False], [True, True], [True, True]]
    assert ep.hands.estimator == "ground_truth:aria" and ep.extra["hand_tracking_kind"] == "landmarks"
    samples = aria_mps.read_hand_tracking_results(hand_csv)
    provider = data_provider.create_vrs_data_provider(str(adt_dir / "video.vrs"))
    fisheye = provider.get_device_calibration().get_camera_calib("camera-rgb")
    rotated = calibration.rotate_camera_calib_cw90deg(fisheye)
    pinhole = calibration.get_linear_camera_calibration(1024, 1024, ep.intrinsics.fx, "camera-rgb",
                                                        rotated.get_transform_device_camera())
    T_cam_device = rotated.get_transform_device_camera().inverse().to_matrix()
    compared = 0
    for i in range(3):
        for h in range(2):
            if not ep.hands.valid[i, h]:
                assert np.isnan(ep.hands.keypoints_cam[i, h]).all() and np.all(ep.hands.confidence[i, h] == 0)
                continue
            kp_device = samples.keypoints_device[i, h].copy()
            assert np.isnan(kp_device[1]).all()  # Aria has no thumb CMC: estimated, confidence 0
            kp_device[1] = aria_mps.estimate_thumb_cmc(kp_device)
            want = kp_device @ T_cam_device[:3, :3].T + T_cam_device[:3, 3]
            np.testing.assert_allclose(ep.hands.keypoints_cam[i, h], want, atol=1e-6)
            assert ep.hands.confidence[i, h, 1] == 0
            others = np.delete(ep.hands.confidence[i, h], 1)
            np.testing.assert_allclose(others, samples.confidence[i, h], rtol=1e-6)
            for k in (0, 4, 8, 20):
                uv = pinhole.project(want[k].astype(np.float64))
                if uv is not None:
                    got = ep.hands.keypoints_2d[i, h, k]
                    np.testing.assert_allclose(got, np.asarray(uv).ravel(), atol=1e-3)
                    compared += 1
    assert compared >= 12


def test_online_calibration_used_when_present(tmp_path, adt_dir, mps_dir):
    """MPS online calibration (real sample records re-timed onto the ADT clip) replaces the factory one:
    the 2880 px calibration is rescaled to the 1408 px stream, and its T_device_rgb is used."""
    import json

    lines = (mps_dir / "trajectory/online_calibration.jsonl").read_text().splitlines()
    shift_us = VRS_FRAME_TIMES_US[0] - json.loads(lines[0])["tracking_timestamp_us"]
    retimed = []
    for line in lines[:5]:  # 10 Hz records: 0.4 s around the clip
        rec = json.loads(line)
        rec["tracking_timestamp_us"] += shift_us
        retimed.append(json.dumps(rec))
    online = tmp_path / "online_calibration.jsonl"
    online.write_text("\n".join(retimed) + "\n")
    root = _recording(tmp_path / "ds", adt_dir, adt_dir / "aria_trajectory.csv")
    (root / "rec/mps/slam/online_calibration.jsonl").symlink_to(online)
    ep = _open_single(root)
    # the record nearest the clip's middle (87551.204 s) is the first one, 87551.1708 s
    assert ep.extra["rgb_calibration"]["source"] == "mps_online_calibration@87551.170813s"
    rgb = mps.read_online_calibration(str(online))[0].get_camera_calib("camera-rgb")
    assert ep.intrinsics.fx == pytest.approx(rgb.get_focal_lengths()[0] * 1024 / 2880)
    online_upright = calibration.rotate_camera_calib_cw90deg(rgb.rescale(np.array([1408, 1408]), 1408 / 2880))
    provider = data_provider.create_vrs_data_provider(str(adt_dir / "video.vrs"))
    factory_upright = calibration.rotate_camera_calib_cw90deg(
        provider.get_device_calibration().get_camera_calib("camera-rgb"))
    factory = AriaSource(calibration="factory").open(ep.ref)
    assert factory.extra["rgb_calibration"]["source"] == "vrs_device_calibration"
    # the same device trajectory either way: only T_device_rgb differs
    T_cd_online = online_upright.get_transform_device_camera().inverse().to_matrix()
    T_cd_factory = factory_upright.get_transform_device_camera().inverse().to_matrix()
    T_wd_online, T_wd_factory = ep.camera.T_world_cam @ T_cd_online, factory.camera.T_world_cam @ T_cd_factory
    np.testing.assert_allclose(T_wd_online, T_wd_factory, atol=1e-9)
    assert np.abs(ep.camera.T_world_cam - factory.camera.T_world_cam).max() > 1e-4
    # the sample's own (un-shifted) records are from another time: fail loudly
    link = root / "rec/mps/slam/online_calibration.jsonl"
    link.unlink()
    link.symlink_to(mps_dir / "trajectory/online_calibration.jsonl")
    with pytest.raises(EpisodeError, match=r"online_calibration.jsonl: calibration records cover device time "
                                           r"148.503-160.603 s .* no overlap"):
        _open_single(root)


# ----------------------------------------------------------------------------- bad input


def test_bad_recordings_fail_per_episode(tmp_path, adt_dir, mps_dir):
    # hand tracking of another recording: fails loudly
    root = _recording(tmp_path / "a", adt_dir, adt_dir / "aria_trajectory.csv",
                      mps_dir / "hand_tracking/hand_tracking_results_v2.csv", "hand_tracking_results.csv")
    with pytest.raises(EpisodeError, match="hand_tracking_results.csv: .*no overlap"):
        _open_single(root)
    # trajectory not covering the video at all
    root = _recording(tmp_path / "b", adt_dir, mps_dir / "trajectory/closed_loop_trajectory.csv")
    with pytest.raises(EpisodeError, match=r"closed_loop_trajectory.csv: trajectory covers device time "
                                           r"149.203-160.598 s "
                                           r"but recording.vrs frames span 87551.171-87551.237 s"):
        _open_single(root)
    # no trajectory
    (tmp_path / "c/rec").mkdir(parents=True)
    (tmp_path / "c/rec/recording.vrs").symlink_to(adt_dir / "video.vrs")
    with pytest.raises(EpisodeError, match="rec: no closed-loop trajectory"):
        _open_single(tmp_path / "c")
    # unreadable VRS
    (tmp_path / "d/rec/mps/slam").mkdir(parents=True)
    (tmp_path / "d/rec/broken.vrs").write_bytes(b"\x00garbage" * 64)
    (tmp_path / "d/rec/mps/slam/closed_loop_trajectory.csv").symlink_to(adt_dir / "aria_trajectory.csv")
    with pytest.raises(EpisodeError, match="broken.vrs: unreadable VRS"):
        _open_single(tmp_path / "d")
    # NaN pose in the trajectory: named with its row
    lines = (adt_dir / "aria_trajectory.csv").read_text().splitlines()
    cells = lines[3].split(",")
    cells[3] = "nan"
    lines[3] = ",".join(cells)
    (tmp_path / "nan.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(EpisodeError, match="nan.csv: non-finite translation in data row 3"):
        aria_mps.read_closed_loop_trajectory(tmp_path / "nan.csv")
    with pytest.raises(ValueError, match="no \\*.vrs"):
        AriaSource().discover(str(mps_dir))


def test_remap_tables_reproduce_projectaria_undistortion(adt_episode, adt_dir):
    """Our cached cv2.remap tables give projectaria's own distort_by_calibration image (rounding apart)."""
    provider = data_provider.create_vrs_data_provider(str(adt_dir / "video.vrs"))
    stream = provider.get_stream_id_from_label("camera-rgb")
    raw = provider.get_image_data_by_index(stream, 2)[0].to_numpy_array()
    fisheye = provider.get_device_calibration().get_camera_calib("camera-rgb")
    rotated = calibration.rotate_camera_calib_cw90deg(fisheye)
    pinhole = calibration.get_linear_camera_calibration(1024, 1024, adt_episode.intrinsics.fx, "camera-rgb",
                                                        rotated.get_transform_device_camera())
    want = calibration.distort_by_calibration(np.ascontiguousarray(np.rot90(raw, -1)), pinhole, rotated)
    ours = list(adt_episode.frames())[2].image
    diff = np.abs(ours.astype(int) - want.astype(int))
    assert diff.mean() < 1.0 and np.percentile(diff, 99.9) <= 1 and diff.max() <= 4
