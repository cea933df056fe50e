"""Fault injection (issue 8, item 2): each fault yields a named error and the documented outcome
(docs/troubleshooting.md), and never loses or duplicates a finished row.

* videos: zero-byte, truncated, wrong codec (fourcc patched to one FFmpeg has no decoder for), not a
  video -> ``EpisodeError`` naming the file; variable frame rate -> accepted, timestamps from the pts.
* HDF5: missing and mistyped keys, NaN / inf poses -> the episode fails with the reason, the rest is written.
* output: disk full (a real 1 MiB-class tmpfs), read-only folder (a read-only tmpfs; chmod does not
  stop root), a file where the folder should be -> ``StorageError`` naming the file, exit code 2,
  finished shards kept, and the rerun after the fix equals an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import h5py
import numpy as np
import pytest

from dexhands_data.cli.main import main
from dexhands_data.pipelines.convert_droid import DroidInput, DroidSettings, run_convert_droid
from dexhands_data.pipelines.runner import RunConfig, run_pipeline
from dexhands_data.records import EpisodeError
from dexhands_data.sources.registry import create_source
from dexhands_data.dataset.storage import StorageError
from dexhands_data.dataset.validate import validate_dataset
from dexhands_data.video_io import write_video
from fakes import FakeProcessor, refs
from test_reliability_resume import TALLY, visible_files

IDS = tuple(f"e{i:02d}" for i in range(8))


def _config(out, **kw) -> RunConfig:
    return RunConfig(out=str(out), episodes_per_shard=2, executor="local", show_progress=False, **kw)


# ----------------------------------------------------------------------------- videos


def _open_all(path: Path):
    source = create_source("videos")
    (ref,) = [r for r in source.discover(str(path.parent)) if r.path.endswith(path.name)]
    ep = source.open(ref)
    return list(ep.frames())


def _vfr_video(path: Path, ticks: list[int]) -> None:
    """H.264 frames at presentation times ``ticks`` / 30 s (irregular gaps: a variable frame rate)."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for i, p in enumerate(ticks):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 20 * i, np.uint8), format="rgb24")
            frame.pts, frame.time_base = p, Fraction(1, 30)
            for packet in s.encode(frame):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)


def test_video_faults_are_named_episode_errors(tmp_path):
    frames = [np.full((48, 64, 3), 4 * i, np.uint8) for i in range(60)]
    good = tmp_path / "in" / "good.mp4"
    good.parent.mkdir()
    write_video(str(good), frames, fps=30)
    data = good.read_bytes()
    cases = {
        "zero.mp4": (b"", "empty file (0 bytes)"),
        "notes.mp4": (b"this is not a video\n" * 50, "not a readable video container"),
        "codec.mp4": (data.replace(b"avc1", b"zzzz"), "first frame does not decode (Decoder not found)"),
        "cut.mp4": (data[: len(data) // 2], None),  # truncated: moov atom at the end is gone, or decode stops
    }
    for name, (content, message) in cases.items():
        (tmp_path / "in" / name).write_bytes(content)
    for name, (_, message) in cases.items():
        with pytest.raises(EpisodeError) as err:
            _open_all(tmp_path / "in" / name)
        assert str(err.value).startswith(str(tmp_path / "in" / name) + ": "), err.value
        if message:
            assert message in str(err.value)
        TALLY["faults"] += 1
        TALLY["verified"] += 1
    assert len(_open_all(good)) == 60


def test_variable_frame_rate_keeps_presentation_times(tmp_path):
    """A VFR phone video: timestamps are the pts (not index / fps); resampling picks the nearest frames."""
    ticks = [0, 1, 2, 5, 6, 7, 13, 14, 15, 16]
    path = tmp_path / "vfr" / "phone.mp4"
    path.parent.mkdir()
    _vfr_video(path, ticks)
    got = _open_all(path)
    np.testing.assert_allclose([f.timestamp for f in got], np.array(ticks) / 30.0, atol=1e-4)
    source = create_source("videos", target_fps=10.0)
    (ref,) = source.discover(str(path.parent))
    kept = list(source.open(ref).frames())
    # targets 0, .1, .2, .3, .4, .5 s -> nearest presentation times
    assert [f.source_index for f in kept] == [0, 2, 4, 5, 6, 8]
    TALLY["faults"] += 1
    TALLY["verified"] += 1


# ----------------------------------------------------------------------------- HDF5 / poses (DROID raw)


def test_mistyped_hdf5_and_nonfinite_poses_fail_alone(shared_data, tmp_path):
    from droid_fixtures import load_episode, write_raw_episode

    ep = load_episode(shared_data)
    root = tmp_path / "raw"
    folders = {name: write_raw_episode(root, ep, rel=f"RAIL/success/2023-04-17/{name}",
                                       uuid=f"RAIL+{i:08x}+2023-04-17")
               for i, name in enumerate(["t00", "t01_strings", "t02_group", "t03_inf", "t04_not_hdf5"])}
    key = "observation/robot_state/cartesian_position"
    with h5py.File(folders["t01_strings"] / "trajectory.h5", "a") as h5:
        del h5[key]
        h5.create_dataset(key, data=np.array([b"x" * 6] * len(ep)))
    with h5py.File(folders["t02_group"] / "trajectory.h5", "a") as h5:
        del h5[key]
        h5.create_group(key)
    with h5py.File(folders["t03_inf"] / "trajectory.h5", "a") as h5:
        values = h5[key][()]
        values[7, 1] = np.inf
        h5[key][...] = values
    (folders["t04_not_hdf5"] / "trajectory.h5").write_bytes(b"\x89HDF\r\n garbage")
    out = tmp_path / "ds"
    summary = run_convert_droid(DroidInput(str(root)), DroidSettings(embed_frames=False),
                                RunConfig(out=str(out), executor="local", show_progress=False))
    reasons = {o.episode_id.rsplit("+", 1)[-1]: o.error for o in summary.outcomes}
    assert reasons["t00"] is None
    h5 = "/trajectory.h5: "
    assert reasons["t01_strings"].endswith(f"t01_strings{h5}{key} is not numeric (dtype |S6)")
    assert reasons["t02_group"].endswith(f"t02_group{h5}{key} is a group, expected a dataset")
    assert reasons["t03_inf"].endswith(f"t03_inf{h5}cartesian_position has non-finite values at steps [7]")
    assert f"t04_not_hdf5{h5}cannot read" in reasons["t04_not_hdf5"]
    assert not any("unexpected" in (r or "") for r in reasons.values())
    assert summary.failed == 4 and summary.exit_code == 1 and validate_dataset(out).ok
    TALLY["faults"] += 4
    TALLY["verified"] += 4


# ----------------------------------------------------------------------------- output folder


@contextlib.contextmanager
def tmpfs(path: Path, options: str):
    """A real small filesystem (root only): skips the test where mounting is not permitted."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip()})")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("faults-baseline") / "ds"
    run_pipeline(refs(*IDS), FakeProcessor, {"frames": 200}, _config(out))
    return visible_files(out)


def test_disk_full_stops_with_storage_error_and_resumes(baseline, tmp_path):
    """A full disk in the middle of the run: StorageError naming the shard, finished shards kept intact,
    no partial file visible; with space again the rerun completes, byte-identical to the baseline."""
    shards = sum(len(v) for k, v in baseline.items() if k.startswith("data/"))
    with tmpfs(tmp_path / "small", f"size={shards // 2}") as mnt:
        out = mnt / "ds"
        full = r"/data/videos/train/.*\.parquet: cannot write \(.*No space left"
        with pytest.raises(StorageError, match=full):
            run_pipeline(refs(*IDS), FakeProcessor, {"frames": 200}, _config(out))
        TALLY["faults"] += 1
        kept = visible_files(out)
        finished = [k for k in kept if k.startswith("meta/shards/")]
        assert 1 <= len(finished) < 4
        for rel in kept:
            if rel.startswith("data/"):
                assert kept[rel] == baseline[rel]  # every committed shard is complete and final
        assert not [p for p in out.rglob(".*")]  # the failed temporary was removed
        subprocess.run(["mount", "-o", "remount,size=64m", str(mnt)], check=True)
        again = run_pipeline(refs(*IDS), FakeProcessor, {"frames": 200}, _config(out))
        assert again.skipped_shards == len(finished)
        got = visible_files(out)
        assert sorted(got) == sorted(baseline) and all(got[k] == baseline[k] for k in baseline)
        TALLY["verified"] += 1


def test_read_only_output_fails_before_any_work(tmp_path, capsys, shared_data):
    """Read-only tmpfs (root ignores chmod) and a file in place of the folder: exit code 2, one line naming
    the path, and no episode is processed first."""
    calls = []

    class Counting(FakeProcessor):
        def __call__(self, ref):
            calls.append(ref.episode_id)
            return super().__call__(ref)

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the dataset folder should be")
    with pytest.raises(StorageError, match=f"{blocker}/.write-probe-"):
        run_pipeline(refs(*IDS), Counting, {}, _config(blocker))
    with tmpfs(tmp_path / "ro", "ro,size=1m") as mnt:
        with pytest.raises(StorageError, match="Read-only file system"):
            run_pipeline(refs(*IDS), Counting, {}, _config(mnt / "ds"))
        raw = tmp_path / "raw"
        from droid_fixtures import load_episode, write_raw_episode

        write_raw_episode(raw, load_episode(shared_data))
        code = main(["convert-droid", "--input", str(raw), "--out", str(mnt / "ds"), "--executor", "local",
                     "--no-progress"])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2
        assert err[-1].startswith(f"dexdata convert-droid: error: {mnt}/ds/.write-probe-")
        assert "Read-only file system" in err[-1]
    assert calls == []
    TALLY["faults"] += 3
    TALLY["verified"] += 3
