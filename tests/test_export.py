"""``dexdata export`` on real data: the parity contract by round trip, LeRobot v3 read back, bad input.

Round trip (issue 16 §3): dataset -> export -> ``extract --source egodex`` / ``convert-droid`` of the
export -> the same ``dexwm-official`` actions (<= 1e-5) on every window without the documented
exceptions. Real inputs: ``egodex_real_nc`` (EgoDex test split sample), ``droid_crowndata_ep0`` (in the
raw layout, tests/droid_fixtures.py) and an estimated episode of ``egocentric_video_nc``.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import av
import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dexhands_data.actions import compute_actions, dexwm_official_actions
from dexhands_data.cli.main import main
from dexhands_data.dataset.reader import episode_rows, read_episode
from dexhands_data.distortion import Distortion
from dexhands_data.export.egodex_camera import camera_mismatch, egodex_camera, match_egodex_camera
from dexhands_data.export.frames import EpisodeFrames
from dexhands_data.export.outdir import ExportDir, ExportDirError
from dexhands_data.geometry import Intrinsics, project
from dexhands_data.images import decode_jpeg
from dexhands_data.sources.egodex import JOINTS_21
from droid_fixtures import load_episode, write_raw_episode

EGODEX_OK, EGODEX_NO_VIDEO = "test/add_remove_lid/0", "test/add_remove_lid/1"
TOL = 1e-5


def _run(*args) -> int:
    return main([*map(str, args)])


def _windows(n: int, count: int = 40, seed: int = 0) -> list[np.ndarray]:
    """DexWM-like windows: 9 sorted distinct frames, plus the first and the last 9 frames."""
    rng = np.random.default_rng(seed)
    out = [np.arange(9), np.arange(n - 9, n)]
    out += [np.sort(rng.choice(n, 9, replace=False)) for _ in range(count)]
    return out


def _official(ep, idx, translation_metric=True):
    return dexwm_official_actions(ep.keypoints_cam, ep.hand_valid, ep.T_world_cam, ep.camera_valid, idx,
                                  ep.meta.T_opencv_source, translation_metric=translation_metric)


@pytest.fixture(scope="module")
def raw_droid(shared_data, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("droid_raw")
    write_raw_episode(root, load_episode(shared_data))
    return root


@pytest.fixture(scope="module")
def mixed(shared_data, raw_droid, tmp_path_factory) -> Path:
    """One dataset: the real EgoDex episode (ok), its sibling without video (failed), and the DROID
    episode converted with the released pseudo-hand (``dexwm-official``)."""
    root = tmp_path_factory.mktemp("mixed") / "ds"
    ids = root.parent / "ids.txt"
    ids.write_text(f"{EGODEX_OK}\n{EGODEX_NO_VIDEO}\n")
    assert _run("extract", "--source", "egodex", "--input", shared_data / "egodex_real_nc", "--out", root,
                "--executor", "local", "--no-progress", "--frame-size", 112, "--ids", ids) == 1
    assert _run("convert-droid", "--input", raw_droid, "--out", root, "--pseudo-hand", "dexwm-official",
                "--executor", "local", "--no-progress", "--frame-size", 112) == 1  # the dataset's failure
    return root


@pytest.fixture(scope="module")
def exported(mixed, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("exp") / "dexwm"
    assert _run("export", mixed, "--format", "dexwm-egodex", "--out", out) == 1  # the failed episode
    return out


def _droid_id(root) -> str:
    return next(r["episode_id"] for r in episode_rows(root) if r["source"] == "droid")


# ----------------------------------------------------------------------------- dexwm-egodex


@pytest.mark.noncommercial
def test_egodex_layout_holds_what_the_released_loader_reads(mixed, exported):
    h5 = exported / "test" / "add_remove_lid" / "0.hdf5"
    assert h5.is_file() and h5.with_suffix(".mp4").is_file()
    assert not (exported / "test" / "add_remove_lid" / "1.hdf5").exists()  # failed in the dataset
    ep = read_episode(mixed, EGODEX_OK)
    row = next(r for r in episode_rows(mixed) if r["episode_id"] == EGODEX_OK)
    with h5py.File(h5) as f:
        T = f["transforms/camera"][()]
        assert T.dtype == np.float32 and T.shape == (len(ep), 4, 4)
        np.testing.assert_allclose(T, ep.T_world_cam @ ep.meta.T_opencv_source, atol=1e-6)
        for side in ("left", "right"):
            for j in JOINTS_21:
                assert f[f"transforms/{side}{j}"].shape == (len(ep), 4, 4)
                assert f[f"confidences/{side}{j}"].shape == (len(ep),)
        # the right wrist back in frame 7's camera is the stored keypoint
        p = np.append(f["transforms/rightHand"][7, :3, 3], 1.0)
        np.testing.assert_allclose((np.linalg.inv(T[7]) @ p)[:3], ep.keypoints_cam[7, 1, 0], atol=2e-6)
        K = f["camera/intrinsic"][()]
        assert f.attrs["llm_description"] == row["task"]
    with av.open(str(h5.with_suffix(".mp4"))) as c:
        s = c.streams.video[0]
        assert s.frames == len(ep) and (s.width, s.height) == (198, 112)  # embedded 199x112, even-cropped
    np.testing.assert_allclose(K[0, 0], row["intrinsics"][0] * 199 / row["width"], rtol=1e-5)


@pytest.mark.noncommercial
def test_egodex_round_trip_gives_the_same_official_actions(mixed, exported, tmp_path):
    back = tmp_path / "back"
    assert _run("extract", "--source", "egodex", "--input", exported, "--out", back, "--executor", "local",
                "--no-progress", "--frame-size", 0) == 0
    a, b = read_episode(mixed, EGODEX_OK), read_episode(back, "test/add_remove_lid/0")
    assert len(a) == len(b) and a.hand_valid.all() and a.camera_valid.all()  # no exceptions in this clip
    worst = max(np.abs(_official(a, w) - _official(b, w)).max() for w in _windows(len(a)))
    assert worst <= TOL, worst


def test_droid_round_trip_gives_the_same_official_actions(mixed, exported, tmp_path):
    folder = exported / "droid" / "RAIL" / "success" / "2023-04-17" / "Mon_Apr_17_14:48:05_2023"
    meta = json.loads(next(folder.glob("metadata_*.json")).read_text())
    assert meta["left_mp4_path"] == meta["ext1_mp4_path"] == f"recordings/MP4/{meta['ext1_cam_serial']}.mp4"
    back = tmp_path / "back"
    assert _run("convert-droid", "--input", exported / "droid", "--out", back, "--pseudo-hand",
                "dexwm-official", "--executor", "local", "--no-progress", "--frame-size", 0) == 0
    a, b = read_episode(mixed, _droid_id(mixed)), read_episode(back, _droid_id(back))
    assert len(a) == len(b) == 166
    worst = max(np.abs(_official(a, w) - _official(b, w)).max() for w in _windows(len(a)))
    assert worst <= TOL, worst
    np.testing.assert_allclose(b.T_world_cam, a.T_world_cam, atol=1e-12)


def test_oriented_droid_exports_its_trajectory(raw_droid, mixed, tmp_path):
    """An ``oriented`` dataset exports the robot trajectory (orientation recovered from the circle
    plane); the released code then sees the official pseudo-hand of that trajectory."""
    oriented = tmp_path / "oriented"
    assert _run("convert-droid", "--input", raw_droid, "--out", oriented, "--pseudo-hand", "oriented",
                "--executor", "local", "--no-progress", "--frame-size", 0) == 0
    out = tmp_path / "exp"
    # frames are neither embedded (--frame-size 0) nor reachable without --videos-from: a clear failure
    assert _run("export", oriented, "--format", "dexwm-egodex", "--out", out) == 1
    assert not (out / "droid").exists()
    assert _run("export", oriented, "--format", "dexwm-egodex", "--out", out, "--videos-from", raw_droid,
                "--overwrite") == 0
    rel = "RAIL/success/2023-04-17/Mon_Apr_17_14:48:05_2023/trajectory.h5"
    key = "observation/robot_state/cartesian_position"
    with h5py.File(raw_droid / rel) as f, h5py.File(out / "droid" / rel) as g:
        want, got = f[key][()], g[key][()]
        np.testing.assert_allclose(g["observation/robot_state/gripper_position"][()],
                                   f["observation/robot_state/gripper_position"][()], atol=1e-7)
    from scipy.spatial.transform import Rotation

    np.testing.assert_allclose(got[:, :3], want[:, :3], atol=1e-6)
    R_want, R_got = Rotation.from_euler("xyz", want[:, 3:]), Rotation.from_euler("xyz", got[:, 3:])
    angle = (R_want.inv() * R_got).magnitude()
    assert angle.max() < 1e-5
    back = tmp_path / "back"
    assert _run("convert-droid", "--input", out / "droid", "--out", back, "--pseudo-hand", "dexwm-official",
                "--executor", "local", "--no-progress", "--frame-size", 0) == 0
    a, b = read_episode(mixed, _droid_id(mixed)), read_episode(back, _droid_id(back))
    worst = max(np.abs(_official(a, w) - _official(b, w)).max() for w in _windows(len(a), 10))
    assert worst <= TOL, worst


@pytest.mark.noncommercial
def test_source_video_is_copied_verbatim(shared_data, mixed, tmp_path, capsys):
    out = tmp_path / "exp"
    _run("export", mixed, "--format", "dexwm-egodex", "--out", out,
         "--videos-from", shared_data / "egodex_real_nc")
    err = capsys.readouterr().err
    assert "frames from: embedded 1, source 1" in err  # the DROID video is not under this root
    src = shared_data / "egodex_real_nc" / "test" / "add_remove_lid" / "0.mp4"
    assert (out / "test" / "add_remove_lid" / "0.mp4").read_bytes() == src.read_bytes()
    with h5py.File(out / "test" / "add_remove_lid" / "0.hdf5") as f:
        np.testing.assert_allclose(f["camera/intrinsic"][()][0, 0], 736.6339, rtol=1e-6)
        assert "source video" in f.attrs["dexdata_frames"]
    assert "warning test/add_remove_lid/0" not in err  # the real EgoDex camera


# ----------------------------------------------------------------------------- estimated episode


@pytest.mark.noncommercial
@pytest.mark.slow
def test_estimated_episode_round_trip(shared_data, tmp_path):
    """MediaPipe + VO (translation not metric) -> export writes a rotation-only camera-to-world; the
    round trip equals our ``dexwm-official`` actions of the non-metric track (world from rotation
    only) on every window whose frames have the hand and a valid camera; the translation rows (masked
    in ours, all zero in the export) are the exception."""
    ds = tmp_path / "ds"
    assert _run("extract", "--input", shared_data / "egocentric_video_nc", "--out", ds, "--executor", "local",
                "--no-progress", "--fps", 6, "--frame-size", 112, "--model-complexity", 0) == 0
    out = tmp_path / "exp"
    assert _run("export", ds, "--format", "dexwm-egodex", "--out", out) == 0
    h5 = next(out.rglob("*.hdf5"))
    assert h5.relative_to(out).parts[:2] == ("train", "untasked")
    with h5py.File(h5) as f:
        assert np.all(f["transforms/camera"][()][:, :3, 3] == 0)
        exceptions = json.loads(f.attrs["dexdata_exceptions"])
    assert exceptions["translation_masked"] is True
    back = tmp_path / "back"
    assert _run("extract", "--source", "egodex", "--input", out, "--out", back, "--executor", "local",
                "--no-progress", "--frame-size", 0) == 0
    eid = episode_rows(ds)[0]["episode_id"]
    a, b = read_episode(ds, eid), read_episode(back, h5.relative_to(out).with_suffix("").as_posix())
    assert len(a) == len(b) >= 20
    # per hand, windows over the frames where that hand and the camera are known; compared: that
    # hand's rows and the camera rows (a hand missing in a frame is held / zero: the documented exception)
    rng = np.random.default_rng(0)
    windows, worst = [], 0.0
    for h in (0, 1):
        frames = np.flatnonzero(a.hand_valid[:, h] & a.camera_valid)
        for _ in range(20 if len(frames) >= 9 else 0):
            w = np.sort(rng.choice(frames, 9, replace=False))
            rows = [43, *range(21 * h, 21 * h + 21)]
            ours = _official(a, w, translation_metric=False)
            assert np.isnan(ours[:, 42]).all()  # masked: not metric
            diff = ours[:, rows] - _official(b, w)[:, rows]
            worst = max(worst, float(np.abs(diff).max()))
            windows.append(w)
    assert len(windows) >= 20, f"only {len(windows)} windows without exceptions"
    assert worst <= TOL, worst
    # the translation rows of the released code's actions are zero on the export
    assert all(np.all(_official(b, w)[:, 42] == 0) for w in windows)


# ----------------------------------------------------------------------------- --match-egodex-camera


def test_camera_check_and_rerender_geometry():
    """A dot drawn where a 3D point projects under a 90-deg-FoV camera lands, after re-rendering, where
    the EgoDex camera projects the same point (HC targets right); the 3D point is unchanged."""
    K_in = Intrinsics.from_fov(320, 240, 90.0)
    assert camera_mismatch(K_in) is not None
    assert camera_mismatch(egodex_camera(1920, 1080)) is None
    assert camera_mismatch(egodex_camera(398, 224)) is None
    points = np.array([[0.05, -0.03, 0.6], [-0.12, 0.04, 0.5], [0.0, 0.0, 1.0]])
    uv_in = project(points, K_in.K)
    image = np.zeros((240, 320, 3), np.uint8)
    for u, v in np.round(uv_in).astype(int):
        image[v - 1:v + 2, u - 1:u + 2] = 255
    frames = EpisodeFrames("test", 320, 240, K_in, lambda: iter([image]))
    out = match_egodex_camera(frames)
    assert (out.width, out.height) == (426, 240) and camera_mismatch(out.intrinsics) is None
    warped = next(out.iterate())
    uv_out = project(points, out.intrinsics.K)
    for u, v in uv_out:
        patch = warped[int(v) - 3:int(v) + 4, int(u) - 3:int(u) + 4, 0].astype(float)
        ys, xs = np.nonzero(patch > 60)
        assert len(xs), (u, v)
        centre = np.array([xs.mean() + int(u) - 3, ys.mean() + int(v) - 3])
        assert np.linalg.norm(centre - [u, v]) < 1.0


def test_rerender_into_the_egodex_camera_undistorts_a_lens():
    """Dots drawn where a barrel lens shows 3D points land, after re-rendering into the EgoDex
    pinhole camera, where that camera projects them; the lens is named by the camera check."""
    K_in = replace(Intrinsics.from_fov(320, 240, 90.0), distortion=Distortion(-0.25, 0.05))
    assert "lens distortion [-0.25, 0.05, 0.0, 0.0]" in camera_mismatch(K_in)
    points = np.array([[0.4, -0.27, 0.5], [-0.36, 0.26, 0.45], [0.0, 0.0, 1.0]])  # near the corners
    image = np.zeros((240, 320, 3), np.uint8)
    for u, v in np.round(K_in.project(points)).astype(int):
        image[v - 1:v + 2, u - 1:u + 2] = 255
    out = match_egodex_camera(EpisodeFrames("test", 320, 240, K_in, lambda: iter([image])))
    assert out.intrinsics.distortion is None and camera_mismatch(out.intrinsics) is None
    warped = next(out.iterate())
    for u, v in project(points, out.intrinsics.K):
        patch = warped[int(v) - 4:int(v) + 5, int(u) - 4:int(u) + 5, 0].astype(float)
        ys, xs = np.nonzero(patch > 60)
        assert len(xs), (u, v)
        centre = np.array([xs.mean() + int(u) - 4, ys.mean() + int(v) - 4])
        assert np.linalg.norm(centre - [u, v]) < 1.0
    # without the undistortion the corner dots would sit this far off
    assert np.abs(K_in.project(points[:2]) - project(points[:2], K_in.K)).max() > 5


@pytest.mark.noncommercial
def test_match_egodex_camera_export(mixed, tmp_path, capsys):
    out = tmp_path / "exp"
    _run("export", mixed, "--format", "dexwm-egodex", "--out", out, "--match-egodex-camera")
    assert "differs from the EgoDex camera" not in capsys.readouterr().err
    with h5py.File(out / "test" / "add_remove_lid" / "0.hdf5") as f:
        K = f["camera/intrinsic"][()]
    with av.open(str(out / "test" / "add_remove_lid" / "0.mp4")) as c:
        w, h = c.streams.video[0].width, c.streams.video[0].height
    assert (w, h) == (198, 112)
    np.testing.assert_allclose(K, egodex_camera(w, h).K, rtol=1e-6)
    np.testing.assert_allclose(K[0, 0], 736.6339 * 112 / 1080, rtol=1e-6)


# ----------------------------------------------------------------------------- LeRobot v3.0


@pytest.fixture(scope="module")
def lerobot_export(mixed, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lerobot") / "lr"
    assert _run("export", mixed, "--format", "lerobot", "--out", out) == 1  # the failed episode
    return out


def test_lerobot_layout_and_info(lerobot_export):
    info = json.loads((lerobot_export / "meta" / "info.json").read_text())
    for key in ("codebase_version", "robot_type", "total_episodes", "total_frames", "total_tasks",
                "chunks_size", "data_files_size_in_mb", "video_files_size_in_mb", "fps", "splits",
                "data_path", "video_path", "features"):
        assert key in info, key
    assert info["codebase_version"] == "v3.0" and "total_chunks" not in info and "total_videos" not in info
    feats = info["features"]
    assert feats["observation.state"]["shape"] == [136] and len(feats["observation.state"]["names"]) == 136
    assert feats["action"]["shape"] == [132] and feats["action"]["names"][63] == "d_right_wrist_x"
    assert feats["observation.images.main"]["dtype"] == "video"
    # the DROID episode is at 15 fps, the EgoDex one at 30: one rate per LeRobot dataset
    assert info["fps"] in (15.0, 30.0) and info["total_episodes"] == 1
    tasks = pq.read_table(lerobot_export / "meta" / "tasks.parquet").to_pandas()
    assert list(tasks["task_index"]) == [0] and tasks.index.name == "task"
    stats = json.loads((lerobot_export / "meta" / "stats.json").read_text())
    assert set(stats["action"]) >= {"min", "max", "mean", "std", "count", "q01", "q50", "q99"}
    assert stats["observation.state"]["count"] == [info["total_frames"]]


def test_lerobot_reads_back_as_lerobot_does(mixed, lerobot_export, tmp_path):
    """``datasets`` over ``data/*/*.parquet``, episode rows -> row ranges, frames decoded at the
    episode's timestamps (from_timestamp + frame_index / fps), values equal to the dataset's."""
    import datasets

    info = json.loads((lerobot_export / "meta" / "info.json").read_text())
    files = sorted(str(p) for p in (lerobot_export / "data").glob("*/*.parquet"))
    ds = datasets.load_dataset("parquet", data_files=files, split="train",
                               cache_dir=str(tmp_path / "hf")).with_format("numpy")
    assert len(ds) == info["total_frames"]
    np.testing.assert_array_equal(ds["index"], np.arange(len(ds)))
    meta = lerobot_export / "meta" / "episodes" / "chunk-000" / "file-000.parquet"
    episodes = pq.read_table(meta).to_pylist()
    for e in episodes:
        rows = ds.select(range(e["dataset_from_index"], e["dataset_to_index"]))
        assert set(rows["episode_index"]) == {e["episode_index"]} and len(rows) == e["length"]
        stored = read_episode(mixed, e["dexdata/episode_id"])
        state = np.stack(rows["observation.state"])
        kp = np.nan_to_num(stored.keypoints_cam.reshape(len(stored), -1))
        np.testing.assert_allclose(state[:, :126], kp)
        np.testing.assert_array_equal(state[:, 126:128], stored.hand_valid)
        action = np.stack(rows["action"]).reshape(-1, 44, 3)
        want = compute_actions("relative", stored.keypoints_cam, stored.hand_valid, stored.T_world_cam,
                               stored.camera_valid)
        np.testing.assert_allclose(action[:-1], np.nan_to_num(want), atol=1e-6)
        assert np.all(action[-1] == 0) and np.all(np.stack(rows["action.valid"])[-1] == 0)
        video = lerobot_export / info["video_path"].format(
            video_key="observation.images.main", chunk_index=e["videos/observation.images.main/chunk_index"],
            file_index=e["videos/observation.images.main/file_index"])
        h, w = info["features"]["observation.images.main"]["shape"][:2]
        jpegs = stored.image_bytes(np.arange(len(stored)))
        with av.open(str(video)) as c:
            stream = c.streams.video[0]
            for k in (0, len(stored) // 2, len(stored) - 1):
                t = e["videos/observation.images.main/from_timestamp"] + rows["timestamp"][k]
                c.seek(int(t / stream.time_base), stream=stream, backward=True, any_frame=False)
                frame = next(f for f in c.decode(stream) if f.pts * stream.time_base >= t - 1e-4)
                got = frame.to_ndarray(format="rgb24")
                want_img = decode_jpeg(bytes(jpegs[k]))[:h, :w]
                assert got.shape == (h, w, 3)
                assert np.abs(got.astype(int) - want_img).mean() < 6.0  # H.264 CRF 18 of the same frame


# ----------------------------------------------------------------------------- bad input


def test_out_folder_rules(mixed, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert _run("export", mixed, "--format", "lerobot", "--out", out, "--no-video") == 2  # refused
    assert (out / "notes.txt").read_text() == "mine"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    os.symlink(outside, out / "link")
    assert _run("export", mixed, "--format", "lerobot", "--out", out, "--no-video", "--overwrite") == 1
    assert not (out / "notes.txt").exists() and not (out / "link").exists()
    assert (outside / "keep.txt").read_text() == "keep"  # the link was removed, not followed
    # the same export again resumes (nothing to do); a different one is refused
    assert _run("export", mixed, "--format", "lerobot", "--out", out, "--no-video") == 1
    assert _run("export", mixed, "--format", "dexwm-egodex", "--out", out) == 2
    with pytest.raises(ExportDirError):
        ExportDir(out).path("../escape.txt")


def _renamed_dataset(src: Path, dst: Path, mapping: dict[str, str]) -> None:
    """A copy of ``src`` whose episode ids are renamed (in meta/episodes.parquet and in the shards)."""
    import shutil

    shutil.copytree(src, dst)

    def rename(table: pa.Table) -> pa.Table:
        ids = [mapping.get(i, i) for i in table.column("episode_id").to_pylist()]
        return table.set_column(table.schema.get_field_index("episode_id"), "episode_id", pa.array(ids))

    for shard in (dst / "data").rglob("*.parquet"):
        pq.write_table(rename(pq.read_table(shard)), shard)
    episodes = dst / "meta" / "episodes.parquet"
    pq.write_table(rename(pq.read_table(episodes)), episodes)


@pytest.mark.parametrize("fmt", ["dexwm-egodex", "lerobot"])
def test_hostile_episode_ids_stay_inside_out(mixed, tmp_path, fmt):
    evil = tmp_path / "evil_ds"
    _renamed_dataset(mixed, evil, {EGODEX_OK: "../../../escape/ep", _droid_id(mixed): "/abs/../../x"})
    before = {p for p in tmp_path.rglob("*")}
    out = tmp_path / "box" / "out"
    assert _run("export", evil, "--format", fmt, "--out", out, "--no-video") == 1
    new = {p for p in tmp_path.rglob("*")} - before
    assert new and all(p == out.parent or out in p.parents or p == out for p in new), sorted(new)
    markers = (out / ".dexdata-export" / "done").glob("*.json")
    exported = {json.loads(p.read_text())["episode_id"] for p in markers}
    hostile = {"../../../escape/ep", "/abs/../../x"}
    # LeRobot keeps one frame rate: one of the two (15 vs 30 fps) is refused with a reason
    assert exported == hostile if fmt == "dexwm-egodex" else len(exported) == 1 and exported < hostile


@pytest.mark.parametrize("fmt", ["dexwm-egodex", "lerobot"])
def test_killed_export_rerun_finishes_without_duplicates(mixed, tmp_path, monkeypatch, fmt):
    clean = tmp_path / "clean"
    _run("export", mixed, "--format", fmt, "--out", clean)
    out = tmp_path / "killed"
    calls = {"n": 0}
    real = ExportDir.mark_done

    def die_before_marker(self, episode_id, payload):
        calls["n"] += 1
        if calls["n"] == 1:  # the first episode's files are written, its marker is not: killed
            raise KeyboardInterrupt
        real(self, episode_id, payload)

    monkeypatch.setattr(ExportDir, "mark_done", die_before_marker)
    with pytest.raises(KeyboardInterrupt):
        _run("export", mixed, "--format", fmt, "--out", out)
    monkeypatch.setattr(ExportDir, "mark_done", real)
    assert _run("export", mixed, "--format", fmt, "--out", out) == 1  # the dataset's failed episode
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    want = sorted(p.relative_to(clean).as_posix() for p in clean.rglob("*") if p.is_file())
    assert files == want and not any(".tmp-" in f for f in files)
    if fmt == "lerobot":
        a = pq.read_table(out / "data" / "chunk-000" / "file-000.parquet")
        b = pq.read_table(clean / "data" / "chunk-000" / "file-000.parquet")
        assert a.equals(b)


def test_names_are_deterministic_safe_and_unique():
    from dexhands_data.export.dexwm_egodex import plan_human
    from dexhands_data.export.droid_raw import plan_droid

    rows = [{"episode_id": "test/pour/3", "source": "egodex", "split": "test", "task": "Pour."},
            {"episode_id": "test/pour/1", "source": "egodex", "split": "test", "task": "Pour."},
            {"episode_id": "clip_b", "source": "videos", "split": "train", "task": None},
            {"episode_id": "clip_a", "source": "videos", "split": "../..", "task": "Stack the ../../cups!"}]
    plan = plan_human(rows)
    assert plan == {"test/pour/1": "test/pour/0", "test/pour/3": "test/pour/1",
                    "clip_b": "train/untasked/0", "clip_a": "train/stack_the_cups/0"}
    assert plan_human(rows[::-1]) == plan
    extra = json.dumps({"layout": "raw", "success": True})
    droid = [{"episode_id": e, "source": "droid", "source_path": "LAB/success/2024-01-01/t", "extra": extra}
             for e in ("a", "b")]
    folders = plan_droid(droid)
    assert folders["a"] == "LAB/success/2024-01-01/t" and folders["b"].startswith("LAB/success/2024-01-01/t-")
