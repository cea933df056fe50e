"""``dexhands_data.load``: local folders (map-style, streaming, per-source configs), Hub ids, and
never a stale cached copy of another dataset for a path argument."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import dexhands_data
from dexhands_data.loader.hf import DatasetLocation, load_episodes, load_stats, resolve
from window_data import build, episode


def make(root, ids=("e0", "e1"), n=12, seed=0):
    eps = [episode(i, n=n, seed=seed + k) for k, i in enumerate(ids)]
    droid = [episode("d0", n=n, source="droid", seed=seed + 7, fps=15.0)]
    return build(root, {("egodex", "train", "s0"): eps, ("droid", "train", "s0"): droid,
                        ("egodex", "test", "s0"): [episode("t0", n=n, split="test", seed=seed + 9)]})


@pytest.fixture()
def cache(tmp_path):
    return str(tmp_path / "hf-cache")


def test_load_local_folder_map_style_streaming_and_configs(tmp_path, cache):
    root = make(tmp_path / "dexwm-actions")
    dd = dexhands_data.load(root, cache_dir=cache)
    assert sorted(dd) == ["test", "train"] and len(dd["train"]) == 36 and len(dd["test"]) == 12
    egodex = dexhands_data.load(str(root), "egodex", "train", cache_dir=cache)
    assert len(egodex) == 24 and set(egodex["source"]) == {"egodex"}
    droid = dexhands_data.load(root, "droid", "train", cache_dir=cache)
    assert len(droid) == 12 and set(droid["episode_id"]) == {"d0"}
    streamed = dexhands_data.load(root, "egodex", "train", streaming=True)
    rows = list(streamed)
    assert [r["episode_id"] for r in rows] == ["e0"] * 12 + ["e1"] * 12
    np.testing.assert_array_equal(np.asarray(rows[3]["keypoints_cam"], np.float32),
                                  egodex.with_format("numpy")[3]["keypoints_cam"])
    with pytest.raises(ValueError, match="no config 'ego4d'"):
        dexhands_data.load(root, "ego4d", cache_dir=cache)
    episodes = load_episodes(root)
    assert sorted(episodes.column("episode_id").to_pylist()) == ["d0", "e0", "e1", "t0"]
    assert "action/relative" in load_stats(root)


def test_bare_name_from_parent_folder(tmp_path, cache, monkeypatch):
    make(tmp_path / "dexwm-actions")
    monkeypatch.chdir(tmp_path)
    ds = dexhands_data.load("dexwm-actions", split="train", cache_dir=cache)
    assert len(ds) == 36
    import datasets

    assert len(datasets.load_dataset("dexwm-actions", split="train", cache_dir=cache)) == 36
    first = next(iter(datasets.load_dataset("dexwm-actions", split="train", streaming=True)))
    assert first["episode_id"] == "d0" and np.asarray(first["keypoints_cam"]).shape == (2, 21, 3)


def test_stale_cache_never_returned_for_a_path(tmp_path, cache, monkeypatch):
    """A dataset of the same name cached earlier is never served for a path argument: a missing folder
    is an error, and a rebuilt folder is re-read."""
    monkeypatch.chdir(tmp_path)
    make(tmp_path / "dexwm-actions", ids=("old0", "old1"))
    first = dexhands_data.load("dexwm-actions", split="train", cache_dir=cache)
    assert "old0" in set(first["episode_id"])
    shutil.rmtree(tmp_path / "dexwm-actions")
    with pytest.raises(FileNotFoundError, match="no such dataset folder"):
        dexhands_data.load("dexwm-actions", split="train", cache_dir=cache)
    with pytest.raises(FileNotFoundError):
        dexhands_data.load("./dexwm-actions", cache_dir=cache)
    # same path, new content (different episodes and length): the new data, not the cached copy
    make(tmp_path / "dexwm-actions", ids=("new0",), n=9, seed=3)
    again = dexhands_data.load("dexwm-actions", split="train", cache_dir=cache)
    assert set(again["episode_id"]) == {"new0", "d0"} and len(again) == 18


def test_resolve_path_or_hub_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "local").mkdir()
    assert resolve("local") == DatasetLocation(path=(tmp_path / "local").resolve())
    hub = DatasetLocation(repo_id="some-org/dexwm-actions", revision="v1")
    assert resolve("some-org/dexwm-actions", revision="v1") == hub
    for missing in ("dexwm-actions", "./some-org/dexwm-actions", "/abs/missing", "a/b/c", tmp_path / "nope"):
        with pytest.raises(FileNotFoundError):
            resolve(missing)
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(NotADirectoryError):
        resolve("file.txt")


def test_hub_id_goes_to_the_hub_client(monkeypatch, tmp_path):
    """An ``org/name`` that is not a local folder goes through the real ``datasets`` + ``huggingface_hub``
    client to the Hub: the HTTP transport (the network boundary) is replaced by one that records each
    request and answers 404, so the requests ``load`` makes are checked and nothing local is loaded."""
    import datasets
    import httpx2
    import huggingface_hub
    from huggingface_hub.utils import _http

    requests = []

    def hub(request):
        requests.append((request.method, str(request.url)))
        return httpx2.Response(404, headers={"X-Error-Code": "RepoNotFound"},
                               json={"error": "Repository not found"}, request=request)

    monkeypatch.chdir(tmp_path)  # no ./some-org/dexwm-actions folder to fall back to
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    huggingface_hub.set_client_factory(lambda: httpx2.Client(
        transport=httpx2.MockTransport(hub), event_hooks={"request": [_http.hf_request_event_hook]},
        follow_redirects=True))
    try:
        with pytest.raises(datasets.exceptions.DatasetNotFoundError, match="some-org/dexwm-actions"):
            dexhands_data.load("some-org/dexwm-actions", "droid", "train", revision="abc",
                               cache_dir=str(tmp_path / "cache"))
    finally:
        huggingface_hub.set_client_factory(_http.default_client_factory)
    urls = [url for _, url in requests]
    assert any(url.startswith("https://huggingface.co/datasets/some-org/dexwm-actions/resolve/abc/")
               for url in urls), urls
    assert not any("dexwm-actions" in url and "/abc/" not in url for url in urls), urls  # always at the revision


def test_read_rows_touches_only_needed_row_groups(tmp_path, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from dexhands_data.dataset.reader import read_rows

    pq.write_table(pa.table({"x": list(range(1000)), "y": [0.5] * 1000}), tmp_path / "s.parquet",
                   row_group_size=128)  # groups 0..7: [0, 128), [128, 256), ..., [896, 1000)
    read = []
    original = pq.ParquetFile.read_row_groups

    def recording(self, row_groups, columns=None, **kwargs):
        read.append((list(row_groups), columns))
        return original(self, row_groups, columns=columns, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "read_row_groups", recording)
    cases = [((0, 5), [0]), ((120, 300), [0, 1, 2]), ((990, 1000), [7]), ((0, 1000), list(range(8))),
             ((500, 500), None)]
    for (a, b), groups in cases:
        read.clear()
        table = read_rows(tmp_path / "s.parquet", a, b, columns=["x"])
        assert table.column_names == ["x"] and table.column("x").to_pylist() == list(range(a, b))
        assert read == ([] if groups is None else [(groups, ["x"])]), (a, b)
