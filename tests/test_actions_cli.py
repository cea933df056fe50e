"""``dexdata actions``: poses and actions of chosen frames of one stored episode."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from dexhands_data.actions import compute_actions, dexwm_official_poses
from dexhands_data.cli import actions as cli_actions
from dexhands_data.geometry import se3
from window_data import build, episode


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="dexdata")
    cli_actions.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("a") / "dexwm-actions"
    ep = episode("ep-7", n=20, seed=4, missing={1: [6]})
    return build(root, {("egodex", "train", "s0"): [episode("ep-1", n=5), ep]}), ep


def test_json_output_matches_library(dataset, capsys):
    root, ep = dataset
    assert run_cli(["actions", str(root), "--episode", "ep-7", "--frames", "2,6,11", "--convention",
                    "dexwm-official", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["frames"] == [2, 6, 11] and out["wrap"] == "mod2pi" and out["hand_valid"][1] == [True, False]
    args = (ep.hands.keypoints_cam, ep.hands.valid, ep.camera.T_world_cam, ep.camera.valid, [2, 6, 11])
    np.testing.assert_array_equal(np.array(out["poses"]), dexwm_official_poses(*args))
    np.testing.assert_array_equal(np.array(out["actions"], dtype=np.float32),
                                  compute_actions("dexwm-official", *args))
    assert np.array(out["poses"]).shape == (3, 44, 3) and np.array(out["actions"]).shape == (2, 44, 3)

    assert run_cli(["actions", str(root), "--episode", "ep-7", "--frames", "5,6", "--json"]) == 0
    rel = json.loads(capsys.readouterr().out)
    assert rel["convention"] == "relative" and rel["wrap"] is None
    assert all(v is None for row in rel["actions"][0][21:42] for v in row)  # right hand missing at 6: null
    assert rel["poses"][0][42] == [0.0, 0.0, 0.0]
    mask = np.array(rel["action_mask"], dtype=bool)
    assert rel["translation_metric"] and mask.shape == (1, 44, 3)
    assert not mask[0, 21:42].any() and mask[0, :21].all() and mask[0, 42:].all()


def test_text_output_and_errors(dataset, capsys):
    root, _ = dataset
    assert run_cli(["actions", str(root), "--episode", "ep-1"]) == 0
    text = capsys.readouterr().out
    assert "frame 4" in text and "action 0 -> 1" in text
    assert run_cli(["actions", str(root), "--episode", "nope", "--frames", "0"]) == 2
    assert "no episode 'nope'" in capsys.readouterr().err
    assert run_cli(["actions", str(root), "--episode", "ep-1", "--frames", "0,9"]) == 2
    assert "[0, 4]" in capsys.readouterr().err
    assert run_cli(["actions", str(root / "missing"), "--episode", "ep-1"]) == 2


def test_static_camera_dexwm_official_zero_camera_actions(tmp_path, capsys):
    ep = episode("droid-0", n=6, source="droid", fps=15.0, missing={0: range(6)})
    ep.camera.T_world_cam[:] = se3(np.eye(3), [0.3, -0.2, 0.5])
    root = build(tmp_path / "dexwm-actions", {("droid", "train", "s0"): [ep]})
    argv = ["actions", str(root), "--episode", "droid-0", "--convention", "dexwm-official", "--json"]
    assert run_cli(argv) == 0
    out = json.loads(capsys.readouterr().out)
    a = np.array(out["actions"])
    assert (a[:, 42:] == 0).all() and (a[:, :21] == 0).all() and (np.array(out["poses"])[:, :21] == 0).all()
