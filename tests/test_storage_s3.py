"""Writing a dataset to object storage (S3 API) through pyarrow filesystems, against a local moto server."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from dexhands_data.pipelines.runner import RunConfig, run_pipeline
from dexhands_data.dataset.storage import Storage
from fakes import FakeProcessor, refs

pytest.importorskip("moto")


@pytest.fixture(scope="module")
def s3_endpoint():
    """A moto S3 server on a free loopback port (dummy credentials), stopped after the module."""
    mp = pytest.MonkeyPatch()
    mp.setenv("AWS_ACCESS_KEY_ID", "test")
    mp.setenv("AWS_SECRET_ACCESS_KEY", "test")
    mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("moto server did not start")
    yield f"127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=10)
    mp.undo()


def _s3(endpoint: str) -> pafs.S3FileSystem:
    return pafs.S3FileSystem(access_key="test", secret_key="test", endpoint_override=endpoint, scheme="http",
                             region="us-east-1", allow_bucket_creation=True)


def test_pipeline_writes_to_s3(s3_endpoint, tmp_path):
    fs = _s3(s3_endpoint)
    fs.create_dir("bucket")
    uri = f"s3://bucket/runs/dexwm-actions?endpoint_override={s3_endpoint}&scheme=http&region=us-east-1"
    summary = run_pipeline(refs("a", "bad", "c"), FakeProcessor, {}, RunConfig(out=uri, executor="local",
                                                                              show_progress=False))
    assert summary.failed == 1
    storage = Storage(uri)
    shards = storage.list_files("data", ".parquet")
    assert len(shards) == 2
    # no temporary objects remain; meta files are in place
    everything = [i.path for i in fs.get_file_info(pafs.FileSelector("bucket/runs", recursive=True))]
    assert not [p for p in everything if "/." in p]
    assert {"meta/info.json", "meta/stats.json", "meta/episodes.parquet", "README.md"} <= {
        p.split("dexwm-actions/")[1] for p in everything if "dexwm-actions/" in p}
    episodes = pq.read_table("bucket/runs/dexwm-actions/meta/episodes.parquet", filesystem=fs).to_pylist()
    assert [(e["episode_id"], e["status"]) for e in episodes] == [("a", "ok"), ("bad", "failed"), ("c", "ok")]
    # the same run against a local folder writes byte-identical shards
    run_pipeline(refs("a", "bad", "c"), FakeProcessor, {}, RunConfig(out=str(tmp_path / "local"), executor="local",
                                                                     show_progress=False))
    for shard in shards:
        assert storage.read_bytes(shard) == (tmp_path / "local" / shard).read_bytes()
    # a rerun finds the finished shards on S3
    again = run_pipeline(refs("a", "bad", "c"), FakeProcessor, {}, RunConfig(out=uri, executor="local",
                                                                            show_progress=False))
    assert again.skipped_shards == 3 and again.outcomes == []


def test_interrupted_write_leaves_no_object(s3_endpoint):
    fs = _s3(s3_endpoint)
    fs.create_dir("bucket2")
    storage = Storage(f"s3://bucket2/ds?endpoint_override={s3_endpoint}&scheme=http&region=us-east-1")
    with pytest.raises(RuntimeError, match="disk full"):
        with storage.open_atomic("data/x/train/s.parquet") as f:
            f.write(b"PAR1 partial")
            raise RuntimeError("disk full (simulated)")
    assert storage.list_files("data", ".parquet") == []
    assert [i.path for i in fs.get_file_info(pafs.FileSelector("bucket2", recursive=True)) if i.type == pafs.FileType.File] == []
