"""Input hardening (issue 8, item 5): hypothesis fuzzing of the readers over malformed containers and
metadata. The only allowed outcomes are a result or a typed error naming the file
(``EpisodeError`` per episode; ``ValueError`` for driver-level discovery files, which the CLI turns into
one line and exit code 2): no other exception, no hang (a SIGALRM guard per example on top of
hypothesis' deadline), no crash. Paths taken from metadata never leave the input root.

Examples are derandomized (the same inputs in CI) and bounded so the module runs in a few seconds.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
from datetime import timedelta
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dexhands_data.sources.droid.readers import CARTESIAN_KEY, GRIPPER_KEY, read_episode, read_raw
from dexhands_data.sources.droid.video import VideoSpan, mp4_video_info
from dexhands_data.records import EpisodeError, EpisodeRef
from dexhands_data.sources.ego4d import _load_metadata
from dexhands_data.sources.egodex import JOINTS_21, SIDES, joint_name, read_hdf5
from dexhands_data.sources.videos import read_sidecar_intrinsics
from dexhands_data.video_io import FrameReader, probe_video, write_video
from test_reliability_resume import TALLY

FUZZ = settings(max_examples=40, deadline=timedelta(seconds=10), derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
HANG_S = 20


@contextlib.contextmanager
def no_hang(seconds: int = HANG_S):
    """Fail (instead of blocking the suite) if one example runs longer than ``seconds``."""
    def alarm(signum, frame):
        raise TimeoutError(f"reader hung for more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def outcome(fn, *args, typed=(EpisodeError,)) -> str:
    """Run a reader: "ok" or the typed error's class name; anything else fails the test."""
    TALLY["fuzz_inputs"] += 1
    with no_hang():
        try:
            fn(*args)
        except typed as exc:
            TALLY["verified"] += 1
            return type(exc).__name__
    TALLY["verified"] += 1
    return "ok"


# ----------------------------------------------------------------------------- MP4 containers


@pytest.fixture(scope="module")
def small_mp4(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("mp4") / "seed.mp4"
    write_video(str(path), [np.full((24, 32, 3), 9 * i, np.uint8) for i in range(8)], fps=15)
    return path.read_bytes()


mutation = st.one_of(
    st.tuples(st.just("cut"), st.floats(0, 1), st.binary(max_size=0)),
    st.tuples(st.just("overwrite"), st.floats(0, 1), st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("insert"), st.floats(0, 1), st.binary(min_size=1, max_size=64)),
    st.tuples(st.just("big-size"), st.floats(0, 1), st.sampled_from([b"\xff\xff\xff\xff", b"\x00\x00\x00\x00",
                                                                     b"\x00\x00\x00\x01"])),
)


def mutate(data: bytes, ops) -> bytes:
    buf = bytearray(data)
    for kind, where, payload in ops:
        i = int(where * max(len(buf) - 1, 0))
        if kind == "cut":
            del buf[i:]
        elif kind == "insert":
            buf[i:i] = payload
        else:  # overwrite; "big-size" hits box size fields when i lands on one
            buf[i:i + len(payload)] = payload
    return bytes(buf)


@settings(FUZZ, max_examples=150)
@given(ops=st.lists(mutation, min_size=1, max_size=4))
def test_fuzz_mp4_readers(small_mp4, tmp_path_factory, ops):
    path = tmp_path_factory.mktemp("fuzz-mp4", numbered=True) / "clip.mp4"
    path.write_bytes(mutate(small_mp4, ops))

    def decode_all(p):
        for _ in FrameReader(p, probe_video(p)):
            pass

    outcome(decode_all, str(path))
    outcome(lambda p: VideoSpan(p, 15.0).probe(), str(path))
    outcome(lambda p: list(VideoSpan(p, 15.0).frames(np.arange(3))), str(path))
    with no_hang():
        info = mp4_video_info(str(path))  # the sample-table parser: a tuple or None, never an exception
    assert info is None or (len(info) == 3 and all(isinstance(v, int) for v in info))
    shutil.rmtree(path.parent)


# ----------------------------------------------------------------------------- HDF5 structures

node = st.sampled_from(["good", "missing", "group", "strings", "shape", "nan", "empty"])


def write_node(h5: h5py.File, key: str, kind: str, good: np.ndarray) -> None:
    if kind == "missing":
        return
    if kind == "group":
        h5.create_group(key)
    elif kind == "strings":
        h5.create_dataset(key, data=np.array([b"abc"] * len(good)))
    elif kind == "shape":
        h5.create_dataset(key, data=good.reshape(len(good), -1)[:, :1].copy())
    elif kind == "nan":
        bad = good.copy()
        bad.reshape(-1)[len(bad.reshape(-1)) // 2] = np.nan
        h5.create_dataset(key, data=bad)
    elif kind == "empty":
        h5.create_dataset(key, data=np.zeros((0,) + good.shape[1:]))
    else:
        h5.create_dataset(key, data=good)


json_value = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8)
serial = st.one_of(st.just("22008760"), st.just("../../../../etc/passwd"), st.just("/etc/hostname"),
                   st.just(".."), json_value)


@FUZZ
@given(cart=node, grip=node, wrist=node, ext1_serial=serial, wrist_serial=serial, ext=json_value,
       meta_is_object=st.booleans(), left=json_value)
def test_fuzz_droid_raw(tmp_path_factory, cart, grip, wrist, ext1_serial, wrist_serial, ext, meta_is_object,
                        left):
    folder = tmp_path_factory.mktemp("fuzz-droid", numbered=True) / "lab" / "success" / "d" / "t"
    (folder / "recordings" / "MP4").mkdir(parents=True)
    n = 6
    with h5py.File(folder / "trajectory.h5", "w") as h5:
        write_node(h5, CARTESIAN_KEY, cart, np.linspace(0, 1, n * 6).reshape(n, 6))
        write_node(h5, GRIPPER_KEY, grip, np.linspace(0, 1, n))
        write_node(h5, "observation/camera_extrinsics/18026681_left", wrist, np.zeros((n, 6)))
    meta = {"ext1_cam_serial": ext1_serial, "wrist_cam_serial": wrist_serial, "ext1_cam_extrinsics": ext,
            "left_mp4_path": left, "ext1_mp4_path": "../../../../etc/passwd", "success": True}
    (folder / "metadata_x.json").write_text(json.dumps(meta if meta_is_object else [meta]))
    result = {}

    def read(f):
        result["rec"] = read_raw(f, "x")

    outcome(read, folder)
    if "rec" in result:  # paths opened later are inside the episode folder, whatever the metadata says
        for span in result["rec"].videos.values():
            assert Path(span.path).resolve().is_relative_to(folder.resolve()), span.path
    shutil.rmtree(folder.parents[3])


@FUZZ
@given(camera=node, joint=node, confidence=node, intrinsic=node)
def test_fuzz_egodex_hdf5(tmp_path_factory, camera, joint, confidence, intrinsic):
    path = tmp_path_factory.mktemp("fuzz-egodex", numbered=True) / "0.hdf5"
    n = 5
    eye = np.tile(np.eye(4), (n, 1, 1))
    eye[:, 2, 3] = 0.5
    with h5py.File(path, "w") as h5:
        write_node(h5, "transforms/camera", camera, eye)
        for i, (side, j) in enumerate((s, j) for s in SIDES for j in JOINTS_21):
            write_node(h5, f"transforms/{joint_name(side, j)}", joint if i == 7 else "good", eye)
            write_node(h5, f"confidences/{joint_name(side, j)}", confidence if i == 3 else "good", np.ones(n))
        write_node(h5, "camera/intrinsic", intrinsic, np.array([[700.0, 0, 960], [0, 700, 540], [0, 0, 1]]))
    outcome(read_hdf5, path, "task")
    shutil.rmtree(path.parent)


# ----------------------------------------------------------------------------- JSON metadata


@FUZZ
@given(value=json_value, raw=st.binary(max_size=40))
def test_fuzz_json_metadata(tmp_path_factory, value, raw):
    folder = tmp_path_factory.mktemp("fuzz-json", numbered=True)
    clip = folder / "clip.mp4"
    write_video(str(clip), [np.zeros((24, 32, 3), np.uint8)] * 2, fps=15)
    info = probe_video(str(clip))
    for content in (json.dumps(value), raw.decode("latin-1"),
                    json.dumps({"fx": value, "fy": 500, "cx": 16, "cy": 12}), json.dumps({"K": value})):
        sidecar = folder / "clip.intrinsics.json"
        sidecar.write_text(content)
        outcome(read_sidecar_intrinsics, str(sidecar), info)
        (folder / "ego4d.json").write_text(content)
        outcome(_load_metadata, folder, typed=(ValueError,))
    for content in (json.dumps({"videos": value}), json.dumps({"videos": [value], "clips": [value]})):
        (folder / "ego4d.json").write_text(content)
        outcome(_load_metadata, folder, typed=(ValueError,))
    shutil.rmtree(folder)


# ----------------------------------------------------------------------------- paths from metadata


def test_paths_from_metadata_never_leave_the_input_root(shared_data, tmp_path):
    """Raw camera serials and LeRobot data/video path templates that point outside are refused per episode."""
    from droid_fixtures import load_episode, write_lerobot_v21, write_raw_episode

    from dexhands_data.sources.droid.readers import discover

    ep = load_episode(shared_data)
    secret = tmp_path / "secret.mp4"
    secret.write_bytes(b"outside")
    folder = write_raw_episode(tmp_path / "raw", ep)
    meta_path = next(folder.glob("metadata_*.json"))
    meta = json.loads(meta_path.read_text())
    for bad in ("../../../../../secret", str(secret.with_suffix("")), "a/b"):
        meta["ext1_cam_serial"] = bad
        meta_path.write_text(json.dumps(meta))
        with pytest.raises(EpisodeError, match=r"ext1_cam_serial .* is not a camera serial"):
            read_raw(folder, "x")
        TALLY["faults"] += 1
        TALLY["verified"] += 1

    root = write_lerobot_v21(tmp_path / "lerobot", [ep])
    info_path = root / "meta" / "info.json"
    info = json.loads(info_path.read_text())
    for key, template in (("video_path", "../../secret{episode_chunk}{video_key}{episode_index}.mp4"),
                          ("video_path", f"{tmp_path}/s{{episode_chunk}}{{video_key}}{{episode_index}}.mp4"),
                          ("data_path", "../{episode_chunk}{episode_index}.parquet")):
        changed = dict(info, **{key: template})
        info_path.write_text(json.dumps(changed))
        (ref,) = discover(root, "lerobot")
        with pytest.raises(EpisodeError, match=f"{key} .* points outside the input root {root}"):
            read_episode(ref)
        TALLY["faults"] += 1
        TALLY["verified"] += 1
    info_path.write_text(json.dumps(info))
    (ref,) = discover(root, "lerobot")
    assert read_episode(ref).cartesian.shape == (len(ep), 6)
    assert isinstance(ref, EpisodeRef)
