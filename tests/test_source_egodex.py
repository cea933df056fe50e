"""EgoDex source: layout, joint map, camera axes (checked against drawn pixels), intrinsics, confidences,
task text, dexwm-official rows, and per-episode errors. Fixtures: tests/egodex_fixtures.py (synthetic,
physically consistent; no real EgoDex file may be shared)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from dexhands_data.actions import dexwm_official_actions, dexwm_official_poses
from dexhands_data.geometry import se3_inverse
from dexhands_data.keypoints import BONES, CAMERA_POSITION_ROW, CAMERA_ROTATION_ROW
from dexhands_data.records import EpisodeError
from dexhands_data.sources.egodex import JOINTS_21, EgoDexSource, task_description

from egodex_fixtures import T_CV_ARKIT, draw_frames, hand_template, write_egodex_episode, write_mp4


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """part1/stack_cups/0: OpenCV axes, full K, confidences. test/pour_water/3: ARKit axes, empty K, none."""
    root = tmp_path_factory.mktemp("egodex")
    a = write_egodex_episode(root, "part1", "stack_cups", 0)
    b = write_egodex_episode(root, "test", "pour_water", 3, axes="arkit", intrinsic="empty",
                             confidences=False,
                             attrs={"task": "pour_water", "llm_type": "irreversible",
                                    "llm_description": "Pour water into the glass."})
    return root, a, b


def _open(root: Path, episode_id: str, **kw):
    src = EgoDexSource(**kw)
    ref = next(r for r in src.discover(str(root)) if r.episode_id == episode_id)
    return src.open(ref)


def _disc_centroids(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres (u, v) of the red (left wrist) and blue (right wrist) discs drawn by the fixture."""
    r, g, b = (image[..., i].astype(int) for i in range(3))
    out = []
    for mask in ((r > 170) & (g < 70) & (b < 70), (b > 170) & (r < 70) & (g < 70)):
        v, u = np.nonzero(mask)
        assert len(u) > 200, "disc not found"
        out.append(np.array([u.mean(), v.mean()]))
    return out[0], out[1]


def test_discover_layout_ids_and_splits(dataset, tmp_path):
    root, _, _ = dataset
    refs = EgoDexSource().discover(str(root))
    assert [r.episode_id for r in refs] == ["part1/stack_cups/0", "test/pour_water/3"]
    assert [r.split for r in refs] == ["train", "test"]
    assert refs[0].relpath == "part1/stack_cups/0.hdf5" and refs[0].metadata["task_folder"] == "stack_cups"
    # pointing at a split folder still names the split and task from the folders
    assert [r.episode_id for r in EgoDexSource().discover(str(root / "test"))] == ["test/pour_water/3"]
    with pytest.raises(ValueError, match="no EgoDex"):
        EgoDexSource().discover(str(tmp_path))


def test_joint_map_and_camera_frame(dataset):
    root, a, _ = dataset
    ep = _open(root, "part1/stack_cups/0")
    n = len(a.T_world_cam_cv)
    assert ep.num_frames == n and ep.fps == 30.0
    np.testing.assert_array_equal(ep.T_opencv_source, np.eye(4))
    np.testing.assert_allclose(ep.camera.T_world_cam, a.T_world_cam_cv, atol=1e-12)
    assert ep.camera.world_frame == "arkit_origin" and ep.camera.translation_metric and ep.camera.valid.all()
    assert ep.hands.estimator == "ground_truth:egodex" and ep.camera.estimator == "ground_truth:egodex"
    T_cam_world = se3_inverse(a.T_world_cam_cv)
    for h, side in enumerate(("left", "right")):
        for i, joint in enumerate(JOINTS_21):
            p_world = a.joints_world[side + joint]
            expected = np.einsum("nij,nj->ni", T_cam_world[:, :3, :3], p_world) + T_cam_world[:, :3, 3]
            np.testing.assert_allclose(ep.hands.keypoints_cam[:, h, i], expected, atol=2e-6)
    # row 5 is the index knuckle (MCP), not the dropped metacarpal, which sits 7 cm closer to the wrist
    kp = ep.hands.keypoints_cam.astype(np.float64)
    d_knuckle = np.linalg.norm(kp[:, 1, 5] - kp[:, 1, 0], axis=-1)
    tpl = hand_template()
    np.testing.assert_allclose(d_knuckle, np.linalg.norm(tpl["IndexFingerKnuckle"]), atol=1e-5)
    # rigid re-expression keeps every bone length of the 21-joint skeleton
    tpl21 = np.stack([tpl[j] for j in JOINTS_21])
    want = np.array([np.linalg.norm(tpl21[c] - tpl21[p]) for p, c in BONES])
    got = np.linalg.norm(kp[:, :, [c for _, c in BONES]] - kp[:, :, [p for p, _ in BONES]], axis=-1)
    np.testing.assert_allclose(got, np.broadcast_to(want, got.shape), atol=1e-5)
    assert ep.hands.valid.all() and np.all(ep.hands.score == 1) and np.isnan(ep.hands.lift_residual_px).all()


BOTH = [("part1/stack_cups/0", "opencv"), ("test/pour_water/3", "arkit")]


@pytest.mark.parametrize("episode_id,axes", BOTH)
def test_projection_lands_on_drawn_wrists(dataset, episode_id, axes):
    """The evidence for the axis convention: keypoints_2d of both wrists fall on the discs drawn in the
    video with the true camera, in every frame, when the reader uses the file's convention."""
    root = dataset[0]
    ep = _open(root, episode_id, camera_axes=axes)
    errors = []
    for frame in ep.frames():
        left, right = _disc_centroids(frame.image)
        errors += [np.linalg.norm(left - ep.hands.keypoints_2d[frame.index, 0, 0]),
                   np.linalg.norm(right - ep.hands.keypoints_2d[frame.index, 1, 0])]
    assert len(errors) == 2 * ep.num_frames
    assert max(errors) < 1.0, errors


def test_wrong_axes_put_hands_behind_camera_and_auto_detects(dataset):
    root, _, b = dataset
    wrong = _open(root, "test/pour_water/3", camera_axes="opencv")
    assert wrong.extra["axis_check"] == {"opencv": 0.0, "arkit": 1.0}
    # every hand lands behind the camera: no pixel, so no valid hand (never a wrong one)
    assert not wrong.hands.valid.any() and np.isnan(wrong.hands.keypoints_2d).all()
    assert wrong.hands.processing == {"hands_non_finite": 0, "hands_behind_camera": 2 * wrong.num_frames}
    auto = _open(root, "test/pour_water/3", camera_axes="auto")
    assert auto.extra["camera_axes"] == "arkit"
    np.testing.assert_array_equal(auto.T_opencv_source, T_CV_ARKIT)
    np.testing.assert_allclose(auto.camera.T_world_cam, b.T_world_cam_cv, atol=1e-12)
    # the stored (source) pose is recovered exactly: T_world_cam @ T_opencv_source
    source_pose = auto.camera.T_world_cam @ auto.T_opencv_source
    np.testing.assert_allclose(source_pose, b.T_world_cam_stored, atol=1e-12)
    assert _open(root, "part1/stack_cups/0", camera_axes="auto").extra["camera_axes"] == "opencv"


def test_intrinsics_dataset_or_documented_constant(dataset, tmp_path):
    root, a, _ = dataset
    k_file = _open(root, "part1/stack_cups/0").intrinsics
    assert k_file.source == "dataset"
    np.testing.assert_allclose(k_file.K, a.K, rtol=1e-6)
    assert k_file.fx == pytest.approx(736.6339 * 1.01, rel=1e-6)
    empty = _open(root, "test/pour_water/3", camera_axes="arkit")
    assert empty.intrinsics.source == "default"
    assert "unusable (shape [0, 3])" in empty.extra["intrinsics_note"]
    assert empty.intrinsics.to_list() == [736.6339, 736.6339, 960.0, 540.0]
    assert (empty.intrinsics.width, empty.intrinsics.height) == (1920, 1080)
    # a smaller video with no camera/intrinsic: the constant is rescaled (pixel-centre convention)
    small = write_egodex_episode(tmp_path, "part2", "fold", 1, n_frames=3, intrinsic="missing",
                                 width=960, height=540)
    ep = _open(tmp_path, "part2/fold/1")
    assert ep.intrinsics.source == "default"
    np.testing.assert_allclose(ep.intrinsics.to_list(), [368.31695, 368.31695, 479.75, 269.75])
    np.testing.assert_allclose(ep.intrinsics.K, small.K)
    left, _ = _disc_centroids(next(iter(ep.frames())).image)
    assert np.linalg.norm(left - ep.hands.keypoints_2d[0, 0, 0]) < 1.0


def test_confidences_kept_or_marked_missing(dataset):
    root, a, _ = dataset
    ep = _open(root, "part1/stack_cups/0")
    with h5py.File(a.h5) as f:
        per_side = [np.stack([f["confidences"][s + j][()] for j in JOINTS_21], -1) for s in ("left", "right")]
    want = np.stack(per_side, 1)
    np.testing.assert_array_equal(ep.hands.confidence, want)
    assert ep.extra["confidences"] == "dataset"
    b = _open(root, "test/pour_water/3", camera_axes="arkit")
    assert np.all(b.hands.confidence == 1.0) and b.extra["confidences"].startswith("missing")


TEXTS = {"llm_description": "A", "llm_description2": "B"}


@pytest.mark.parametrize(
    "attrs,text,source",
    [
        ({**TEXTS, "llm_type": "reversible", "which_llm_description": "1"}, "A", "llm_description"),
        ({**TEXTS, "llm_type": "reversible", "which_llm_description": "2"}, "B", "llm_description2"),
        ({**TEXTS, "llm_type": b"reversible", "which_llm_description": np.int64(1), "llm_description": b"A"},
         "A", "llm_description"),
        ({**TEXTS, "llm_type": "irreversible", "which_llm_description": "2"}, "A", "llm_description"),
        ({"description": "wipe the table"}, "wipe the table", "description"),
        ({}, "wipe table", "task_folder"),
    ],
)
def test_task_text_rule(tmp_path, attrs, text, source):
    with h5py.File(tmp_path / "x.hdf5", "w") as f:
        for k, v in attrs.items():
            f.attrs[k] = v
    with h5py.File(tmp_path / "x.hdf5") as f:
        assert task_description(f.attrs, "wipe_table") == (text, source)


def test_episode_task_and_metadata(dataset):
    root = dataset[0]
    a = _open(root, "part1/stack_cups/0")
    assert a.task == "Stack the cups." and a.extra["task_source"] == "llm_description2"
    assert a.extra["attributes"]["environment"] == "kitchen"
    b = _open(root, "test/pour_water/3", camera_axes="arkit")
    assert b.task == "Pour water into the glass."


def _official_rows_from_raw(h5: Path, window: list[int]) -> np.ndarray:
    """dexwm.md §2.2 straight from the raw HDF5: p = inv(T_world_cam[k0]) p_world, row 42 the camera
    translation, row 43 as_euler('xyz') of the stored camera rotation; no axis change."""
    with h5py.File(h5) as f:
        T = f["transforms/camera"][()].astype(np.float64)[window]
        pw = np.stack([np.stack([f["transforms"][s + j][()][window, :3, 3] for j in JOINTS_21], 1)
                       for s in ("left", "right")], 1).astype(np.float64)
    T0_inv = np.linalg.inv(T[0])
    rows = np.zeros((len(window), 44, 3))
    rows[:, :42] = (pw.reshape(len(window), 42, 3) @ T0_inv[:3, :3].T) + T0_inv[:3, 3]
    rows[:, 42] = T[:, :3, 3]
    rows[:, 43] = Rotation.from_matrix(T[:, :3, :3]).as_euler("xyz")
    return rows


@pytest.mark.parametrize("episode_id,axes", BOTH)
def test_dexwm_official_rows_reproduce_raw_hdf5(dataset, episode_id, axes):
    root, a, b = dataset
    fx = a if axes == "opencv" else b
    ep = _open(root, episode_id, camera_axes=axes)
    window = [0, 2, 3, 5, 6, 8, 9, 11]
    want = _official_rows_from_raw(fx.h5, window)
    # the inverse mapping by hand: T_world_src = T_world_cam @ T_opencv_source, p_world from stored rows
    S = ep.T_opencv_source
    T_src = ep.camera.T_world_cam[window] @ S
    kp = ep.hands.keypoints_cam[window].astype(np.float64).reshape(len(window), 42, 3)
    T_w = ep.camera.T_world_cam[window]
    pw = np.einsum("nij,nkj->nki", T_w[:, :3, :3], kp) + T_w[:, None, :3, 3]
    T0_inv = se3_inverse(T_src[0])
    mine = np.concatenate([pw @ T0_inv[:3, :3].T + T0_inv[:3, 3], T_src[:, None, :3, 3],
                           Rotation.from_matrix(T_src[:, :3, :3]).as_euler("xyz")[:, None]], axis=1)
    np.testing.assert_allclose(mine, want, atol=2e-6)
    # the loader's function gives the same rows and actions (pose[i+1] - pose[i], row 43 mod 2*pi)
    args = (ep.hands.keypoints_cam, ep.hands.valid, ep.camera.T_world_cam, ep.camera.valid, window, S)
    np.testing.assert_allclose(dexwm_official_poses(*args), want, atol=2e-6)
    actions = dexwm_official_actions(*args)
    want32 = want.astype(np.float32)
    want_actions = want32[1:] - want32[:-1]
    want_actions[:, CAMERA_ROTATION_ROW] = np.mod(want_actions[:, CAMERA_ROTATION_ROW], np.float32(2 * np.pi))
    np.testing.assert_allclose(actions, want_actions, atol=2e-6)
    assert np.all((actions[:, CAMERA_ROTATION_ROW] >= 0) & (actions[:, CAMERA_ROTATION_ROW] < 2 * np.pi))
    np.testing.assert_allclose(actions[:, CAMERA_POSITION_ROW], np.diff(T_src[:, :3, 3], axis=0), atol=1e-6)


# ----------------------------------------------------------------------------- bad input


def _expect_error(root: Path, episode_id: str, pattern: str, file_name: str):
    with pytest.raises(EpisodeError, match=pattern) as info:
        _open(root, episode_id)
    assert file_name in str(info.value)


def test_bad_inputs_fail_per_episode(tmp_path):
    small = {"n_frames": 4, "width": 480, "height": 270}
    good = write_egodex_episode(tmp_path, "part1", "t", 0, **small)
    for k in range(1, 7):
        write_egodex_episode(tmp_path, "part1", "t", k, video=(k != 4), **small)
    with h5py.File(tmp_path / "part1/t/1.hdf5", "a") as f:
        del f["transforms/camera"]
    with h5py.File(tmp_path / "part1/t/2.hdf5", "a") as f:
        del f["transforms/rightIndexFingerTip"]
    with h5py.File(tmp_path / "part1/t/3.hdf5", "a") as f:
        T = f["transforms/camera"][()]
        T[2, 0, 3] = np.nan
        f["transforms/camera"][...] = T
    (tmp_path / "part1/t/5.hdf5").write_bytes(b"not an hdf5 file")
    with h5py.File(tmp_path / "part1/t/6.hdf5", "a") as f:  # K of a 4:3 1920x1440 camera, video 480x270
        f["camera/intrinsic"][...] = np.array([[736.6, 0, 960], [0, 736.6, 720], [0, 0, 1]], np.float32)
    _expect_error(tmp_path, "part1/t/1", "missing dataset transforms/camera", "1.hdf5")
    _expect_error(tmp_path, "part1/t/2", r"missing hand transforms \['transforms/rightIndexFingerTip'\]",
                  "2.hdf5")
    _expect_error(tmp_path, "part1/t/3", r"non-finite in 1 of 4 frames \(first: \[2\]\)", "3.hdf5")
    _expect_error(tmp_path, "part1/t/4", "video file not found", "4.mp4")
    _expect_error(tmp_path, "part1/t/5", "cannot open HDF5", "5.hdf5")
    _expect_error(tmp_path, "part1/t/6", r"6.mp4: camera/intrinsic: K with principal point \(960.0, 720.0\) "
                  r"belongs to a 1920x1440 frame \(aspect 1.333\), the video is 480x270 \(aspect 1.778\): "
                  "the aspect ratio differs", "6.hdf5")
    # the others still open: errors are per episode
    src = EgoDexSource()
    opened, failed = [], []
    for ref in src.discover(str(tmp_path)):
        try:
            opened.append(src.open(ref).ref.episode_id)
        except EpisodeError:
            failed.append(ref.episode_id)
    assert opened == ["part1/t/0"] and len(failed) == 6
    assert good.h5.exists()


def test_video_and_poses_of_different_length(tmp_path):
    """A video shorter than the poses keeps the common prefix (recorded); one that ends early while
    decoding fails the episode instead of silently misaligning."""
    fx = write_egodex_episode(tmp_path, "part1", "t", 0, n_frames=6, video=False, width=480, height=270)
    frames = list(draw_frames(fx.T_world_cam_cv, fx.joints_world, fx.K, fx.width, fx.height))
    write_mp4(fx.mp4, frames[:4])
    ep = _open(tmp_path, "part1/t/0")
    assert ep.num_frames == 4 and ep.extra["pose_frames"] == 6 and ep.extra["video_frames"] == 4
    assert ep.hands.keypoints_cam.shape[0] == 4 and ep.camera.T_world_cam.shape[0] == 4
    assert len(list(ep.frames())) == 4


def test_target_fps_keeps_pose_rows_with_their_frames(dataset):
    root = dataset[0]
    full = _open(root, "part1/stack_cups/0")
    half = _open(root, "part1/stack_cups/0", target_fps=15.0)
    keep = [0, 2, 4, 6, 8, 10]
    assert half.num_frames == len(keep) and half.fps == 15.0
    np.testing.assert_array_equal(half.hands.keypoints_cam, full.hands.keypoints_cam[keep])
    np.testing.assert_array_equal(half.camera.T_world_cam, full.camera.T_world_cam[keep])
    frames = list(half.frames())
    assert [f.source_index for f in frames] == keep and [f.index for f in frames] == list(range(len(keep)))
    np.testing.assert_allclose([f.timestamp for f in frames], np.array(keep) / 30.0)
    for f in frames:  # each kept frame still shows the wrists where its pose row projects them
        left, right = _disc_centroids(f.image)
        assert np.linalg.norm(left - half.hands.keypoints_2d[f.index, 0, 0]) < 1.0
        assert np.linalg.norm(right - half.hands.keypoints_2d[f.index, 1, 0]) < 1.0


def test_nan_joint_invalidates_only_that_hand_and_frame(tmp_path):
    write_egodex_episode(tmp_path, "part1", "t", 0, n_frames=4, width=480, height=270)
    with h5py.File(tmp_path / "part1/t/0.hdf5", "a") as f:
        T = f["transforms/leftThumbTip"][()]
        T[1, 1, 3] = np.nan
        f["transforms/leftThumbTip"][...] = T
    ep = _open(tmp_path, "part1/t/0")
    assert ep.hands.valid.tolist() == [[True, True], [False, True], [True, True], [True, True]]
    assert np.isnan(ep.hands.keypoints_cam[1, 0]).all() and np.all(ep.hands.confidence[1, 0] == 0)
    assert ep.hands.processing == {"hands_non_finite": 1, "hands_behind_camera": 0}


@pytest.mark.parametrize("axes", ["opencv", "arkit"])
def test_dataset_round_trip_reproduces_official_rows(tmp_path, axes):
    """EgoDex fixture -> ``dexdata extract`` pipeline (local executor) -> Parquet -> loader window under
    ``dexwm-official``: poses equal dexwm.md §2.2 computed from the raw HDF5 (float32 storage)."""
    from dexhands_data.dataset.reader import read_episode
    from dexhands_data.loader.windows import WindowConfig, build_window
    from dexhands_data.pipelines.extract import ExtractSettings, run_extract
    from dexhands_data.pipelines.runner import RunConfig

    fx = write_egodex_episode(tmp_path / "in", "test", "fold", 7, n_frames=10, axes=axes, width=480, height=270)
    settings = ExtractSettings(source="egodex", source_options={"camera_axes": axes}, camera="given",
                               frame_short_side=None)
    out = tmp_path / "out"
    summary = run_extract(settings, str(tmp_path / "in"), RunConfig(out=str(out), executor="local",
                                                                    show_progress=False))
    assert summary.exit_code == 0
    ep = read_episode(out, "test/fold/7")
    np.testing.assert_array_equal(ep.meta.T_opencv_source, T_CV_ARKIT if axes == "arkit" else np.eye(4))
    window = np.array([0, 1, 3, 4, 6, 7, 8, 9])
    sample = build_window(ep, window, WindowConfig(convention="dexwm-official", frames="none"), 0)
    want = _official_rows_from_raw(fx.h5, window.tolist())
    np.testing.assert_allclose(sample["poses"].numpy(), want, atol=1e-5)  # keypoints stored as float32
    want32 = want.astype(np.float32)
    want_actions = want32[1:] - want32[:-1]
    want_actions[:, CAMERA_ROTATION_ROW] = np.mod(want_actions[:, CAMERA_ROTATION_ROW], np.float32(2 * np.pi))
    np.testing.assert_allclose(sample["actions"].numpy().reshape(-1, 44, 3), want_actions, atol=1e-5)
