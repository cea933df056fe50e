"""``dexdata publish``: refuses invalid datasets, uploads exactly the dataset files, and drives the real
Hub client up to the network boundary (offline in tests)."""

from __future__ import annotations

import argparse
import json

import huggingface_hub
import pytest

from dexhands_data.cli import publish as cli_publish
from dexhands_data.publish import PublishRefused, plan, publish, upload_files
from window_data import build, episode


class RecordingApi:
    """Stands in for HfApi to test what OUR code asks for; it applies the real client's file filter."""

    def __init__(self):
        self.calls = []

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))

    def upload_folder(self, **kwargs):
        from huggingface_hub.utils import filter_repo_objects
        from pathlib import Path

        root = Path(kwargs["folder_path"])
        rel = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
        sent = list(filter_repo_objects(rel, allow_patterns=kwargs["allow_patterns"],
                                        ignore_patterns=kwargs["ignore_patterns"]))
        self.calls.append(("upload_folder", sent, kwargs))


@pytest.fixture()
def dataset(tmp_path):
    root = build(tmp_path / "dexwm-actions", {("egodex", "train", "s0"): [episode("a", n=6)],
                                              ("droid", "train", "s0"): [episode("d", n=6, source="droid")]})
    (root / "data/egodex/train/.s1.parquet.tmp-123").write_bytes(b"partial")  # a crashed write
    return root


def test_uploads_dataset_files_only(dataset):
    api = RecordingApi()
    p = publish(dataset, "org/dexwm-actions", private=True, api=api)
    assert api.calls[0] == ("create_repo", "org/dexwm-actions", {"repo_type": "dataset", "private": True,
                                                                 "exist_ok": True})
    name, sent, kwargs = api.calls[1]
    assert kwargs["repo_type"] == "dataset" and kwargs["repo_id"] == "org/dexwm-actions"
    assert sent == p.files == ["README.md", "data/droid/train/s0.parquet", "data/egodex/train/s0.parquet",
                               "meta/episodes.parquet", "meta/info.json", "meta/stats.json"]
    assert "2 episodes" in kwargs["commit_message"]
    assert p.total_bytes == sum((dataset / f).stat().st_size for f in sent)


def test_refuses_invalid_dataset(dataset):
    (dataset / "data/egodex/train/s0.parquet").write_bytes(b"not parquet")
    api = RecordingApi()
    with pytest.raises(PublishRefused, match="unreadable Parquet"):
        publish(dataset, "org/x", api=api)
    assert api.calls == []


def test_refuses_stale_card(dataset):
    card = (dataset / "README.md").read_text()
    (dataset / "README.md").write_text(card.replace("config_name: droid", "config_name: robots"))
    with pytest.raises(PublishRefused, match="README.md"):
        plan(dataset, "org/x")


def test_refuses_source_without_licence(tmp_path):
    shards = {("mystery", "train", "s0"): [episode("m", n=4, source="mystery")]}
    root = build(tmp_path / "dexwm-actions", shards)
    assert json.loads((root / "meta/info.json").read_text())["sources"]["mystery"]["license"] == "unknown"
    with pytest.raises(PublishRefused, match="licence of source 'mystery' not stated"):
        plan(root, "org/x")


def test_real_client_reaches_the_network_boundary(dataset, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(huggingface_hub.errors.OfflineModeIsEnabled, match="api/repos/create"):
        publish(dataset, "org/dexwm-actions", api=huggingface_hub.HfApi(token="hf_test_token_not_real"))


def test_cli_dry_run_and_refusal(dataset, capsys, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    parser = argparse.ArgumentParser(prog="dexdata")
    cli_publish.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["publish", str(dataset), "--repo-id", "org/x", "--dry-run"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "would upload 6 files" in out and "meta/stats.json" in out and ".tmp" not in out
    real = parser.parse_args(["publish", str(dataset), "--repo-id", "org/x"])
    assert real.func(real) == 2  # offline: a one-line error, no traceback
    assert "upload to org/x failed" in capsys.readouterr().err
    (dataset / "meta/stats.json").unlink()
    assert args.func(args) == 1
    assert "stats.json: missing" in capsys.readouterr().err
    assert upload_files(dataset)[0] == "README.md"
