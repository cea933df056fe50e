"""The Ray runner's own logic: failures isolated per episode, summary and exit code, resume."""

from __future__ import annotations


import pyarrow.parquet as pq
import pytest

from dexhands_data.pipelines.runner import RunConfig, run_pipeline
from dexhands_data.pipelines.sharding import plan_shards
from dexhands_data.dataset.validate import validate_dataset
from fakes import FakeProcessor, refs


def test_shard_plan_is_deterministic():
    a = plan_shards(refs("e3", "e1", "e2", "e4", "e5"), 2)
    b = plan_shards(list(reversed(refs("e3", "e1", "e2", "e4", "e5"))), 2)
    assert [t.name for t in a] == [t.name for t in b]
    assert [[r.episode_id for r in t.refs] for t in a] == [["e1", "e2"], ["e3", "e4"], ["e5"]]
    with pytest.raises(ValueError, match="duplicate episode ids"):
        plan_shards(refs("x", "x"), 1)


def test_failures_are_isolated_and_reported(tmp_path):
    out = tmp_path / "ds"
    summary = run_pipeline(refs("ok1", "bad1", "crash1", "nan1", "ok2"), FakeProcessor, {"frames": 8},
                           RunConfig(out=str(out), episodes_per_shard=2, executor="local", show_progress=False))
    status = {o.episode_id: (o.status, o.error) for o in summary.outcomes}
    assert status["ok1"] == ("ok", None) and status["ok2"] == ("ok", None)
    assert status["bad1"] == ("failed", "bad1.mp4: cannot decode (test)")
    assert status["crash1"] == ("failed", "crash1.mp4: unexpected ZeroDivisionError: boom")
    assert "frame 3 hand 1 is marked valid but has NaN" in status["nan1"][1]
    assert summary.failed == 3 and summary.exit_code == 1 and summary.frames == 16
    assert validate_dataset(out).ok
    episodes = pq.read_table(out / "meta/episodes.parquet").to_pylist()
    assert sorted(e["episode_id"] for e in episodes if e["status"] == "ok") == ["ok1", "ok2"]


def test_rerun_skips_finished_shards_and_retries_failed(tmp_path):
    out = tmp_path / "ds"
    cfg = RunConfig(out=str(out), executor="local", show_progress=False)
    run_pipeline(refs("a", "bad"), FakeProcessor, {}, cfg)
    shard = next((out / "data").rglob("*.parquet"))
    mtime = shard.stat().st_mtime_ns
    again = run_pipeline(refs("a", "bad"), FakeProcessor, {}, cfg)
    assert again.outcomes == [] and again.skipped_shards == 2 and again.exit_code == 1
    assert shard.stat().st_mtime_ns == mtime
    retried = run_pipeline(refs("a", "bad"), FakeProcessor, {},
                           RunConfig(out=str(out), executor="local", show_progress=False, retry_failed=True))
    assert [o.episode_id for o in retried.outcomes] == ["bad"] and retried.skipped_shards == 1


def test_ray_executor_matches_local(tmp_path, fresh_ray):
    """Two Ray actors with fractional CPUs on this 2-core machine produce the same shards as a local run."""
    ids = refs("r1", "r2", "bad3", "r4")
    local = run_pipeline(ids, FakeProcessor, {}, RunConfig(out=str(tmp_path / "local"), executor="local",
                                                           show_progress=False))
    remote = run_pipeline(ids, FakeProcessor, {}, RunConfig(out=str(tmp_path / "ray"), workers=2,
                                                            show_progress=False))
    assert sorted((o.episode_id, o.status) for o in remote.outcomes) == sorted(
        (o.episode_id, o.status) for o in local.outcomes)
    for shard in (tmp_path / "local" / "data").rglob("*.parquet"):
        twin = tmp_path / "ray" / shard.relative_to(tmp_path / "local")
        assert shard.read_bytes() == twin.read_bytes()  # byte-identical shards
    assert validate_dataset(tmp_path / "ray").ok


def test_retry_where_every_episode_now_fails_leaves_no_orphan_shard(tmp_path):
    """A shard rewritten by --retry-failed with no ok episode left must not keep its old Parquet file."""
    from dexhands_data.dataset.writer import DatasetWriter, FailedEpisode

    out = tmp_path / "ds"
    run_pipeline(refs("a"), FakeProcessor, {}, RunConfig(out=str(out), executor="local", show_progress=False))
    (task,) = plan_shards(refs("a"), 1)
    DatasetWriter(out).write_shard(task.source, task.split, task.name, [FailedEpisode(task.refs[0], "a.mp4: gone")], "h")
    DatasetWriter(out).finalize()
    assert list((out / "data").rglob("*.parquet")) == []
    assert validate_dataset(out).ok
