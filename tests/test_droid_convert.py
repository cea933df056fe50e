"""Readers + processor on DROID-layout fixtures built from the real crowndata episode."""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from dexhands_data.sources.droid.readers import detect_layout, discover
from dexhands_data.geometry import se3_inverse
from dexhands_data.images import decode_jpeg
from dexhands_data.records import EpisodeError
from dexhands_data.pipelines.convert_droid import DroidInput, DroidSettings, droid_extract_settings
from dexhands_data.pipelines.extract import ExtractProcessor
from droid_fixtures import (
    RAW_UUID,
    SERIALS,
    load_episode,
    write_lerobot_v21,
    write_lerobot_v30,
    write_raw_episode,
)

OK_ID = "RAIL+success+2023-04-17+Mon_Apr_17_14-48-05_2023"


def DroidProcessor(**settings) -> ExtractProcessor:
    """The extract pipeline's processor with ``dexdata convert-droid``'s settings (source ``droid``)."""
    return ExtractProcessor(**asdict(droid_extract_settings(DroidInput(""), DroidSettings(**settings))))


def _images(ep) -> list[bytes] | None:
    return None if ep.images is None else [ep.images[i] for i in range(len(ep.images))]


@pytest.fixture(scope="module")
def episode(shared_data):
    return load_episode(shared_data)


@pytest.fixture(scope="module")
def layouts(episode, tmp_path_factory):
    root = tmp_path_factory.mktemp("droid")
    write_raw_episode(root / "raw", episode)
    write_raw_episode(root / "raw", episode.reversed(),
                      rel="RAIL/failure/2023-04-17/Mon_Apr_17_15:00:00_2023",
                      uuid="RAIL+ffff0000+2023-04-17-15h-00m-00s", left_camera="ext2")
    write_lerobot_v21(root / "v21", [episode, episode.reversed()])
    write_lerobot_v30(root / "v30", [episode, episode.reversed()])
    return root


def _convert(root, mode="dexwm-official", **kwargs):
    refs = discover(root)
    proc = DroidProcessor(pseudo_hand=mode, **kwargs)
    return {r.episode_id: proc(r) for r in refs}


def _same_rows(a, b):
    assert len(a) == len(b)
    np.testing.assert_array_equal(a.hands.keypoints_cam, b.hands.keypoints_cam)
    np.testing.assert_array_equal(a.hands.keypoints_2d, b.hands.keypoints_2d)
    np.testing.assert_array_equal(a.hands.valid, b.hands.valid)
    np.testing.assert_array_equal(a.camera.T_world_cam, b.camera.T_world_cam)
    np.testing.assert_array_equal(a.gripper, b.gripper)
    np.testing.assert_array_equal(a.timestamps, b.timestamps)
    np.testing.assert_array_equal(a.source_frame_index, b.source_frame_index)
    assert a.intrinsics == b.intrinsics and a.task == b.task
    assert _images(a) == _images(b)


@pytest.mark.parametrize("mode", ["dexwm-official", "oriented"])
def test_all_layouts_give_identical_rows(layouts, mode):
    assert [detect_layout(layouts / k) for k in ("raw", "v21", "v30")] == ["raw", "lerobot", "lerobot"]
    raw = _convert(layouts / "raw", mode)
    v21 = _convert(layouts / "v21", mode)
    v30 = _convert(layouts / "v30", mode)
    ok = raw[OK_ID]
    _same_rows(ok, v21["episode_000000"])
    _same_rows(ok, v30["episode_000000"])
    # the second v3.0 episode is read from its span of the shared parquet / mp4
    _same_rows(v21["episode_000001"], v30["episode_000001"])
    assert ok.extra["pseudo_hand"] == mode and ok.extra["camera"] == "ext1"
    assert ok.embodiment == "parallel_gripper" and ok.task == "Put the marker in the pot"


def test_rows_follow_the_data_contract(layouts, episode):
    data = _convert(layouts / "raw", "oriented")
    ok = data[OK_ID]
    n = 166
    np.testing.assert_allclose(ok.timestamps, np.arange(n) / 15.0)  # 15 Hz, not the export's "10 Hz"
    assert ok.fps == 15.0 and ok.camera.static and ok.camera.translation_metric
    assert ok.camera.world_frame == "robot_base" and ok.camera.valid.all()
    assert np.all(ok.camera.T_world_cam == ok.camera.T_world_cam[0])  # camera motion exactly zero
    np.testing.assert_array_equal(ok.T_opencv_source, np.eye(4))
    assert ok.hands.valid[:, 0].sum() == 0 and ok.hands.valid[:, 1].all()
    assert np.isnan(ok.hands.keypoints_cam[:, 0]).all()  # the left hand is missing, never zeros
    np.testing.assert_array_equal(ok.gripper, episode.gripper.astype(np.float32))
    assert ok.intrinsics.source == "default" and (ok.intrinsics.width, ok.intrinsics.height) == (88, 50)
    first = decode_jpeg(ok.images[0])
    assert first.shape == (224, 394, 3)  # short side 224 from 88x50
    # the failure episode names ext2 as left_mp4_path: the released choice follows it
    other = data["RAIL+failure+2023-04-17+Mon_Apr_17_15-00-00_2023"]
    assert other.extra["camera"] == "ext2" and other.extra["camera_serial"] == SERIALS["ext2"]


def _dexwm_pose(ep, k0, k):
    """44x3 pose of the released code from our stored rows: invalid hands -> 0, world-frame camera."""
    T0_inv = se3_inverse(ep.camera.T_world_cam[k0])
    Tk = ep.camera.T_world_cam[k]
    pose = np.zeros((44, 3))
    for h in range(2):
        if ep.hands.valid[k, h]:
            kp = ep.hands.keypoints_cam[k, h].astype(np.float64)
            world = kp @ Tk[:3, :3].T + Tk[:3, 3]
            pose[21 * h:21 * h + 21] = world @ T0_inv[:3, :3].T + T0_inv[:3, 3]
    pose[42] = Tk[:3, 3]
    pose[43] = Rotation.from_matrix(Tk[:3, :3]).as_euler("xyz")
    return pose


def test_official_poses_and_actions_match_hand_computation(layouts, episode):
    ep = _convert(layouts / "raw")[OK_ID]
    window = [10, 40, 62, 65, 70, 100, 139, 140, 165]  # across the 0.5 gripper switch both ways
    ext = episode.extrinsics["ext1"]
    rx, ry, rz = ext[3:]
    Rx = np.array([[1, 0, 0], [0, np.cos(rx), -np.sin(rx)], [0, np.sin(rx), np.cos(rx)]])
    Ry = np.array([[np.cos(ry), 0, np.sin(ry)], [0, 1, 0], [-np.sin(ry), 0, np.cos(ry)]])
    Rz = np.array([[np.cos(rz), -np.sin(rz), 0], [np.sin(rz), np.cos(rz), 0], [0, 0, 1]])
    R_base_cam, t_base_cam = Rz @ Ry @ Rx, ext[:3]
    expected = []
    for k in window:
        pose = np.zeros((44, 3))
        c = episode.cartesian[k, :3]
        radii = (0.03, 0.04, 0.035, 0.03) if episode.gripper[k] >= 0.5 else (0.03, 0.04, 0.05, 0.06)
        points = [c]
        for i in range(5):
            for r in radii:
                a = 2 * np.pi * i / 5
                points.append(c + r * np.array([np.cos(a), np.sin(a), 0.0]))
        for row, p in enumerate(points):
            pose[21 + row] = R_base_cam.T @ (p - t_base_cam)
        pose[42] = t_base_cam
        pose[43] = ext[3:]
        expected.append(pose)
    expected = np.array(expected)
    got = np.array([_dexwm_pose(ep, window[0], k) for k in window])
    np.testing.assert_allclose(got, expected, atol=2e-7)
    np.testing.assert_array_equal(got[:, :21], 0.0)
    actions = np.diff(got, axis=0)
    actions[:, 43] = np.mod(actions[:, 43], 2 * np.pi)
    actions = actions.reshape(len(window) - 1, 132)
    hand_actions = np.diff(expected, axis=0).reshape(len(window) - 1, 132)
    np.testing.assert_allclose(actions, hand_actions, atol=4e-7)
    np.testing.assert_array_equal(actions[:, 126:], 0.0)  # static exterior camera: exact zeros
    # the switch 0.493 -> 0.714 between frames 65 and 70 changes radius 2 from 0.05 to 0.035
    g = episode.gripper
    assert g[65] < 0.5 <= g[70]


def test_filters_success_ids_and_keep_ranges(layouts, tmp_path):
    raw = layouts / "raw"
    assert len(discover(raw)) == 2
    assert [r.metadata["success"] for r in discover(raw, success_only=True)] == [True]
    assert [r.episode_id for r in discover(raw, episode_ids=[RAW_UUID])] == [
        OK_ID]
    assert [r.episode_id for r in discover(layouts / "v30", episode_ids=["1"])] == ["episode_000001"]
    assert [r.episode_id for r in discover(layouts / "v21", success_only=True)] == ["episode_000000"]
    keep = tmp_path / "keep_ranges_1_0_1.json"
    folder = "gs://gresearch/robotics/droid_raw/1.0.1/RAIL/success/2023-04-17/Mon_Apr_17_14:48:05_2023"
    key = f"{folder}/recordings/MP4--{folder}/trajectory.h5"
    keep.write_text(json.dumps({key: [[5, 20], [60, 70]], "episode_000001": [[0, 3]]}))
    refs = {r.metadata["success"]: r for r in discover(raw, keep_ranges_path=str(keep))}
    assert refs[False].metadata["keep_ranges"] is None  # not listed: all steps
    ep = DroidProcessor(pseudo_hand="oriented")(refs[True])
    expected = np.r_[5:20, 60:70]
    np.testing.assert_array_equal(ep.source_frame_index, expected)
    np.testing.assert_allclose(ep.timestamps, expected / 15.0)
    full = DroidProcessor(pseudo_hand="oriented")(discover(raw, success_only=True)[0])
    np.testing.assert_array_equal(ep.hands.keypoints_cam, full.hands.keypoints_cam[expected])
    assert _images(ep) == [full.images[i] for i in expected]
    v21 = discover(layouts / "v21", keep_ranges_path=str(keep))
    assert v21[1].metadata["keep_ranges"] == [[0, 3]]


def test_wrist_camera_follows_the_end_effector(layouts, episode):
    ep = _convert(layouts / "raw", "oriented", camera="wrist")[OK_ID]
    assert not ep.camera.static
    assert len({tuple(np.round(T[:3, 3], 6)) for T in ep.camera.T_world_cam}) > 100
    # the camera is rigidly mounted: the end-effector point sits at the same camera coordinates
    expected = np.tile([0.0, 0.07, 0.04], (166, 1))
    np.testing.assert_allclose(ep.hands.keypoints_cam[:, 1, 0], expected, atol=2e-6)


def test_calibration_intrinsics_are_used(layouts, tmp_path):
    calib = tmp_path / "intrinsics.json"
    calib.write_text(json.dumps({RAW_UUID: {SERIALS["ext1"]: [740.0, 630.0, 742.0, 350.0]}}))
    ep = _convert(layouts / "raw", "oriented", calibration=str(calib))[
        OK_ID]
    assert ep.intrinsics.source == "calibration"
    assert ep.intrinsics.fx == pytest.approx(740.0 * 88 / 1280)
    assert ep.intrinsics.fy == pytest.approx(742.0 * 50 / 720)


def test_invalid_settings_raise():
    with pytest.raises(ValueError):
        DroidProcessor(pseudo_hand="flat")
    with pytest.raises(ValueError):
        DroidProcessor(camera="ext3")


def test_lerobot_missing_column_is_an_episode_error(layouts, tmp_path):
    import pyarrow.parquet as pq
    import shutil

    root = tmp_path / "v21"
    shutil.copytree(layouts / "v21", root)
    data = root / "data" / "chunk-000" / "episode_000000.parquet"
    table = pq.read_table(data)
    pq.write_table(table.drop(["observation.state.gripper_position"]), data)
    ref = discover(root)[0]
    reason = "episode_000000.parquet: missing column observation.state.gripper_position"
    with pytest.raises(EpisodeError, match=reason):
        DroidProcessor()(ref)


def test_pseudo_hand_behind_the_camera_is_marked_missing(episode, tmp_path):
    """A camera above the workspace looking up sees none of the pseudo-hand: every frame is missing."""
    from dataclasses import replace

    from droid_fixtures import look_at_extrinsics

    up = look_at_extrinsics((0.5, 0.1, 1.0), (0.5, 0.2, 2.0))
    write_raw_episode(tmp_path, replace(episode, extrinsics={"ext1": up, "ext2": up}))
    ep = DroidProcessor(embed_frames=False)(discover(tmp_path)[0])
    assert not ep.hands.valid.any() and ep.hands.processing == {"behind_camera_frames": 166}
    assert np.isnan(ep.hands.keypoints_cam).all() and np.isnan(ep.hands.keypoints_2d).all()


def test_lerobot_v21_reader_on_a_real_info_json(shared_data, tmp_path):
    """The v2.1 reader on a real LeRobot v2.1 ``meta/info.json`` (RoboCOIN, a humanoid port, not DROID):
    its path templates, chunk size and fps are read as the port wrote them, none of its cameras is taken
    for a DROID camera, and an episode with the port's own state columns fails naming the missing one."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from dexhands_data.sources.droid.readers import read_episode

    info = json.loads((shared_data / "lerobot_v21_meta_robocoin" / "info.json").read_text())
    root = tmp_path / "robocoin"
    (root / "meta").mkdir(parents=True)
    (root / "meta" / "info.json").write_text(json.dumps(info))
    (root / "meta" / "episodes.jsonl").write_text("".join(
        json.dumps({"episode_index": i, "tasks": ["place the plastic bowl"], "length": 4}) + "\n" for i in (0, 37)))
    n = 4
    first = root / info["data_path"].format(episode_chunk=0, episode_index=0)
    first.parent.mkdir(parents=True)
    pq.write_table(pa.table({
        "observation.state": pa.array(np.zeros((n, 30), np.float32).tolist(), pa.list_(pa.float32(), 30)),
        "episode_index": pa.array(np.zeros(n, np.int64)), "frame_index": pa.array(np.arange(n, dtype=np.int64)),
    }), first)

    assert detect_layout(root) == "lerobot"
    refs = discover(root)
    assert [r.relpath for r in refs] == ["data/chunk-000/episode_000000.parquet",
                                         "data/chunk-000/episode_000037.parquet"]  # 37 // chunks_size 39 = 0
    assert [r.metadata["episode_index"] for r in refs] == [0, 37]
    for r in refs:
        assert r.metadata["layout"] == "lerobot_v2.1" and r.metadata["fps"] == 30.0
        assert r.metadata["videos"] == {}  # observation.images.ego_view is not a DROID camera
        assert r.metadata["success"] is None
    with pytest.raises(EpisodeError, match="episode_000000.parquet: missing column observation.state.cartesian"):
        read_episode(refs[0])
    with pytest.raises(EpisodeError, match="episode_000037.parquet: cannot read parquet"):
        read_episode(refs[1])
