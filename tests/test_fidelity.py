"""``dexdata score`` on real EgoDex recordings (non-commercial fixture, read in place): the ground truth
scored against itself and against copies with known perturbations, the estimate end to end, bad
input; plus the metric functions on exact numbers."""

from __future__ import annotations

import copy
import json
import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dexhands_data.cli.main import main
from dexhands_data.fidelity import camera_metrics as cm
from dexhands_data.fidelity import motion_metrics as mm
from dexhands_data.fidelity.batched import relative_poses
from dexhands_data.fidelity.episodes import read_scored_episodes
from dexhands_data.fidelity.figures import figures
from dexhands_data.fidelity.hand_metrics import hands_in_view, match_hands, procrustes_align_batch
from dexhands_data.fidelity.score import score_episode
from dexhands_data.geometry import matrix_from_rotvec, project

EGODEX = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "egodex_real_nc"
pytestmark = pytest.mark.skipif(not EGODEX.is_dir(), reason="shared EgoDex recordings not available")
RECORDING = "test/add_remove_lid/0"


def _run(*argv: str) -> int:
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    return main(list(argv))


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """GT of add_remove_lid/0 (HDF5 only, --frame-size 0) and insert_remove/1 (HDF5-only recording),
    and the estimate of add_remove_lid/0 from its MP4 at 5 fps with the true K as sidecar."""
    tmp = tmp_path_factory.mktemp("fidelity")
    gt_in, est_in = tmp / "gt_in", tmp / "est_in"
    for rel in (f"{RECORDING}.hdf5", "test/insert_remove/1.hdf5"):
        (gt_in / rel).parent.mkdir(parents=True, exist_ok=True)
        (gt_in / rel).symlink_to((EGODEX / rel).resolve())
    mp4 = est_in / f"{RECORDING}.mp4"
    mp4.parent.mkdir(parents=True)
    mp4.symlink_to((EGODEX / f"{RECORDING}.mp4").resolve())
    with h5py.File(EGODEX / f"{RECORDING}.hdf5") as f:
        K = f["camera/intrinsic"][()].tolist()
    Path(str(mp4) + ".intrinsics.json").write_text(json.dumps({"K": K}))
    common = ("--executor", "local", "--no-progress", "--frame-size", "0")
    assert _run("extract", "--source", "egodex", "--input", str(gt_in), "--out", str(tmp / "gt"),
                *common) == 0
    assert _run("extract", "--source", "videos", "--input", str(est_in), "--out", str(tmp / "est"),
                "--fps", "5", *common) == 0
    return tmp / "est", tmp / "gt"


@pytest.fixture(scope="module")
def gt_episode(datasets):
    eps = read_scored_episodes(datasets[1])
    return next(e for e in eps.values() if e.source_path.startswith(RECORDING))


def test_egodex_without_video_passes_poses_through(datasets, tmp_path):
    rows = {r["episode_id"]: r for r in pq.read_table(datasets[1] / "meta/episodes.parquet").to_pylist()}
    r = rows["test/insert_remove/1"]
    assert r["status"] == "ok" and (r["width"], r["height"]) == (1920, 1080)
    extra = json.loads(r["extra"])
    assert extra["video"] is None and extra["image_size_from"] == "K"
    assert r["num_frames"] == extra["pose_frames"]
    # with frames requested, the missing video stays a clear per-episode error
    out = tmp_path / "with_frames"
    ids = _ids_file(tmp_path, "test/insert_remove/1")
    code = _run("extract", "--source", "egodex", "--input", str(datasets[1].parent / "gt_in"),
                "--out", str(out), "--executor", "local", "--no-progress", "--ids", str(ids))
    assert code != 0
    failed = pq.read_table(out / "meta/episodes.parquet").to_pylist()[0]
    assert failed["status"] == "failed" and "1.mp4: video file not found" in failed["error"]


def _ids_file(tmp_path: Path, *ids: str) -> Path:
    p = tmp_path / "ids.txt"
    p.write_text("\n".join(ids))
    return p


# ----------------------------------------------------------------------------- exact figures on real GT


def test_ground_truth_against_itself_is_exact(gt_episode):
    f = figures(score_episode(gt_episode, copy.deepcopy(gt_episode), (1, 6)), True)
    h = f["hands"]
    assert h["gt_hands_in_view"] > 100 and h["detection"] == 1.0 and h["side_correct"] == 1.0
    for k in ("kp2d_px", "mpjpe_cam_mm", "mpjpe_root_mm", "wrist_depth_error_pct"):
        assert h[k] == 0.0, k
    assert h["pa_mpjpe_mm"] < 1e-6
    for stride in ("1", "6"):
        for variant in ("with_camera", "camera_frame"):
            m = f["motion"][stride][variant]
            assert m["samples"] > 50 and m["error_mm"] == 0.0 and m["true_mm"] > 0
        c = f["camera"]["strides"][stride]
        assert c["rotation_error_deg"] == 0.0 and c["true_rotation_deg"] > 0
    assert f["camera"]["strides"]["6"]["direction_error_deg"] == 0.0
    assert f["camera"]["strides"]["6"]["scale_error_pct"] == 0.0
    assert f["camera"]["end_rotation_error_deg"] == 0.0


def _perturbed(ep, shift=None, rotate_deg_per_frame=None, drop_slot=None, swap=False):
    e = copy.deepcopy(ep)
    if shift is not None:
        e.keypoints_cam = e.keypoints_cam.astype(np.float64) + shift
        e.keypoints_2d = project(e.keypoints_cam, e.intrinsics.K)
    if rotate_deg_per_frame is not None:  # the whole trajectory about the world z axis, k deg at frame k
        angles = np.radians(rotate_deg_per_frame) * e.source_frame_index
        W = np.tile(np.eye(4), (len(e), 1, 1))
        W[:, :3, :3] = matrix_from_rotvec(np.stack([np.zeros_like(angles), np.zeros_like(angles), angles], 1))
        e.T_world_cam = W @ e.T_world_cam
    if drop_slot is not None:
        e.hand_valid = e.hand_valid.copy()
        e.hand_valid[:, drop_slot] = False
        e.keypoints_cam[:, drop_slot] = np.nan
        e.keypoints_2d[:, drop_slot] = np.nan
    if swap:
        for name in ("keypoints_cam", "keypoints_2d", "hand_valid"):
            setattr(e, name, getattr(e, name)[:, ::-1].copy())
    return e


def test_known_perturbations_give_back_their_figures(gt_episode):
    gt = gt_episode
    shifted = figures(score_episode(_perturbed(gt, shift=np.array([0.01, 0.0, 0.0])), gt, (1, 6)))
    assert shifted["hands"]["detection"] == 1.0
    assert shifted["hands"]["mpjpe_cam_mm"] == pytest.approx(10.0, abs=1e-3)
    assert shifted["hands"]["mpjpe_root_mm"] == pytest.approx(0.0, abs=1e-3)
    assert shifted["hands"]["pa_mpjpe_mm"] == pytest.approx(0.0, abs=1e-3)
    assert shifted["motion"]["6"]["camera_frame"]["error_mm"] == pytest.approx(0.0, abs=1e-3)

    rotated = figures(score_episode(_perturbed(gt, rotate_deg_per_frame=1.0), gt, (1, 6)))
    assert rotated["camera"]["strides"]["1"]["rotation_error_deg"] == pytest.approx(1.0, abs=1e-4)
    assert rotated["camera"]["strides"]["6"]["rotation_error_deg"] == pytest.approx(6.0, abs=1e-4)
    last = int(gt.source_frame_index[gt.camera_valid][-1] - gt.source_frame_index[gt.camera_valid][0])
    assert rotated["camera"]["end_rotation_error_deg"] == pytest.approx(float(last), abs=1e-3)
    assert rotated["hands"]["mpjpe_cam_mm"] == 0.0  # hands untouched

    K = gt.intrinsics
    in_view = hands_in_view(gt.keypoints_cam, gt.keypoints_2d, gt.hand_valid, K.width, K.height)
    dropped = figures(score_episode(_perturbed(gt, drop_slot=0), gt, (1,)))
    assert dropped["hands"]["detection"] == pytest.approx(in_view[:, 1].sum() / in_view.sum(), abs=1e-12)
    assert dropped["hands"]["mpjpe_cam_mm"] == 0.0

    half = copy.deepcopy(gt)  # the same hands extracted on a half-size grid: pixels are rescaled, not errors
    half.intrinsics = gt.intrinsics.scaled(gt.intrinsics.width // 2, gt.intrinsics.height // 2)
    half.keypoints_2d = (gt.keypoints_2d + 0.5) * 0.5 - 0.5
    f_half = figures(score_episode(half, gt, (1,)))
    assert f_half["hands"]["detection"] == 1.0 and f_half["hands"]["kp2d_px"] == pytest.approx(0.0, abs=1e-3)
    assert f_half["hands"]["est_reprojection_px"] == pytest.approx(0.0, abs=1e-3) and f_half["notes"]

    swapped = figures(score_episode(_perturbed(gt, swap=True), gt, (1,)))
    assert swapped["hands"]["detection"] == 1.0 and swapped["hands"]["side_correct"] == 0.0
    assert swapped["hands"]["mpjpe_cam_mm"] == 0.0
    assert swapped["motion"]["1"]["camera_frame"]["error_mm"] == 0.0


# ----------------------------------------------------------------------------- CLI end to end, bad input


def test_score_cli_on_the_estimate_end_to_end(datasets, tmp_path):
    est, gt = datasets
    out = tmp_path / "score.json"
    assert _run("score", str(est), str(gt), "--stride", "6,12", "--json", str(out)) == 0
    report = json.loads(out.read_text())
    assert report["only_gt"] == ["test/insert_remove/1"] and not report["failed"]
    f = report["overall"]
    assert f["frames"] == 16  # 94 frames at 30 Hz resampled to 5 fps
    h = f["hands"]
    assert h["gt_hands_in_view"] > 0 and 0 < h["detection"] <= 1
    for k in ("kp2d_px", "mpjpe_cam_mm", "pa_mpjpe_mm", "wrist_depth_error_pct", "est_reprojection_px"):
        assert np.isfinite(h[k]) and h[k] >= 0, k
    m = f["motion"]["6"]
    assert m["with_camera"]["samples"] > 0 and np.isfinite(m["with_camera"]["error_mm"])
    assert np.isfinite(m["camera_frame"]["scale_aligned_error_mm"])
    c = f["camera"]["strides"]["6"]
    assert np.isfinite(c["rotation_error_deg"]) and c["scale_error_pct"] is None  # VO is not metric
    assert np.isfinite(f["camera"]["end_rotation_error_deg"])


def _edited_copy(src: Path, dst: Path, edit) -> Path:
    shutil.copytree(src, dst)
    path = dst / "meta/episodes.parquet"
    table = pq.read_table(path)
    rows = [edit(dict(r)) for r in table.to_pylist()]
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), path)
    return dst


def test_bad_input_names_both_datasets_and_the_episode(datasets, tmp_path, capsys):
    est, gt = datasets

    def moved(r):
        r["source_path"] = "elsewhere/" + r["source_path"]
        return r

    other = _edited_copy(gt, tmp_path / "other", moved)
    assert _run("score", str(est), str(other)) == 2
    err = capsys.readouterr().err
    assert "no recordings in common" in err and str(est) in err and str(other) in err
    est_id = read_scored_episodes(est).popitem()[0]
    pairs = tmp_path / "pairs.txt"
    pairs.write_text(f"# est gt\n{est_id} elsewhere/{RECORDING}\n")
    out = tmp_path / "paired.json"
    assert _run("score", str(est), str(other), "--pairs", str(pairs), "--json", str(out)) == 0
    assert json.loads(out.read_text())["overall"]["hands"]["matched"] > 0

    def no_camera(r):
        r["camera_estimator"] = "none"
        return r

    def shorter(r):
        if r["source_path"].startswith(RECORDING):
            r["row_end"], r["num_frames"] = r["row_start"] + 40, 40
        return r

    cases = {"no_camera": (no_camera, "has no camera poses"), "shorter": (shorter, "different frame counts")}
    for name, (edit, message) in cases.items():
        bad = _edited_copy(gt, tmp_path / name, edit)
        out = tmp_path / f"{name}.json"
        assert _run("score", str(est), str(bad), "--json", str(out)) == 2, name
        failed = json.loads(out.read_text())["failed"]
        assert list(failed) == [RECORDING]
        text = failed[RECORDING]
        assert message in text and str(est) in text and str(bad) in text and RECORDING in text
    out = tmp_path / "estimated.json"
    assert _run("score", str(est), str(est), "--json", str(out)) == 2  # an estimate as ground truth
    text = json.loads(out.read_text())["failed"][RECORDING]
    assert "is itself estimated" in text and "mediapipe" in text


# ------------------------------------------------------------------------ metric functions, exact numbers


def test_matching_pairs_by_position_and_excludes_far_hands():
    rng = np.random.default_rng(0)
    hand = rng.uniform(0, 100, (21, 2))
    ref = np.stack([np.stack([hand, hand + 300])] * 3)  # 3 frames, left at 0, right at +300 px
    other = ref[:, ::-1].copy()  # sides swapped
    other[2, 0] += 1000  # frame 2: the other's slot 0 (ref's right hand) is far away
    valid = np.ones((3, 2), bool)
    pairs = match_hands(ref, valid, other, valid)
    np.testing.assert_array_equal(pairs.other_for_ref, [[1, 0], [1, 0], [1, -1]])
    assert len(pairs) == 5


def test_procrustes_batch_recovers_similarity():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(4, 21, 3))
    R = matrix_from_rotvec(rng.normal(size=(4, 3)))
    Y = 1.7 * np.einsum("pij,pkj->pki", R, X) + rng.normal(size=(4, 1, 3))
    assert np.abs(procrustes_align_batch(X, Y) - Y).max() < 1e-10
    mirrored = X * np.array([-1.0, 1.0, 1.0])
    assert np.abs(procrustes_align_batch(mirrored, X) - X).max() > 1e-3  # no reflections


def test_stride_pairs_follow_source_frames():
    i, j = mm.stride_pairs(np.array([0, 6, 12, 13, 18, 30]), 6)
    np.testing.assert_array_equal(i, [0, 1, 2])  # (0, 6) (6, 12) (12, 18); 13, 18 and 30 have no partner
    np.testing.assert_array_equal(j, [1, 2, 4])


def test_camera_metrics_known_motion():
    n = 5
    T_gt = np.tile(np.eye(4), (n, 1, 1))
    T_gt[:, :3, 3] = np.arange(n)[:, None] * np.array([0.02, 0.0, 0.0])  # 2 cm per frame along x
    T_est = T_gt.copy()
    T_est[:, :3, 3] = np.arange(n)[:, None] * np.array([0.0, 0.04, 0.0])  # along y, twice as far
    T_est[:, :3, :3] = matrix_from_rotvec(np.arange(n)[:, None] * np.array([0.0, 0.0, np.radians(2.0)]))
    i, j = mm.stride_pairs(np.arange(n), 1)
    s = cm.camera_samples(T_est, T_gt, np.ones(n, bool), i, j)
    np.testing.assert_allclose(s.rotation_deg, 2.0, atol=1e-9)
    # est translation in camera i is R_i^T (0, 0.04, 0) = 0.04 (sin 2i, cos 2i, 0); the true one is along x
    np.testing.assert_allclose(s.direction_deg, 90.0 - 2.0 * i, atol=1e-9)
    np.testing.assert_allclose(s.scale_ratio, 2.0, atol=1e-12)
    err, true = cm.end_rotation_error_deg(T_est, T_gt, np.ones(n, bool))
    assert err == pytest.approx(8.0, abs=1e-9) and true == 0.0


def test_motion_scale_alignment_removes_a_pure_scale():
    rng = np.random.default_rng(2)
    gt = rng.normal(size=(6, 2, 21, 3)) * 0.01 + np.array([0, 0, 0.4])
    est = 1.5 * gt  # depth bias: everything 1.5x further, motion 1.5x larger
    for_gt = np.tile([0, 1], (6, 1))
    i, j = mm.stride_pairs(np.arange(6), 2)
    r = mm.motion_results(est, gt, for_gt, i, j)["camera_frame"]
    assert len(r.error_m) == 2 * len(i) and np.all(r.error_m > 0)
    assert r.scales[0] == pytest.approx(1 / 1.5, rel=1e-12)
    np.testing.assert_allclose(r.aligned_error_m, 0.0, atol=1e-12)


def test_scores_do_not_depend_on_the_chunking(gt_episode, monkeypatch):
    """Scoring walks episodes in chunks of rows; 7-row chunks (pairs, hands and frame pairs split
    everywhere) give the same samples as one chunk."""
    from dexhands_data.fidelity import batched

    est = copy.deepcopy(gt_episode)
    rng = np.random.default_rng(5)
    est.keypoints_cam = est.keypoints_cam + rng.normal(0, 0.01, est.keypoints_cam.shape).astype(np.float32)
    spin = np.tile(np.eye(4), (len(est), 1, 1))
    angles = np.radians(0.3) * np.arange(len(est))
    spin[:, :3, :3] = matrix_from_rotvec(angles[:, None] * np.array([0.0, 0.0, 1.0]))
    est.T_world_cam = est.T_world_cam @ spin
    whole = score_episode(est, gt_episode, (1, 6))
    monkeypatch.setattr(batched.chunk_slices, "__defaults__", (7,))
    chunked = score_episode(est, gt_episode, (1, 6))
    for f in ("kp2d_px", "mpjpe_cam_m", "pa_mpjpe_m", "wrist_depth_ratio"):
        np.testing.assert_allclose(getattr(chunked.hands.errors, f), getattr(whole.hands.errors, f),
                                   rtol=1e-6)
    for stride in (1, 6):
        for variant, r in whole.motion[stride].items():
            c = chunked.motion[stride][variant]
            np.testing.assert_allclose(c.error_m, r.error_m, rtol=1e-6)
            np.testing.assert_allclose(c.aligned_error_m, r.aligned_error_m, rtol=1e-5)
            assert c.scales[0] == pytest.approx(r.scales[0], rel=1e-6)
        np.testing.assert_allclose(chunked.camera[stride].rotation_deg, whole.camera[stride].rotation_deg)


def test_relative_poses_are_rigid_and_a_held_still_estimate_has_no_direction():
    n = 8
    T_gt = np.tile(np.eye(4), (n, 1, 1))
    T_gt[:, 0, 3] = 0.02 * np.arange(n)
    T_gt[:, 3, 3] = 0.99999976  # as EgoDex stores it: the homogeneous entry must not scale anything
    T_gt[:, :3, 3] += np.array([1.0, 1.6, -0.2])
    i, j = mm.stride_pairs(np.arange(n), 1)
    rel = relative_poses(T_gt, i, j)
    np.testing.assert_allclose(rel.t, np.tile([[0.02], [0.0], [0.0]], (1, n - 1)), atol=1e-15)
    held = np.tile(np.eye(4), (n, 1, 1))  # an estimate that never moves
    s = cm.camera_samples(held, T_gt, np.ones(n, bool), i, j)
    assert len(s.direction_deg) == n - 1 and np.all(s.direction_deg == 90.0)
