"""``dexdata extract --source videos`` end to end on real videos: Ray, MediaPipe, VO, writer, validate, load."""

from __future__ import annotations

import os

import numpy as np
import pyarrow.parquet as pq
import pytest

from dexhands_data.cli.main import main
from dexhands_data.schema import fixed_list_to_numpy
from dexhands_data.dataset.validate import validate_dataset

pytestmark = pytest.mark.slow


def _load(root, tmp_path, **kwargs):
    import datasets

    return datasets.load_dataset(str(root), split="train", cache_dir=str(tmp_path / "hf-cache"), **kwargs)


def test_corrupt_files_fail_alone_through_ray(shared_data, tmp_path, capsys):
    videos = tmp_path / "in"
    videos.mkdir()
    good = shared_data / "hand_video" / "mediapipe_hand_landmarker_test_video.mp4"
    os.symlink(good, videos / "good.mp4")
    (videos / "zero.mp4").write_bytes(b"")
    (videos / "notes.mp4").write_text("this is not a video\n" * 50)
    (videos / "cut.mp4").write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    out = tmp_path / "dexwm-actions"
    args = ["extract", "--input", str(videos), "--out", str(out), "--workers", "2", "--no-progress",
            "--model-complexity", "0", "--frame-size", "112"]
    assert main(args) == 1
    report = capsys.readouterr().err
    episodes = {e["source_path"]: e for e in pq.read_table(out / "meta/episodes.parquet").to_pylist()}
    assert episodes["good.mp4"]["status"] == "ok" and episodes["good.mp4"]["num_frames"] == 202
    for bad in ("zero.mp4", "notes.mp4", "cut.mp4"):
        assert episodes[bad]["status"] == "failed"
        assert f"{bad}: " in episodes[bad]["error"], episodes[bad]["error"]
        assert bad in report
    assert validate_dataset(out).ok
    ds = _load(out, tmp_path).with_format("numpy")
    assert len(ds) == 202 and ds[0]["keypoints_cam"].shape == (2, 21, 3)
    # a rerun skips the finished episode and still reports the failures in the exit code
    assert main(args) == 1
    assert "skipped 4 episodes in 4 finished shards" in capsys.readouterr().err.replace("\n", " ")


@pytest.mark.noncommercial
def test_egocentric_clip(shared_data, tmp_path):
    out = tmp_path / "dexwm-actions"
    code = main(["extract", "--input", str(shared_data / "egocentric_video_nc"), "--out", str(out),
                 "--executor", "local", "--no-progress"])
    assert code == 0
    assert validate_dataset(out).ok
    table = pq.read_table(next((out / "data").rglob("*.parquet")),
                          columns=["hand_valid", "keypoints_cam", "lift_residual_px", "camera_valid"])
    valid = fixed_list_to_numpy(table.column("hand_valid"), (2,)).astype(bool)
    assert len(valid) == 121
    both = valid.all(axis=1).mean()
    assert both > 0.6, f"both hands on only {both:.0%} of frames"
    kp = fixed_list_to_numpy(table.column("keypoints_cam"), (2, 21, 3))
    wrist_to_mcp = np.linalg.norm(kp[:, :, 9] - kp[:, :, 0], axis=-1)[valid]
    assert 0.06 < np.median(wrist_to_mcp) < 0.12
    assert table.column("camera_valid").to_numpy(zero_copy_only=False).mean() > 0.8
    ds = _load(out, tmp_path)
    assert ds[60]["image"].size == (398, 224)
