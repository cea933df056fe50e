"""``dexdata info``: per-source counts, hours, validity fractions, failures and disk size."""

from __future__ import annotations

import argparse
import json

import pytest

from dexhands_data.cli import info as cli_info
from dexhands_data.dataset.summary import summarize, table_rows
from dexhands_data.records import EpisodeError
from dexhands_data.dataset.writer import DatasetWriter, FailedEpisode
from window_data import episode, jpeg_frames


def run_cli(argv):
    parser = argparse.ArgumentParser(prog="dexdata")
    cli_info.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("i") / "dexwm-actions"
    w = DatasetWriter(root)
    a = episode("a", n=30, images=jpeg_frames(shared_data, 30), missing={0: range(10), 1: range(5)},
                camera_invalid=(1, 2))
    b = episode("b", n=30, seed=1)
    bad = FailedEpisode(episode("x", n=2).ref, "in/x.mp4: truncated stream after frame 41")
    bad2 = FailedEpisode(episode("y", n=2).ref, "in/y.mp4: truncated stream after frame 41")
    w.write_shard("egodex", "train", "s0", [a, b, bad, bad2], "h")
    d = episode("d", n=15, fps=15.0, source="droid", missing={0: range(15)})
    w.write_shard("droid", "train", "s0", [d], "h")
    w.finalize()
    return root


def test_summary_numbers(dataset):
    s = summarize(dataset)
    ego, droid = {x.source: x for x in s.sources}["egodex"], {x.source: x for x in s.sources}["droid"]
    assert (ego.episodes, ego.ok, ego.failed, ego.frames) == (4, 2, 2, 60)
    assert ego.hours == pytest.approx(60 / 30 / 3600)
    assert ego.hand_visible == pytest.approx(55 / 60)  # a: frames 0-4 have no hand at all
    assert ego.both_hands == pytest.approx(50 / 60)
    assert ego.camera_valid == pytest.approx(58 / 60) and ego.images == pytest.approx(0.5)
    assert ego.top_failures == [("truncated stream after frame 41", 2)]
    assert droid.both_hands == 0 and droid.hand_visible == 1 and droid.hours == pytest.approx(1 / 3600)
    total = s.total
    assert total.frames == 75 and total.hand_visible == pytest.approx(70 / 75)
    assert ego.disk_bytes == (dataset / "data/egodex/train/s0.parquet").stat().st_size
    assert s.disk_bytes > ego.disk_bytes + droid.disk_bytes
    rows = table_rows(s)
    assert rows[0][:3] == ["source", "split", "eps"] and rows[-1][0] == "all" and rows[-1][4] == "75"


def test_cli_table_and_json(dataset, capsys):
    assert run_cli(["info", str(dataset)]) == 0
    text = capsys.readouterr().out
    assert "egodex" in text and "droid" in text and "92%" in text and "truncated stream" in text
    assert run_cli(["info", str(dataset), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["total"]["ok"] == 3 and out["total"]["failed"] == 2
    assert run_cli(["info", str(dataset.parent / "nope")]) == 2


def test_missing_meta_names_the_file(tmp_path):
    with pytest.raises(EpisodeError, match="episodes.parquet: missing"):
        summarize(tmp_path)
