"""``dexdata compare-hands``: agreement of two hand tracks or two written datasets (real MediaPipe tracks)."""

from __future__ import annotations

import argparse
import copy
import json

import av
import numpy as np
import pytest

from dexhands_data.geometry import Intrinsics, matrix_from_rotvec
from dexhands_data.dataset.compare_hands import compare_datasets
from dexhands_data.hands.compare import compare_tracks, pool, procrustes_align
from dexhands_data.hands.mediapipe_backend import MediaPipeHands
from dexhands_data.records import CameraTrack, EpisodeData, EpisodeError, EpisodeRef, HandTrack, VideoFrame
from dexhands_data.dataset.writer import DatasetWriter

VIDEO = "hand_video/mediapipe_hand_landmarker_test_video.mp4"  # 640x360, an open hand moving
FRAMES = 60


@pytest.fixture(scope="module")
def tracks(shared_data) -> tuple[HandTrack, HandTrack, Intrinsics]:
    """The same 60 real frames through MediaPipe's lite (0) and full (1) hand models."""
    frames = []
    with av.open(str(shared_data / VIDEO)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i >= FRAMES:
                break
            frames.append(VideoFrame(i, i, i / 25.0, f.to_ndarray(format="rgb24")))
    K = Intrinsics.from_fov(640, 360, 70.0)
    out = []
    for complexity in (0, 1):
        session = MediaPipeHands(model_complexity=complexity).session(K)
        for fr in frames:
            session.step(fr)
        out.append(session.finish())
    return out[0], out[1], K


def test_identical_tracks_agree_exactly(tracks):
    lite, _, _ = tracks
    c = compare_tracks(lite, copy.deepcopy(lite))
    assert c.pairs == int(lite.valid.sum()) > 40
    assert c.kp2d_px_mean == 0 and c.kp2d_px_median == 0 and c.mpjpe_cam_mm == 0
    assert c.mpjpe_root_mm == 0 and c.pa_mpjpe_mm < 1e-9
    assert c.handedness_agreement == 1.0 and c.detection_agreement == 1.0


def test_lite_vs_full_model_small_but_nonzero(tracks):
    lite, full, _ = tracks
    c = compare_tracks(full, lite)
    print(json.dumps({k: v for k, v in c.to_dict().items() if k != "kp2d_px_per_keypoint"}, indent=1))
    assert c.pairs > 40 and c.handedness_agreement == 1.0
    # measured: 3.1 px mean 2D, 8.7 mm PA-MPJPE, 18 mm root-aligned, 44 mm in the camera frame (depth)
    assert 0.3 < c.kp2d_px_mean < 15.0
    assert 0.5 < c.pa_mpjpe_mm < 20.0 and c.pa_mpjpe_mm < c.mpjpe_root_mm < c.mpjpe_cam_mm
    assert len(c.kp2d_px_per_keypoint) == 21 and all(np.isfinite(c.kp2d_px_per_keypoint))


def test_swapped_and_missing_hands_are_counted(tracks):
    lite, _, _ = tracks
    b = copy.deepcopy(lite)
    frames = np.flatnonzero(lite.valid.any(axis=1))
    swapped, dropped = frames[:10], frames[10:15]
    for arr in (b.keypoints_cam, b.keypoints_2d, b.valid, b.confidence, b.score, b.lift_residual_px):
        arr[swapped] = arr[swapped][:, ::-1]
    b.valid[dropped] = False
    c = compare_tracks(lite, b)
    pairs = int(lite.valid.sum()) - int(lite.valid[dropped].sum())
    assert c.pairs == pairs
    assert c.handedness_agreement == pytest.approx(1 - int(lite.valid[swapped].sum()) / pairs)
    assert c.kp2d_px_mean == 0 and c.mpjpe_cam_mm == 0  # paired by position, not by slot
    assert c.detection_agreement == pytest.approx(pairs / int(lite.valid.sum()))  # B only lost hands


def test_procrustes_recovers_a_known_similarity():
    rng = np.random.default_rng(3)
    X = rng.normal(0, 0.05, (21, 3))
    R = matrix_from_rotvec(np.array([0.3, -0.8, 0.5]))
    Y = 1.7 * X @ R.T + [0.1, -0.2, 0.5]
    assert np.abs(procrustes_align(X, Y) - Y).max() < 1e-12
    mirrored = X * [-1, 1, 1]  # a reflection is not a rotation: a mirrored hand keeps a residual
    assert np.abs(procrustes_align(mirrored, X) - X).max() > 1e-3
    no_scale = procrustes_align(X, Y, scale=False)
    assert np.linalg.norm(no_scale - no_scale.mean(0)) == pytest.approx(np.linalg.norm(X - X.mean(0)))


def _episode(eid: str, track: HandTrack, K: Intrinsics) -> EpisodeData:
    n = len(track)
    ref = EpisodeRef(eid, "videos", f"/in/{eid}.mp4", f"{eid}.mp4")
    return EpisodeData(ref, "human", np.arange(n) / 25.0, np.arange(n), K, 25.0, track,
                       CameraTrack.not_estimated(n))


def split(t: HandTrack, a: int, b: int) -> HandTrack:
    """Frames [a, b) of a track."""
    return HandTrack(t.keypoints_cam[a:b], t.keypoints_2d[a:b], t.valid[a:b], t.confidence[a:b], t.score[a:b],
                     t.lift_residual_px[a:b], t.estimator)


def _cli(argv: list[str]) -> int:
    from dexhands_data.cli import compare_hands

    parser = argparse.ArgumentParser()
    compare_hands.add_parser(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


def test_compare_two_written_datasets_and_cli(tracks, tmp_path):
    lite, full, K = tracks
    half = FRAMES // 2
    roots = []
    for name, track in (("full", full), ("lite", lite)):
        w = DatasetWriter(tmp_path / name)
        w.write_shard("videos", "train", "s0", [_episode("ep0", split(track, 0, half), K),
                                                 _episode("ep1", split(track, half, FRAMES), K)], "h")
        if name == "lite":
            w.write_shard("videos", "train", "s1", [_episode("only_lite", split(track, 0, 5), K)], "h")
        w.finalize()
        roots.append(tmp_path / name)
    res = compare_datasets(*roots)
    assert sorted(res.episodes) == ["ep0", "ep1"] and res.only_b == ["only_lite"] and res.only_a == []
    direct = pool([compare_tracks(split(full, 0, half), split(lite, 0, half)),
                   compare_tracks(split(full, half, FRAMES), split(lite, half, FRAMES))])
    for key in ("pairs", "kp2d_px_mean", "mpjpe_cam_mm", "pa_mpjpe_mm", "handedness_agreement"):
        assert getattr(res.overall, key) == pytest.approx(getattr(direct, key), rel=1e-5)
    assert res.overall.estimator_a.startswith("mediapipe==")
    out = tmp_path / "cmp.json"
    assert _cli(["compare-hands", str(roots[0]), str(roots[1]), "--json", str(out)]) == 0
    saved = json.loads(out.read_text())
    assert saved["overall"]["pairs"] == res.overall.pairs and set(saved["episodes"]) == {"ep0", "ep1"}
    assert _cli(["compare-hands", str(roots[0]), str(tmp_path / "nowhere")]) == 2
    with pytest.raises(EpisodeError, match="nowhere/meta/episodes.parquet"):
        compare_datasets(roots[0], tmp_path / "nowhere")
