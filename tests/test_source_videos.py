"""Source ``videos``: discovery, ids, intrinsics (sidecar / FoV prior), rotation, resampling, bad files."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from dexhands_data.records import EpisodeError
from dexhands_data.sources.videos import VideosSource, episode_id_for
from dexhands_data.video_io import write_video

LANDMARKER = "hand_video/mediapipe_hand_landmarker_test_video.mp4"
GESTURE = "hand_video/mediapipe_gesture_recognizer_test_video.mp4"


@pytest.fixture()
def video_tree(shared_data, tmp_path):
    """A nested input folder with mixed-case extensions, links to the real fixtures and junk files."""
    root = tmp_path / "in"
    (root / "day1" / "cam A").mkdir(parents=True)
    (root / ".cache").mkdir()
    (root / "day1" / "cam A" / "hand.MP4").symlink_to(shared_data / LANDMARKER)
    (root / "gesture.mp4").symlink_to(shared_data / GESTURE)
    (root / "a b.mov").symlink_to(shared_data / LANDMARKER)
    (root / "a_b.mov").symlink_to(shared_data / LANDMARKER)
    (root / ".cache" / "hidden.mp4").symlink_to(shared_data / LANDMARKER)
    (root / "._gesture.mp4").write_bytes(b"AppleDouble junk")
    (root / "notes.txt").write_text("not a video")
    (root / "hand.MP4.intrinsics.json").write_text("{}")  # a sidecar is not a video
    return root


def test_discover_recursive_sorted_unique(video_tree):
    refs = VideosSource().discover(str(video_tree))
    rels = sorted(r.relpath for r in refs)
    assert rels == ["a b.mov", "a_b.mov", "day1/cam A/hand.MP4", "gesture.mp4"]
    ids = [r.episode_id for r in refs]
    assert ids == sorted(ids) and len(set(ids)) == 4
    for r in refs:
        assert re.fullmatch(r"[A-Za-z0-9_-]+-[0-9a-f]{8}", r.episode_id)
        assert r.source == "videos" and r.path.endswith(r.relpath.split("/")[-1])
        assert r.metadata["size_bytes"] > 0
    by_rel = {r.relpath: r.episode_id for r in refs}
    assert by_rel["a b.mov"] != by_rel["a_b.mov"]  # same slug, different hash
    assert by_rel["day1/cam A/hand.MP4"].startswith("day1__cam_A__hand_MP4-")
    # deterministic: same ids on a second walk and from the function
    assert [r.episode_id for r in VideosSource().discover(str(video_tree))] == ids
    assert episode_id_for("day1/cam A/hand.MP4") == by_rel["day1/cam A/hand.MP4"]


def test_discover_errors(tmp_path):
    with pytest.raises(ValueError, match="not a folder"):
        VideosSource().discover(str(tmp_path / "missing"))
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(ValueError, match="no video files"):
        VideosSource().discover(str(tmp_path))


def test_open_real_video_with_fov_prior(video_tree):
    ref = next(r for r in VideosSource().discover(str(video_tree)) if r.relpath.endswith("hand.MP4"))
    ep = VideosSource(hfov_deg=90.0).open(ref)
    assert ep.fps == 25.0 and ep.num_frames == 202 and ep.embodiment == "human"
    intr = ep.intrinsics
    assert intr.source == "fov_prior" and (intr.width, intr.height) == (640, 360)
    assert intr.fx == pytest.approx(320.0) and intr.fy == pytest.approx(320.0)
    assert (intr.cx, intr.cy) == (319.5, 179.5)  # image centre, pixel-centre convention
    assert ep.extra["intrinsics_source"] == "fov_prior" and ep.extra["hfov_deg"] == 90.0
    assert ep.extra["display_rotation_ccw_deg"] == 0 and ep.extra["source_fps"] == 25.0
    json.dumps(ep.extra)  # JSON-able metadata
    narrow = VideosSource(hfov_deg=60.0).open(ref).intrinsics
    assert narrow.fx == pytest.approx(320.0 / math.tan(math.radians(30.0)))
    frames = list(ep.frames())
    assert len(frames) == 202 and frames[-1].timestamp == pytest.approx(8.04)
    assert len(list(ep.frames())) == 202  # frames() can be called again


def test_open_resampled(shared_data):
    src = VideosSource(target_fps=10.0)
    ref = next(r for r in src.discover(str(shared_data / "hand_video")) if "gesture" in r.relpath)
    ep = src.open(ref)
    frames = list(ep.frames())
    assert ep.fps == 10.0 and ep.num_frames == len(frames) == 78
    src_idx = np.array([f.source_index for f in frames])
    assert src_idx[0] == 0 and np.all(np.diff(src_idx) >= 2) and np.all(np.diff(src_idx) <= 3)
    assert frames[0].image.shape == (720, 1280, 3)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ({"fx": 500.0, "fy": 505.0, "cx": 321.0, "cy": 178.0}, [500.0, 505.0, 321.0, 178.0]),
        ({"K": [[500.0, 0, 321.0], [0, 505.0, 178.0], [0, 0, 1]]}, [500.0, 505.0, 321.0, 178.0]),
        # numbers for a 1280x720 grid: scaled by 1/2 with the pixel-centre convention
        ({"fx": 1000.0, "fy": 1010.0, "cx": 639.5, "cy": 359.5, "width": 1280, "height": 720},
         [500.0, 505.0, 319.5, 179.5]),
    ],
)
def test_sidecar_intrinsics(shared_data, tmp_path, content, expected):
    video = tmp_path / "clip.mp4"
    video.symlink_to(shared_data / LANDMARKER)
    (tmp_path / "clip.mp4.intrinsics.json").write_text(json.dumps(content))
    src = VideosSource()
    ep = src.open(src.discover(str(tmp_path))[0])
    assert ep.intrinsics.source == "sidecar" and ep.extra["intrinsics_source"] == "sidecar"
    np.testing.assert_allclose(ep.intrinsics.to_list(), expected, atol=1e-9)
    assert (ep.intrinsics.width, ep.intrinsics.height) == (640, 360)


def test_sidecar_stem_name_and_errors(shared_data, tmp_path):
    video = tmp_path / "clip.mp4"
    video.symlink_to(shared_data / LANDMARKER)
    sidecar = tmp_path / "clip.intrinsics.json"  # the stem form is accepted too
    src = VideosSource()
    ref = src.discover(str(tmp_path))[0]
    sidecar.write_text(json.dumps({"fx": 400.0, "fy": 400.0, "cx": 320.0, "cy": 180.0}))
    assert src.open(ref).intrinsics.fx == 400.0
    sidecar.write_text(json.dumps({"fx": 400.0}))
    with pytest.raises(EpisodeError, match=r"clip\.intrinsics\.json: invalid intrinsics sidecar"):
        src.open(ref)
    sidecar.write_text("{not json")
    with pytest.raises(EpisodeError, match=r"clip\.intrinsics\.json: invalid intrinsics sidecar"):
        src.open(ref)
    sidecar.write_text(
        json.dumps({"fx": 400.0, "fy": 400.0, "cx": 320.0, "cy": 240.0, "width": 640, "height": 480}))
    with pytest.raises(EpisodeError, match=r"clip\.intrinsics\.json: intrinsics are for a 640x480 grid"):
        src.open(ref)


def test_sidecar_lens_distortion_and_its_errors(shared_data, tmp_path):
    video = tmp_path / "clip.mp4"
    video.symlink_to(shared_data / LANDMARKER)
    sidecar = tmp_path / "clip.mp4.intrinsics.json"
    src = VideosSource()
    ref = src.discover(str(tmp_path))[0]
    base = {"fx": 1000.0, "fy": 1000.0, "cx": 639.5, "cy": 359.5, "width": 1280, "height": 720}
    sidecar.write_text(json.dumps({**base, "k1": -0.21, "k2": 0.04}))
    intr = src.open(ref).intrinsics
    # scaled to the 640x360 video: K halves, the (normalised) distortion stays
    assert intr.distortion.to_list() == [-0.21, 0.04, 0.0, 0.0] and intr.fx == 500.0
    sidecar.write_text(json.dumps({**base, "k1": -0.1, "k2": 0.0, "p1": 0.001, "p2": -0.002}))
    assert src.open(ref).intrinsics.distortion.to_list() == [-0.1, 0.0, 0.001, -0.002]
    sidecar.write_text(json.dumps(base))
    assert src.open(ref).intrinsics.distortion is None  # no k1: a pinhole, as before
    for bad, why in (('"k1": NaN', "k1 must be finite"), ('"k1": "-0.2"', "k1 must be a number"),
                     ('"k1": -0.1, "k2": [1]', "k2 must be a number"), ('"k2": 0.1', "needs k1"),
                     ('"k1": -1.5', "folds the image")):
        sidecar.write_text(json.dumps(base)[:-1] + ", " + bad + "}")
        with pytest.raises(EpisodeError, match=rf"clip\.mp4\.intrinsics\.json: invalid intrinsics sidecar .*{why}"):
            src.open(ref)


def test_rotated_video_frames_and_intrinsics(tmp_path):
    """A portrait phone video: coded 64x48, displayed 48x64; sidecar numbers of the coded grid rotate."""
    img = np.zeros((48, 64, 3), np.uint8)
    img[:16, :16] = 255  # a white block in the coded image's top-left corner
    write_video(str(tmp_path / "phone.mp4"), [img] * 4, fps=30.0, rotation_ccw_deg=-90)  # = 'rotate=90' tag
    (tmp_path / "phone.mp4.intrinsics.json").write_text(
        json.dumps({"fx": 60.0, "fy": 62.0, "cx": 30.0, "cy": 20.0, "width": 64, "height": 48}))
    src = VideosSource()
    ep = src.open(src.discover(str(tmp_path))[0])
    frames = list(ep.frames())
    assert len(frames) == 4 and ep.num_frames == 4
    shown = frames[0].image
    assert shown.shape == (64, 48, 3)
    # turned clockwise: the coded top-left corner is now the top-right corner
    assert shown[:16, -16:].mean() > 200 and shown[:16, :16].mean() < 50
    intr = ep.intrinsics
    assert (intr.width, intr.height, intr.source) == (48, 64, "sidecar")
    # clockwise turn: u' = (H - 1) - v, v' = u  ->  fx' = fy, cx' = 47 - cy, cy' = cx
    np.testing.assert_allclose(intr.to_list(), [62.0, 60.0, 27.0, 30.0])
    assert ep.extra["display_rotation_ccw_deg"] == 270 and ep.extra["coded_size"] == [64, 48]


def test_bad_file_fails_alone(shared_data, tmp_path):
    (tmp_path / "good.mp4").symlink_to(shared_data / LANDMARKER)
    (tmp_path / "zero.mp4").write_bytes(b"")
    (tmp_path / "text.mkv").write_text("hello\n" * 50)
    data = (shared_data / LANDMARKER).read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    src = VideosSource()
    refs = {r.relpath: r for r in src.discover(str(tmp_path))}
    assert set(refs) == {"good.mp4", "zero.mp4", "text.mkv", "cut.mp4"}
    with pytest.raises(EpisodeError, match=r"zero\.mp4: empty file"):
        src.open(refs["zero.mp4"])
    with pytest.raises(EpisodeError, match=r"text\.mkv: not a readable video container"):
        src.open(refs["text.mkv"])
    cut = src.open(refs["cut.mp4"])  # opens: the index is complete ...
    with pytest.raises(EpisodeError, match=r"cut\.mp4: truncated stream: decoded \d+ of ~202 frames"):
        for _ in cut.frames():  # ... but the frames run out
            pass
    assert sum(1 for _ in src.open(refs["good.mp4"]).frames()) == 202


def test_source_options_validated():
    with pytest.raises(ValueError):
        VideosSource(hfov_deg=0.5)
    with pytest.raises(ValueError):
        VideosSource(target_fps=0.0)
    assert VideosSource(hfov_deg=75, target_fps=10).config() == {"source": "videos", "hfov_deg": 75.0,
                                                                 "target_fps": 10.0}
