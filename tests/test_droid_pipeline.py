"""``dexdata convert-droid`` end to end: runner integration, bad input per episode, resume, CLI."""

from __future__ import annotations

import argparse

import numpy as np
import pyarrow.parquet as pq
import pytest

from dexhands_data.cli import convert_droid as cli
from dexhands_data.pipelines.convert_droid import DroidInput, DroidSettings, run_convert_droid
from dexhands_data.pipelines.runner import RunConfig
from dexhands_data.dataset.validate import validate_dataset
from droid_fixtures import load_episode, write_raw_episode

GOOD = "RAIL+success+2023-04-17+t00"


@pytest.fixture(scope="module")
def raw_root(shared_data, tmp_path_factory):
    """A raw release with one good episode and the bad inputs of the issue."""
    ep = load_episode(shared_data)
    root = tmp_path_factory.mktemp("droid_raw")
    nan = load_episode(shared_data)
    nan.cartesian[40, 2] = np.nan
    cases = {
        "t00": dict(ep=ep),
        "t01_missing_key": dict(ep=ep, drop_h5_keys=("observation/robot_state/gripper_position",)),
        "t02_no_extrinsics": dict(ep=ep, drop_metadata=("ext1_cam_extrinsics",)),
        "t03_short_video": dict(ep=ep, video_frames=160),
        "t04_one_frame_short": dict(ep=ep, video_frames=165),
        "t05_nan": dict(ep=nan),
        "t06_no_left_camera": dict(ep=ep, drop_metadata=("left_mp4_path",)),
    }
    for i, (name, kw) in enumerate(cases.items()):
        write_raw_episode(root, rel=f"RAIL/success/2023-04-17/{name}", uuid=f"RAIL+{i:08x}+2023-04-17", **kw)
    return root


def test_bad_episodes_fail_with_reasons_and_the_rest_continues(raw_root, tmp_path):
    out = tmp_path / "ds"
    summary = run_convert_droid(DroidInput(str(raw_root)), DroidSettings(pseudo_hand="dexwm-official"),
                                RunConfig(out=str(out), executor="local", show_progress=False))
    status = {o.episode_id.split("+")[-1]: (o.status, o.error, o.frames) for o in summary.outcomes}
    assert status["t00"] == ("ok", None, 166)
    assert status["t04_one_frame_short"] == ("ok", None, 165)  # droid#54: explicit, recorded
    assert status["t01_missing_key"][0] == "failed"
    assert status["t01_missing_key"][1].endswith(
        "t01_missing_key/trajectory.h5: missing dataset observation/robot_state/gripper_position")
    reasons = {k: v[1] for k, v in status.items()}
    assert reasons["t02_no_extrinsics"].endswith(
        "t02_no_extrinsics: no ext1 camera extrinsics in this episode")
    assert reasons["t03_short_video"].endswith(
        "22008760.mp4: video has 160 frames but the trajectory has 166 steps")
    nan_reason = "t05_nan/trajectory.h5: cartesian_position has non-finite values at steps [40]"
    assert nan_reason in reasons["t05_nan"]
    no_left = "left_mp4_path None matches neither ext1_mp4_path nor ext2_mp4_path"
    assert no_left in reasons["t06_no_left_camera"]
    assert summary.failed == 5 and summary.exit_code == 1
    assert validate_dataset(out).ok
    table = pq.read_table(out / "meta/episodes.parquet").to_pylist()
    episodes = {e["episode_id"].split("+")[-1]: e for e in table}
    assert episodes["t00"]["camera_static"] and episodes["t00"]["world_frame"] == "robot_base"
    assert episodes["t00"]["task"] == "Put the marker in the pot"
    assert '"pseudo_hand": "dexwm-official"' in episodes["t00"]["extra"]
    assert "droid-dataset/droid#54" in episodes["t04_one_frame_short"]["extra"]
    rows = pq.read_table(next((out / "data" / "droid").rglob("*.parquet"))).to_pylist()
    assert {r["embodiment"] for r in rows} == {"parallel_gripper"}


def test_rerun_resumes(raw_root, tmp_path):
    cfg = RunConfig(out=str(tmp_path / "ds"), executor="local", show_progress=False)
    inp = DroidInput(str(raw_root), episode_ids=[GOOD, "RAIL/success/2023-04-17/t03_short_video"])
    first = run_convert_droid(inp, DroidSettings(embed_frames=False), cfg)
    assert sorted(o.status for o in first.outcomes) == ["failed", "ok"]
    again = run_convert_droid(inp, DroidSettings(embed_frames=False), cfg)
    assert again.outcomes == [] and again.skipped_episodes == 2


def test_cli_parses_and_runs(raw_root, tmp_path):
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers())
    out = tmp_path / "ds"
    args = parser.parse_args(["convert-droid", "--input", str(raw_root), "--out", str(out), "--format", "raw",
                              "--pseudo-hand", "oriented", "--camera", "ext2", "--episodes", GOOD,
                              "--frame-size", "0", "--executor", "local", "--no-progress"])
    assert args.func(args) == 0
    episodes = pq.read_table(out / "meta/episodes.parquet").to_pylist()
    assert [e["status"] for e in episodes] == ["ok"] and '"camera": "ext2"' in episodes[0]["extra"]


@pytest.mark.slow
def test_ray_run_matches_local(raw_root, tmp_path, fresh_ray):
    inp = DroidInput(str(raw_root), episode_ids=[GOOD, "RAIL/success/2023-04-17/t05_nan"])
    settings = DroidSettings(pseudo_hand="oriented")
    local = RunConfig(out=str(tmp_path / "local"), executor="local", show_progress=False)
    run_convert_droid(inp, settings, local)
    cfg = RunConfig(out=str(tmp_path / "ray"), workers=2, show_progress=False)
    remote = run_convert_droid(inp, settings, cfg)
    assert sorted(o.status for o in remote.outcomes) == ["failed", "ok"]
    for shard in (tmp_path / "local" / "data").rglob("*.parquet"):
        assert shard.read_bytes() == (tmp_path / "ray" / shard.relative_to(tmp_path / "local")).read_bytes()
