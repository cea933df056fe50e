"""A run's terminal: the real demo-like extraction (``dexdata extract``, Ray with 2 actors, MediaPipe,
visual odometry) on a short real clip, as a subprocess. By default its stderr is the progress bar, the
summary and where the logs are, with no Ray core-worker or absl/TFLite ``W0000`` lines (they are in the
log file under ``meta/logs/``); ``-v`` brings them back to the terminal."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

CLIP = "mediapipe_hand_landmarker_test_video.mp4"
#: what must not reach the terminal of a quiet run: Ray's C++ core worker, absl/glog lines
#: (``W0000 00:00:...``, ``I1204 ...``), Ray worker prefixes ``(MapWorker(...) pid=...)``.
CHATTER = re.compile(r"core_worker|W0000|^[IWE]\d{4} |pid=\d+\)", re.MULTILINE)


def _extract(shared_data: Path, tmp_path: Path, name: str, *global_flags: str) -> tuple[str, Path]:
    """stderr and dataset folder of ``dexdata [global_flags] extract`` over the clip (2 fps, no frames
    embedded)."""
    videos = tmp_path / "in"
    videos.mkdir(exist_ok=True)
    if not (videos / CLIP).exists():
        os.symlink(shared_data / "hand_video" / CLIP, videos / CLIP)
    out = tmp_path / name
    cmd = [sys.executable, "-m", "dexhands_data.cli.main", *global_flags, "extract", "--input", str(videos),
           "--out", str(out), "--workers", "2", "--fps", "2", "--model-complexity", "0", "--frame-size", "0"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RAY_AUTH_MODE": "disabled"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stderr, out


def test_quiet_by_default_and_verbose_brings_logs_back(shared_data, tmp_path):
    quiet, out = _extract(shared_data, tmp_path, "quiet")
    assert not CHATTER.search(quiet), quiet
    assert "dexdata run summary" in quiet and "processed 1 episodes (0 failed)" in quiet
    logs = sorted((out / "meta" / "logs").glob("*.log"))
    run_log = [p for p in logs if p.name.startswith("run-")]
    assert len(run_log) == 1 and str(run_log[0]) in quiet.replace("\n", "")  # the summary says where
    collected = "".join(p.read_text(errors="replace") for p in logs)
    assert CHATTER.search(collected), "the native output was neither on the terminal nor in the logs"
    assert len(quiet.splitlines()) < 25, quiet  # one screen

    verbose, out_v = _extract(shared_data, tmp_path, "verbose", "-v")
    assert CHATTER.search(verbose), verbose[-3000:]
    assert not (out_v / "meta" / "logs").exists()


def test_verbose_after_the_subcommand_is_accepted():
    from dexhands_data.cli.main import build_parser

    parser = build_parser()
    assert parser.parse_args(["extract", "--input", "x", "--verbose"]).verbose is True
    assert parser.parse_args(["-v", "extract", "--input", "x"]).verbose is True
    assert parser.parse_args(["extract", "--input", "x"]).verbose is False
