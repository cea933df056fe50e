"""Schema v2 (the episode column ``distortion``) and the v1 datasets it must keep reading: round trip of
the lens through the writer and the readers, ``validate`` on both versions, and resume of a v1
dataset by the v2 writer (it works: old episodes read as pinhole, the dataset becomes v2)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dexhands_data.cli.main import main
from dexhands_data.dataset.card import card_text
from dexhands_data.dataset.reader import read_episode
from dexhands_data.dataset.validate import validate_dataset
from dexhands_data.dataset.writer import DatasetWriter
from dexhands_data.distortion import Distortion
from dexhands_data.dataset.episodes import EpisodeMeta, row_intrinsics
from dexhands_data.loader.crop import CropGeometry
from dexhands_data.loader.windows import WindowConfig, build_window
from dexhands_data.schema import DATASET_CONVENTIONS, SCHEMA_VERSION, arrow_schema, column_specs
from fakes import synthetic_episode

LENS = Distortion(-0.2, 0.03, 0.001, -0.0005)


def lens_episode(episode_id: str, seed: int = 0):
    """A synthetic episode whose camera has LENS; its 2D are the 3D seen through it."""
    ep = synthetic_episode(episode_id, seed=seed)
    ep.intrinsics = replace(ep.intrinsics, source="sidecar", distortion=LENS)
    ep.hands.keypoints_2d[:, 1] = ep.intrinsics.project(ep.hands.keypoints_cam[:, 1]).astype(np.float32)
    return ep


def write(root: Path, episodes, shard: str = "s0") -> None:
    writer = DatasetWriter(root)
    writer.write_shard("videos", "train", shard, episodes, "h")
    writer.finalize({"videos": {"test": True}})


def downgrade_to_v1(root: Path) -> None:
    """What the v1 writer left: no ``distortion`` column or marker key, schema_version 1.0, its card."""
    rows = pq.read_table(root / "meta/episodes.parquet").to_pylist()
    for r in rows:
        del r["distortion"]
    pq.write_table(pa.Table.from_pylist(rows, schema=arrow_schema("episode", "1.0")), root / "meta/episodes.parquet")
    for marker in (root / "meta/shards").rglob("*.json"):
        data = json.loads(marker.read_text())
        for r in data["episodes"]:
            r.pop("distortion", None)
        marker.write_text(json.dumps(data, sort_keys=True))
    info = json.loads((root / "meta/info.json").read_text())
    info["schema_version"] = "1.0"
    info["conventions"] = {k: v for k, v in DATASET_CONVENTIONS.items() if k != "lens"}  # v1's, in order
    (root / "README.md").write_text(card_text(info))
    (root / "meta/info.json").write_text(json.dumps(info, indent=2, sort_keys=True))


def test_v2_adds_only_the_distortion_column():
    v1 = [c.name for c in column_specs("episode", "1.0")]
    v2 = [c.name for c in column_specs("episode", "2.0")]
    assert SCHEMA_VERSION == "2.0" and [n for n in v2 if n not in v1] == ["distortion"]
    assert column_specs("frame", "1.0")[1:] == column_specs("frame", "2.0")[1:]
    with pytest.raises(ValueError, match="schema_version '3.0'"):
        column_specs("episode", "3.0")


def test_the_lens_round_trips_through_the_dataset(tmp_path):
    root = tmp_path / "dexwm-actions"
    write(root, [lens_episode("a"), synthetic_episode("b", seed=1)])
    report = validate_dataset(root)
    assert report.ok, report.problems
    assert report.version == "2.0"
    rows = {r["episode_id"]: r for r in pq.read_table(root / "meta/episodes.parquet").to_pylist()}
    assert rows["a"]["distortion"] == LENS.to_list() and rows["b"]["distortion"] is None
    meta = EpisodeMeta.from_row(rows["a"])
    assert meta.intrinsics.distortion == LENS and EpisodeMeta.from_row(rows["b"]).intrinsics.distortion is None
    assert json.loads((root / "meta/info.json").read_text())["schema_version"] == "2.0"
    # the loader's HC keypoints of the lens episode land on its stored (distorted) 2D
    ep = read_episode(root, "a")
    ep.meta = meta
    sample = build_window(ep, np.arange(3), WindowConfig(frames="none"), 0)
    wrist = CropGeometry.for_source(640, 480).source_to_crop(ep.keypoints_2d[:3, 1, 0].astype(np.float64))
    assert sample["hc_visible"].numpy()[:, 6].all()  # the right wrist (HC row 6)
    np.testing.assert_allclose(sample["hc_keypoints"].numpy()[:, 6], wrist, atol=1e-3)


def test_validate_names_a_lens_that_folds_the_frame(tmp_path):
    root = tmp_path / "ds"
    write(root, [lens_episode("a")])
    table = pq.read_table(root / "meta/episodes.parquet")
    rows = table.to_pylist()
    rows[0]["distortion"] = [-0.9, 0.0, 0.0, 0.0]
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), root / "meta/episodes.parquet")
    problems = "\n".join(validate_dataset(root).problems)
    assert "meta/episodes.parquet: episode a: distortion [-0.9, 0.0, 0.0, 0.0]" in problems
    assert "folds the image" in problems
    with pytest.raises(ValueError, match="episode a: bad distortion"):
        row_intrinsics({**rows[0], "distortion": [float("nan"), 0.0, 0.0, 0.0]})


def test_a_v1_dataset_still_validates_and_reads_as_pinhole(tmp_path, capsys):
    root = tmp_path / "dexwm-actions"
    write(root, [synthetic_episode("a"), synthetic_episode("b", seed=1)])
    downgrade_to_v1(root)
    assert "distortion" not in pq.read_schema(root / "meta/episodes.parquet").names
    report = validate_dataset(root)
    assert report.ok, report.problems
    assert report.version == "1.0"  # checked against schemas/v1
    assert main(["validate", str(root)]) == 0 and "valid (schema 1.0; 2 episodes" in capsys.readouterr().out
    rows = pq.read_table(root / "meta/episodes.parquet").to_pylist()
    meta = EpisodeMeta.from_row(rows[0])
    assert meta.intrinsics is not None and meta.intrinsics.distortion is None
    ep = read_episode(root, "a")
    ep.meta = meta
    sample = build_window(ep, np.arange(3), WindowConfig(frames="none"), 0)
    assert sample["hc_visible"].numpy().any()
    # a v1 file with a v2 column would be a contract violation, and validate says which
    rows[0]["distortion"] = [0.0] * 4
    pq.write_table(pa.Table.from_pylist(rows, schema=arrow_schema("episode", "2.0")), root / "meta/episodes.parquet")
    assert any("differ from the contract" in p for p in validate_dataset(root).problems)


def test_resume_of_a_v1_dataset_by_the_v2_writer(tmp_path):
    """The finished v1 shard is kept; its episode reads as pinhole (distortion null), the new one
    has its lens, and the folder is a valid v2 dataset."""
    root = tmp_path / "dexwm-actions"
    write(root, [synthetic_episode("a")], shard="s0")
    downgrade_to_v1(root)
    write(root, [lens_episode("b")], shard="s1")
    info = json.loads((root / "meta/info.json").read_text())
    assert info["schema_version"] == "2.0" and info["total_ok"] == 2
    rows = {r["episode_id"]: r for r in pq.read_table(root / "meta/episodes.parquet").to_pylist()}
    assert rows["a"]["distortion"] is None and rows["b"]["distortion"] == LENS.to_list()
    report = validate_dataset(root)
    assert report.ok, report.problems
