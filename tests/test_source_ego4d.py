"""The ``ego4d`` source on an Ego4D-layout folder built from the real (Apache-2.0) hand videos."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from dexhands_data.records import EpisodeError
from dexhands_data.sources.ego4d import Ego4DSource, find_version_dir, read_uid_file
from dexhands_data.sources.registry import create_source

UID_A = "0a1b2c3d-0000-4000-8000-00000000000a"  # 640x360 @ 25 fps, metadata correct
UID_B = "0a1b2c3d-0000-4000-8000-00000000000b"  # 1280x720 @ 25 fps, metadata claims 1920x1080 @ 30
UID_GONE = "0a1b2c3d-0000-4000-8000-00000000000c"  # in ego4d.json, not downloaded
CLIP = "c11pc11p-0000-4000-8000-000000000001"  # a clip of UID_B


@pytest.fixture()
def ego4d_root(shared_data, tmp_path) -> Path:
    """``<tmp>/ego4d_data/v2/{ego4d.json, full_scale/, clips/}`` with symlinks to the real videos."""
    v2 = tmp_path / "ego4d_data" / "v2"
    (v2 / "full_scale").mkdir(parents=True)
    (v2 / "clips").mkdir()
    videos = shared_data / "hand_video"
    (v2 / "full_scale" / f"{UID_A}.mp4").symlink_to(videos / "mediapipe_hand_landmarker_test_video.mp4")
    (v2 / "full_scale" / f"{UID_B}.mp4").symlink_to(videos / "mediapipe_gesture_recognizer_test_video.mp4")
    (v2 / "clips" / f"{CLIP}.mp4").symlink_to(videos / "mediapipe_gesture_recognizer_test_video.mp4")
    meta = {
        "version": "v2",
        "videos": [
            {"video_uid": UID_A, "duration_sec": 8.08, "scenarios": ["Cooking", "Cleaning / laundry"],
             "device": "GoPro Hero 7", "video_metadata": {"fps": 25.0, "display_width": 640,
                                                         "display_height": 360, "num_frames": 202}},
            {"video_uid": UID_B, "duration_sec": 7.8,
             "scenarios": ["Crafting/knitting/sewing/drawing/painting"],
             "device": "Vuzix Blade", "video_metadata": {"fps": 30.0, "display_width": 1920,
                                                        "display_height": 1080, "num_frames": 234}},
            {"video_uid": UID_GONE, "duration_sec": 60.0, "scenarios": ["Carpenter"],
             "video_metadata": {"fps": 30.0, "display_width": 1440, "display_height": 1080}},
        ],
        "clips": [{"clip_uid": CLIP, "video_uid": UID_B, "video_start_sec": 120.0, "video_end_sec": 127.8}],
    }
    (v2 / "ego4d.json").write_text(json.dumps(meta))
    with open(v2 / "full_scale" / "manifest.csv", "w", newline="") as f:
        w = csv.DictWriter(f, ["video_uid", "canonical_s3_location", "canonical_fps",
                               "canonical_display_width", "canonical_display_height", "canonical_num_frames"])
        w.writeheader()
        w.writerow({"video_uid": UID_A, "canonical_s3_location": f"s3://bucket/{UID_A}.mp4",
                    "canonical_fps": 25, "canonical_display_width": 640, "canonical_display_height": 360,
                    "canonical_num_frames": 202})
    return tmp_path / "ego4d_data"


def test_discovers_videos_and_clips_with_metadata(ego4d_root):
    refs = Ego4DSource().discover(str(ego4d_root))
    assert [r.episode_id for r in refs] == [f"ego4d-{UID_A}", f"ego4d-{UID_B}", f"ego4d-clip-{CLIP}"]
    a, b, clip = refs
    assert a.relpath == f"full_scale/{UID_A}.mp4" and a.split == "train" and a.source == "ego4d"
    assert a.metadata["scenarios"] == ["Cooking", "Cleaning / laundry"] and a.metadata["fps"] == 25.0
    assert b.metadata["size"] == [1920, 1080] and b.metadata["device"] == "Vuzix Blade"
    assert clip.metadata["kind"] == "clips" and clip.metadata["video_uid"] == UID_B
    assert clip.metadata["video_start_sec"] == 120.0 and clip.metadata["scenarios"] == b.metadata["scenarios"]
    # The version folder itself works as the root too, and kinds restricts what is listed.
    assert find_version_dir(str(ego4d_root)) == find_version_dir(str(ego4d_root / "v2"))
    only_clips = Ego4DSource(kinds=["clips"]).discover(str(ego4d_root / "v2"))
    assert [r.episode_id for r in only_clips] == [f"ego4d-clip-{CLIP}"]


def test_open_reads_fps_and_size_from_each_file_and_carries_scenarios(ego4d_root):
    source = Ego4DSource(hfov_deg=100.0)
    refs = {r.metadata["uid"]: r for r in source.discover(str(ego4d_root))}
    a, b = source.open(refs[UID_A]), source.open(refs[UID_B])
    assert (a.intrinsics.width, a.intrinsics.height, a.fps) == (640, 360, 25.0)
    # B's file is 1280x720 @ 25 fps, not the 1920x1080 @ 30 its metadata claims.
    assert (b.intrinsics.width, b.intrinsics.height, b.fps) == (1280, 720, 25.0)
    assert a.extra["metadata_mismatch"] is False and b.extra["metadata_mismatch"] is True
    assert b.extra["metadata_fps"] == 30.0 and b.extra["metadata_size"] == [1920, 1080]
    assert a.intrinsics.source == "fov_prior" and a.extra["hfov_deg"] == 100.0
    np.testing.assert_allclose(a.intrinsics.fx, 0.5 * 640 / np.tan(np.deg2rad(50.0)))
    assert a.task == "Cooking, Cleaning / laundry"
    assert a.extra["scenarios"] == ["Cooking", "Cleaning / laundry"]
    assert a.extra["device"] == "GoPro Hero 7" and a.extra["video_uid"] == UID_A
    assert a.num_frames == 202 and a.hands is None and a.camera is None and a.embodiment == "human"
    frames = a.frames()
    first = [next(frames) for _ in range(3)]
    assert first[0].image.shape == (360, 640, 3) and [f.index for f in first] == [0, 1, 2]
    np.testing.assert_allclose([f.timestamp for f in first], [0.0, 0.04, 0.08], atol=1e-6)


def test_resampling_keeps_nearest_frames(ego4d_root):
    source = Ego4DSource(target_fps=5.0)
    ref = next(r for r in source.discover(str(ego4d_root)) if r.metadata["uid"] == UID_A)
    ep = source.open(ref)
    frames = list(ep.frames())
    assert ep.fps == 5.0 and len(frames) == ep.num_frames == 41
    assert [f.source_index for f in frames[:4]] == [0, 5, 10, 15]


def test_subset_by_uid_list_and_uid_file(ego4d_root, tmp_path):
    refs = Ego4DSource(video_uids=[UID_B]).discover(str(ego4d_root))
    # The clip is selected with its parent video.
    assert [r.episode_id for r in refs] == [f"ego4d-{UID_B}", f"ego4d-clip-{CLIP}"]
    uid_file = tmp_path / "uids.txt"
    uid_file.write_text(f"{UID_A}\n{CLIP} {UID_GONE}\n")
    assert read_uid_file(str(uid_file)) == [UID_A, CLIP, UID_GONE]
    source = Ego4DSource(video_uid_file=str(uid_file))
    refs = source.discover(str(ego4d_root))
    assert [r.episode_id for r in refs] == [f"ego4d-{UID_A}", f"ego4d-{UID_GONE}", f"ego4d-clip-{CLIP}"]
    gone = refs[1]
    assert gone.metadata["scenarios"] == ["Carpenter"]
    with pytest.raises(EpisodeError, match=rf"{UID_GONE}\.mp4: file not found"):
        source.open(gone)  # asked for but not downloaded: a failed episode, not a silent skip
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    with pytest.raises(ValueError, match="lists no uid"):
        Ego4DSource(video_uid_file=str(empty))


def test_intrinsics_override_file_and_sidecar(ego4d_root, tmp_path):
    overrides = tmp_path / "ego4d_intrinsics.json"
    # B calibrated on a 1920x1080 grid (same aspect): scaled to the 1280x720 file.
    overrides.write_text(json.dumps({UID_B: {"fx": 900.0, "fy": 900.0, "cx": 959.5, "cy": 539.5,
                                             "width": 1920, "height": 1080},
                                     UID_A: {"K": [[500, 0, 320], [0, 500, 180], [0, 0, 1]], "width": 640,
                                             "height": 480}}))
    source = Ego4DSource(intrinsics_file=str(overrides))
    refs = {r.episode_id: r for r in source.discover(str(ego4d_root))}
    b = source.open(refs[f"ego4d-{UID_B}"]).intrinsics
    assert b.source == "dataset" and (b.width, b.height) == (1280, 720)
    np.testing.assert_allclose([b.fx, b.fy, b.cx, b.cy], [600.0, 600.0, 639.5, 359.5])
    clip = source.open(refs[f"ego4d-clip-{CLIP}"]).intrinsics  # a clip inherits its video's calibration
    np.testing.assert_allclose(clip.fx, 600.0)
    with pytest.raises(EpisodeError, match="intrinsics for 640x480, the video shows 640x360"):
        source.open(refs[f"ego4d-{UID_A}"])
    # Without an override, a sidecar next to the video is used.
    video = Path(refs[f"ego4d-{UID_A}"].path)
    (video.parent / f"{video.name}.intrinsics.json").write_text(json.dumps({"fx": 410, "fy": 410, "cx": 320,
                                                                            "cy": 180}))
    a = Ego4DSource().open(refs[f"ego4d-{UID_A}"]).intrinsics
    assert a.source == "sidecar" and a.fx == 410.0
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(ValueError, match="invalid intrinsics file"):
        Ego4DSource(intrinsics_file=str(bad))
    # a calibration with its lens: k1, k2 go with K (unchanged by the 1920 -> 1280 scaling)
    lens = {UID_B: {"fx": 900.0, "fy": 900.0, "cx": 959.5, "cy": 539.5, "width": 1920, "height": 1080,
                    "k1": -0.12, "k2": 0.02}}
    overrides.write_text(json.dumps(lens))
    b = Ego4DSource(intrinsics_file=str(overrides)).open(refs[f"ego4d-{UID_B}"]).intrinsics
    assert b.distortion.to_list() == [-0.12, 0.02, 0.0, 0.0] and b.fx == 600.0
    lens[UID_B]["k2"] = float("nan")
    overrides.write_text(json.dumps(lens))
    with pytest.raises(EpisodeError, match=r"ego4d_intrinsics\.json .*invalid intrinsics .*k2 must be finite"):
        Ego4DSource(intrinsics_file=str(overrides)).open(refs[f"ego4d-{UID_B}"])


def test_layout_errors_and_registry(ego4d_root, tmp_path):
    (tmp_path / "nothing_here").mkdir()
    with pytest.raises(ValueError, match="not an Ego4D folder"):
        Ego4DSource().discover(str(tmp_path / "nothing_here"))
    with pytest.raises(ValueError, match="not a folder"):
        Ego4DSource().discover(str(tmp_path / "missing"))
    (ego4d_root / "v2" / "ego4d.json").write_text("{not json")
    with pytest.raises(ValueError, match="unreadable Ego4D metadata"):
        Ego4DSource().discover(str(ego4d_root))
    with pytest.raises(ValueError, match="kinds"):
        Ego4DSource(kinds=["video_540ss"])
    source = create_source("ego4d", hfov_deg=80.0, target_fps=None, split="val")
    assert isinstance(source, Ego4DSource) and source.split == "val"


def test_extract_processor_runs_hands_and_visual_odometry_on_an_ego4d_video(ego4d_root):
    from dexhands_data.pipelines.extract import ExtractProcessor

    source = Ego4DSource(target_fps=5.0)
    ref = next(r for r in source.discover(str(ego4d_root)) if r.metadata["uid"] == UID_A)
    proc = ExtractProcessor(source="ego4d", source_options={"target_fps": 5.0}, camera="vo")
    ep = proc(ref)
    try:
        assert len(ep) == 41 and ep.task == "Cooking, Cleaning / laundry" and ep.extra["uid"] == UID_A
        assert ep.camera.estimator == "vo==1.2" and ep.camera.translation_metric is False
        assert ep.camera.world_frame == "first_camera" and ep.camera.valid.mean() > 0.9
        np.testing.assert_allclose(ep.camera.T_world_cam[0], np.eye(4))
        assert ep.hands.valid[:, 1].mean() > 0.8  # the open right hand is seen in most frames
    finally:
        ep.images.close()
