"""Cluster runs (issue 8, item 4): a two-node Ray cluster on this machine, started the way
docs/cluster_and_remote.md says (``ray start --head`` + ``ray start --address``, one CPU each), then

* ``dexdata convert-droid --ray-address`` writes byte-identical files to a local (no Ray) run;
* a Ray worker process killed with SIGKILL in the middle of an episode (item 2): the actor is
  restarted and its shard task retried, so the run completes with the same files as a clean run.

Each node is a ``ray start --block`` child in its own process group, stopped by signalling that group
(never ``ray stop``, which would stop every Ray on a shared machine). Skipped with the reason when Ray
cannot start here.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from dexhands_data.cli.main import main
from dexhands_data.pipelines.runner import RunConfig, run_pipeline
from fakes import FakeProcessor, refs
from test_reliability_resume import TALLY, visible_files

pytestmark = pytest.mark.slow
TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent


class KillOnce(FakeProcessor):
    """Processor double: the first worker to see ``marker`` removes it and SIGKILLs its own process
    in the middle of that episode (a machine dying mid-episode); every later call works normally."""

    def __init__(self, marker: str, frames: int = 12):
        super().__init__(frames)
        self.marker = marker

    def config(self) -> dict:
        return {"frames": self.frames, "marker": self.marker}

    def __call__(self, ref):
        ep = super().__call__(ref)
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.marker)
            os.kill(os.getpid(), signal.SIGKILL)
        return ep


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Head + one worker node, 1 CPU each; yields the address. Stops both node process groups."""
    port = _free_port()
    temp_dir = f"/tmp/rr{port}"  # short: Ray's unix socket paths must stay under 107 characters
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0",
           "PYTHONPATH": os.pathsep.join([str(TESTS), str(REPO), os.environ.get("PYTHONPATH", "")])}
    ray_cli = str(Path(sys.executable).parent / "ray")
    logs = tmp_path_factory.mktemp("ray-logs")
    common = ["--num-cpus=1", "--block", "--disable-usage-stats"]
    nodes: list[subprocess.Popen] = []

    def start(args: list[str], name: str) -> None:
        log = open(logs / f"{name}.log", "wb")
        nodes.append(subprocess.Popen([ray_cli, "start", *args, *common], env=env, stdout=log,
                                      stderr=subprocess.STDOUT, start_new_session=True))

    def started(name: str) -> bool:  # `ray start` prints this once the node has joined the cluster
        return "Ray runtime started" in (logs / f"{name}.log").read_text(errors="replace")

    try:
        start(["--head", f"--port={port}", f"--temp-dir={temp_dir}", "--include-dashboard=false"], "head")
        start([f"--address=127.0.0.1:{port}"], "worker")
        deadline = time.time() + 180
        while time.time() < deadline and not (started("head") and started("worker")):
            if any(p.poll() is not None for p in nodes):
                break
            time.sleep(1)
        if not (started("head") and started("worker")):
            text = "\n".join((logs / f"{n}.log").read_text(errors="replace")[-1500:]
                             for n in ("head", "worker"))
            pytest.skip(f"a two-node Ray cluster did not start on this machine:\n{text}")
        yield f"127.0.0.1:{port}", env
    finally:
        # our own test nodes: SIGKILL each node's process group (SIGTERM makes Ray drain for 30 s)
        for p in reversed(nodes):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        _kill_leftovers(temp_dir)


def _kill_leftovers(temp_dir: str) -> None:
    """Ray daemons that left the node's process group still name our private temp dir: stop those pids."""
    time.sleep(1)
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if temp_dir.encode() in (proc / "cmdline").read_bytes():
                os.kill(int(proc.name), signal.SIGKILL)


def _droid_args(raw: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "dexhands_data.cli.main", "convert-droid", "--input", str(raw), "--out",
            str(out), "--no-progress", "--frame-size", "64", *extra]


def test_two_node_cluster_matches_local_run(cluster, shared_data, tmp_path):
    from droid_fixtures import load_episode, write_raw_episode

    address, env = cluster
    ep = load_episode(shared_data)
    raw = tmp_path / "raw"
    for i in range(4):
        write_raw_episode(raw, ep, rel=f"RAIL/success/2023-04-17/t{i:02d}", uuid=f"RAIL+{i:08x}+2023-04-17")
    assert main(_droid_args(raw, tmp_path / "local", "--executor", "local")[3:]) == 0
    # 2 actors x 0.75 CPU on two 1-CPU nodes: one actor per node
    args = _droid_args(raw, tmp_path / "cluster", "--ray-address", address, "--workers", "2")
    remote = subprocess.run(args, env=env, capture_output=True, timeout=300)
    assert remote.returncode == 0, remote.stderr.decode()[-3000:]
    expected, got = visible_files(tmp_path / "local"), visible_files(tmp_path / "cluster")
    assert sorted(got) == sorted(expected) and len([k for k in got if k.endswith(".parquet")]) == 5
    assert [k for k in expected if got[k] != expected[k]] == []
    TALLY["verified"] += 1


def test_worker_killed_mid_episode_is_retried(cluster, tmp_path):
    address, env = cluster
    marker = tmp_path / "kill-next-episode"
    ids = ("k1", "k2", "k3", "k4", "bad5")
    clean = tmp_path / "clean"
    run_pipeline(refs(*ids), KillOnce, {"marker": str(marker)}, RunConfig(out=str(clean), executor="local",
                                                                          show_progress=False))
    marker.write_text("kill the worker that reads this")
    out = tmp_path / "killed"
    driver = (
        "import sys; from fakes import refs; from test_cluster import KillOnce;"
        "from dexhands_data.pipelines.runner import RunConfig, run_pipeline;"
        f"s = run_pipeline(refs(*{ids!r}), KillOnce, {{'marker': {str(marker)!r}}},"
        f" RunConfig(out={str(out)!r}, workers=2, ray_address={address!r}, show_progress=False));"
        "print('FAILED', s.failed, 'OUTCOMES', len(s.outcomes))"
    )
    done = subprocess.run([sys.executable, "-c", driver], env=env, capture_output=True, timeout=300)
    TALLY["kills"] += 1
    log = done.stdout.decode() + done.stderr.decode()
    assert not marker.exists(), "no worker reached the kill point"
    assert done.returncode == 0, log[-3000:]
    assert "FAILED 1 OUTCOMES 5" in log  # only bad5 failed; the killed episode was retried, not lost
    expected, got = visible_files(clean), visible_files(out)
    assert sorted(got) == sorted(expected) and [k for k in expected if got[k] != expected[k]] == []
    ids_out = pq.read_table(out / "meta/episodes.parquet").column("episode_id").to_pylist()
    TALLY["lost"] += len(set(ids) - set(ids_out))
    TALLY["duplicated"] += len(ids_out) - len(set(ids_out))
    TALLY["verified"] += 1
