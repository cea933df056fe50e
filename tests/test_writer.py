"""Writer -> Parquet -> load_dataset round trip, and validate catching contract violations."""

from __future__ import annotations

import json
import os

import numpy as np
import pyarrow.parquet as pq
import pytest

from dexhands_data.images import encode_jpeg
from dexhands_data.schema import fixed_list_to_numpy
from dexhands_data.dataset.validate import validate_dataset
from dexhands_data.dataset.writer import DatasetWriter, FailedEpisode
from fakes import refs, synthetic_episode


@pytest.fixture()
def dataset(tmp_path):
    root = tmp_path / "dexwm-actions"
    writer = DatasetWriter(root)
    frames = [encode_jpeg(np.full((480, 640, 3), i * 10, np.uint8)) for i in range(12)]
    writer.write_shard("videos", "train", "s0", [synthetic_episode("b", images=frames), synthetic_episode("a", seed=1)], "h")
    writer.write_shard("videos", "test", "s1", [FailedEpisode(refs("c", split="test")[0], "c.mp4: truncated")], "h")
    writer.finalize({"videos": {"test": True}})
    return root


def test_round_trip_through_load_dataset(dataset, monkeypatch, tmp_path):
    import functools

    import datasets

    monkeypatch.chdir(dataset.parent)
    monkeypatch.setattr(datasets, "load_dataset", functools.partial(datasets.load_dataset, cache_dir=str(tmp_path / "c")))
    ds = datasets.load_dataset("dexwm-actions", split="train").with_format("numpy")
    assert len(ds) == 24
    rows = ds[:]
    assert rows["keypoints_cam"].shape == (24, 2, 21, 3) and rows["keypoints_cam"].dtype == np.float32
    assert rows["T_world_cam"].shape == (24, 4, 4)
    assert str(ds.data.schema.field("T_world_cam").type) == "fixed_size_list<item: fixed_size_list<item: double>[4]>[4]"
    assert list(rows["episode_id"][:12]) == ["a"] * 12  # sorted by episode id
    expected = synthetic_episode("a", seed=1)
    np.testing.assert_array_equal(rows["keypoints_cam"][:12], expected.hands.keypoints_cam.astype(np.float32))
    assert np.isnan(rows["keypoints_cam"][:, 0]).all() and not rows["hand_valid"][:, 0].any()
    assert np.isnan(rows["action"][11]).all() and np.isfinite(rows["action"][0, 21:42]).all()
    # a VO-like track (translation_metric False): no camera-position row, the rotation row is kept
    assert np.isnan(rows["action"][:, 42]).all() and np.isfinite(rows["action"][:11, 43]).all()
    # the image column round-trips as JPEG (episode b), null where not embedded (episode a)
    pil = datasets.load_dataset("dexwm-actions", split="train")[12]["image"]
    assert pil.size == (299, 224) and np.asarray(pil).mean() == pytest.approx(0, abs=2)
    assert datasets.load_dataset("dexwm-actions", split="train")[0]["image"] is None
    streamed = next(iter(datasets.load_dataset("dexwm-actions", split="train", streaming=True)))
    assert streamed["episode_id"] == "a" and np.asarray(streamed["keypoints_cam"]).shape == (2, 21, 3)
    per_source = datasets.load_dataset(str(dataset), "videos", split="train")
    assert len(per_source) == 24


def test_meta_files(dataset):
    episodes = pq.read_table(dataset / "meta/episodes.parquet").to_pylist()
    assert [e["episode_id"] for e in episodes] == ["a", "b", "c"]
    assert [(e["row_start"], e["row_end"]) for e in episodes[:2]] == [(0, 12), (12, 24)]
    assert episodes[2]["status"] == "failed" and episodes[2]["error"] == "c.mp4: truncated"
    info = json.loads((dataset / "meta/info.json").read_text())
    assert info["total_episodes"] == 3 and info["total_failed"] == 1 and info["total_frames"] == 24
    stats = json.loads((dataset / "meta/stats.json").read_text())
    relative = stats["action/relative"]
    assert len(relative["mean"]) == 132 and relative["count"][0] == 0  # left hand never valid
    table = pq.read_table(dataset / "data/videos/train/s0.parquet", columns=["action"])
    actions = fixed_list_to_numpy(table.column("action"), (44, 3)).reshape(-1, 132)
    assert relative["count"][63] == 22 and relative["mean"][63] == pytest.approx(np.nanmean(actions[:, 63]), abs=1e-7)
    assert not any(p.name.startswith(".") for p in dataset.rglob("*"))  # no temporaries left


def test_validate_accepts_written_dataset(dataset):
    report = validate_dataset(dataset)
    assert report.ok, report.problems
    assert report.episodes == 3 and report.rows == 24


def test_validate_names_each_violation(dataset):
    # an orphan shard, a broken row range and a wrong schema version are each reported with the file
    pq.write_table(pq.read_table(dataset / "data/videos/train/s0.parquet"), dataset / "data/videos/train/extra.parquet")
    episodes = pq.read_table(dataset / "meta/episodes.parquet")
    rows = episodes.to_pylist()
    rows[0]["row_end"] = 11
    pq.write_table(episodes.from_pylist(rows, schema=episodes.schema), dataset / "meta/episodes.parquet")
    info = json.loads((dataset / "meta/info.json").read_text())
    info["schema_version"] = "0.9"
    (dataset / "meta/info.json").write_text(json.dumps(info))
    problems = "\n".join(validate_dataset(dataset).problems)
    assert "data/videos/train/extra.parquet: shard is not referenced" in problems
    assert "episode a" in problems and "num_frames 12 != 11 rows" in problems
    assert "schema_version '0.9'" in problems


def test_validate_catches_nan_under_valid_flag(tmp_path):
    root = tmp_path / "ds"
    writer = DatasetWriter(root)
    writer.write_shard("videos", "train", "s0", [synthetic_episode("a")], "h")
    writer.finalize()
    table = pq.read_table(root / "data/videos/train/s0.parquet")
    valid = table.column("hand_valid").to_pylist()
    valid[4] = [True, True]  # claims the (missing, NaN) left hand is present
    import pyarrow as pa

    table = table.set_column(table.schema.get_field_index("hand_valid"), "hand_valid",
                             pa.array(valid, type=table.schema.field("hand_valid").type))
    pq.write_table(table, root / "data/videos/train/s0.parquet")
    problems = validate_dataset(root).problems
    assert any("keypoints_cam row 4 hand 0" in p for p in problems), problems


def test_contract_violation_becomes_failed_episode(tmp_path):
    ep = synthetic_episode("a")
    ep.hands.keypoints_cam[2, 1, 0] = np.nan
    rows = DatasetWriter(tmp_path).write_shard("videos", "train", "s0", [ep], "h")
    assert rows[0]["status"] == "failed"
    assert rows[0]["error"] == "a.mp4: frame 2 hand 1 is marked valid but has NaN/inf keypoints"
    assert not (tmp_path / "data/videos/train/s0.parquet").exists()


def test_long_episode_streams_row_groups(tmp_path):
    from dexhands_data.images import ImageSpool

    spool = ImageSpool()
    for i in range(1100):
        spool.append(encode_jpeg(np.full((48, 64, 3), i % 255, np.uint8), None))
    ep = synthetic_episode("long", n=1100, images=spool)
    DatasetWriter(tmp_path).write_shard("videos", "train", "s0", [ep], "h")
    pf = pq.ParquetFile(tmp_path / "data/videos/train/s0.parquet")
    assert pf.metadata.num_rows == 1100 and pf.metadata.num_row_groups == 3
    img = pf.read_row_group(2, columns=["image"]).column("image")[-1].as_py()["bytes"]
    assert img == spool[1099]
    assert os.path.getsize(tmp_path / "data/videos/train/s0.parquet") > 0


def test_rebuilt_folder_is_not_served_from_the_hf_cache(tmp_path, monkeypatch):
    """`datasets` keys its cache of a local folder on the card's info: the card carries split sizes,
    so plain load_dataset("dexwm-actions") sees a rebuilt folder, not the stale cached build."""
    import shutil

    import datasets

    monkeypatch.chdir(tmp_path)
    root = tmp_path / "dexwm-actions"
    cache = str(tmp_path / "cache")
    for n in (10, 24):
        shutil.rmtree(root, ignore_errors=True)
        writer = DatasetWriter(root)
        writer.write_shard("videos", "train", "s0", [synthetic_episode("a", n=n)], "h")
        writer.finalize()
        assert len(datasets.load_dataset("dexwm-actions", split="train", cache_dir=cache)) == n
