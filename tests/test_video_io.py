"""PyAV helpers: probing real videos, display rotation, timestamp resampling, and bad files."""

from __future__ import annotations

import numpy as np
import pytest

from dexhands_data.geometry import Intrinsics, project
from dexhands_data.records import EpisodeError
from dexhands_data.video_io import (
    DisplayTransform,
    FrameReader,
    display_transform_from_matrix,
    display_transform_from_rotate_tag,
    expected_output_frames,
    is_video_path,
    probe_video,
    read_frames_at,
    select_nearest_frames,
    write_video,
)

LANDMARKER = "hand_video/mediapipe_hand_landmarker_test_video.mp4"
GESTURE = "hand_video/mediapipe_gesture_recognizer_test_video.mp4"


def quadrants(h: int = 48, w: int = 64) -> np.ndarray:
    """An image whose orientation is unambiguous: four differently coloured quadrants."""
    img = np.zeros((h, w, 3), np.uint8)
    img[: h // 2, : w // 2] = (255, 0, 0)
    img[: h // 2, w // 2:] = (0, 255, 0)
    img[h // 2:, : w // 2] = (0, 0, 255)
    img[h // 2:, w // 2:] = (255, 255, 255)
    return img


# ----------------------------------------------------------------------------- real videos


@pytest.mark.parametrize(
    ("rel", "frames", "size"), [(LANDMARKER, 202, (640, 360)), (GESTURE, 195, (1280, 720))]
)
def test_probe_real_videos(shared_data, rel, frames, size):
    info = probe_video(str(shared_data / rel))
    assert (info.width, info.height) == size
    assert info.fps == 25.0
    assert info.num_frames == frames and info.num_frames_exact
    assert info.duration_s == pytest.approx(frames / 25.0, abs=0.05)
    assert info.codec == "h264" and info.display.is_identity and info.rotation_ccw_deg == 0


def test_reader_streams_every_frame_with_timestamps(shared_data):
    path = str(shared_data / LANDMARKER)
    reader = FrameReader(path)
    idx, src, ts = [], [], []
    for frame in reader:
        assert frame.image.shape == (360, 640, 3) and frame.image.dtype == np.uint8
        idx.append(frame.index)
        src.append(frame.source_index)
        ts.append(frame.timestamp)
    assert reader.decoded == 202 and reader.skipped_non_monotonic == 0
    assert idx == list(range(202)) and src == list(range(202))
    np.testing.assert_allclose(ts, np.arange(202) * 0.04, atol=1e-9)


@pytest.mark.parametrize("fps", [10.0, 7.5, 12.5])
def test_resampling_picks_nearest_frames_without_duplicates(shared_data, fps):
    path = str(shared_data / LANDMARKER)
    info = probe_video(path)
    frames = list(FrameReader(path, info=info, target_fps=fps))
    src = np.array([f.source_index for f in frames])
    ts = np.array([f.timestamp for f in frames])
    assert np.all(np.diff(src) > 0) and np.all(np.diff(ts) > 0)  # never duplicated, in order
    assert [f.index for f in frames] == list(range(len(frames)))
    np.testing.assert_allclose(ts, src * 0.04, atol=1e-9)  # timestamps are the source frames' own
    # the streaming choice equals the batch rule, and the count equals the prediction from the header
    np.testing.assert_array_equal(src, select_nearest_frames(np.arange(202) * 0.04, fps, 0.04))
    assert len(frames) == expected_output_frames(info, fps)
    # every kept frame is the nearest one to its target k / fps (within half a source frame)
    k = np.round(ts * fps)
    assert np.all(np.abs(ts - k / fps) <= 0.02 + 1e-9)
    assert len(frames) == pytest.approx(8.08 * fps, abs=1.5)


def test_resampling_above_source_rate_keeps_every_frame_once(shared_data):
    frames = list(FrameReader(str(shared_data / LANDMARKER), target_fps=60.0))
    assert [f.source_index for f in frames] == list(range(202))


def test_select_nearest_frames_known_cases():
    t = np.arange(10) / 30.0  # 30 fps, 10 frames
    np.testing.assert_array_equal(select_nearest_frames(t, 15.0), [0, 2, 4, 6, 8])
    np.testing.assert_array_equal(select_nearest_frames(t, 10.0), [0, 3, 6, 9])
    # 20 fps targets 0, .05, .1, ...: .05 lies between frames 1 (.0333) and 2 (.0667) -> tie -> earlier
    np.testing.assert_array_equal(select_nearest_frames(t, 20.0), [0, 1, 3, 4, 6, 7, 9])
    # irregular timestamps: nearest by time, not by index
    t2 = np.array([0.0, 0.01, 0.02, 0.5, 0.51, 1.0])
    np.testing.assert_array_equal(select_nearest_frames(t2, 2.0, 0.01), [0, 3, 5])
    assert select_nearest_frames(np.zeros(0), 5.0).size == 0


def test_read_frames_at_matches_sequential_decoding(shared_data):
    path = str(shared_data / LANDMARKER)
    wanted = [150, 3, 77]
    got = read_frames_at(path, wanted)
    seq = {f.source_index: f.image for f in FrameReader(path) if f.source_index in wanted}
    for i, img in zip(wanted, got):
        np.testing.assert_array_equal(img, seq[i])
    with pytest.raises(EpisodeError, match="beyond the last decoded frame"):
        read_frames_at(path, [500])


# ----------------------------------------------------------------------------- rotation


@pytest.mark.parametrize("rotation", [0, 90, -90, 180, 270])
@pytest.mark.parametrize(("hflip", "vflip"), [(False, False), (True, False), (False, True)])
def test_display_matrix_is_applied(tmp_path, rotation, hflip, vflip):
    """A display matrix written by PyAV comes back as PyAV documents it: rotate CCW, then mirror."""
    img = quadrants()
    path = str(tmp_path / "rot.mp4")
    write_video(path, [img] * 3, rotation_ccw_deg=rotation, hflip=hflip, vflip=vflip)
    info = probe_video(path)
    expected = np.rot90(img, k=rotation // 90)
    if hflip:
        expected = expected[:, ::-1]
    if vflip:
        expected = expected[::-1]
    frames = list(FrameReader(path, info=info))
    assert len(frames) == 3
    assert (info.height, info.width) == expected.shape[:2] == frames[0].image.shape[:2]
    assert (info.coded_width, info.coded_height) == (64, 48)
    assert np.abs(frames[0].image.astype(int) - expected).mean() < 8  # H.264 is lossy
    if not (hflip or vflip):
        assert info.rotation_ccw_deg == rotation % 360


def test_display_matrix_decisions_match_ffmpeg():
    one = 65536
    rot90_ccw = [0, -one, 0, one, 0, 0, 0, 0, 1 << 30]  # what set_display_rotation(90) writes
    assert display_transform_from_matrix(rot90_ccw) == DisplayTransform(True, False, True)
    iphone_portrait = [0, one, 0, -one, 0, 0, 0, 0, 1 << 30]  # 'rotate=90' tag: turn clockwise
    assert display_transform_from_matrix(iphone_portrait) == DisplayTransform(True, True, False)
    assert display_transform_from_matrix([one, 0, 0, 0, one, 0, 0, 0, 1 << 30]).is_identity
    assert display_transform_from_matrix([-one, 0, 0, 0, -one, 0, 0, 0, 1 << 30]).rotation_ccw_deg == 180
    c, s = int(one * np.cos(np.pi / 4)), int(one * np.sin(np.pi / 4))
    with pytest.raises(ValueError, match="not a multiple of 90"):
        display_transform_from_matrix([c, -s, 0, s, c, 0, 0, 0, 1 << 30])
    assert display_transform_from_rotate_tag(90) == display_transform_from_matrix(iphone_portrait)
    assert display_transform_from_rotate_tag(270).rotation_ccw_deg == 90


@pytest.mark.parametrize(
    "transform",
    [DisplayTransform(True, False, True), DisplayTransform(True, True, False),
     DisplayTransform(False, True, True)],
)
def test_display_transform_of_pixels_and_intrinsics_agree(transform):
    """Rotating the image and rotating the camera give the same pixels for every 3D point."""
    intr = Intrinsics(500.0, 520.0, 300.0, 200.0, 640, 480)
    rng = np.random.default_rng(0)
    pts = np.column_stack([rng.uniform(-0.5, 0.5, 30), rng.uniform(-0.4, 0.4, 30), rng.uniform(0.5, 3.0, 30)])
    uv_displayed = transform.apply_to_pixels(project(pts, intr.K), 640, 480)
    # the displayed camera's axes: the same signed permutation on (x, y), z unchanged
    xy = pts[:, [1, 0]] if transform.transpose else pts[:, :2]
    xy = xy * np.array([-1 if transform.flip_x else 1, -1 if transform.flip_y else 1])
    pts_displayed = np.column_stack([xy, pts[:, 2]])
    rotated = transform.apply_to_intrinsics(intr)
    assert (rotated.width, rotated.height) == transform.displayed_size(640, 480)
    np.testing.assert_allclose(project(pts_displayed, rotated.K), uv_displayed, atol=1e-9)
    # and the pixel map is the image map
    img = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
    out = transform.apply(img)
    u, v = 17, 301
    ud, vd = transform.apply_to_pixels(np.array([u, v]), 640, 480).astype(int)
    np.testing.assert_array_equal(out[vd, ud], img[v, u])


# ----------------------------------------------------------------------------- bad inputs


def test_zero_byte_file(tmp_path):
    p = tmp_path / "empty.mp4"
    p.write_bytes(b"")
    with pytest.raises(EpisodeError, match=r"empty\.mp4: empty file \(0 bytes\)"):
        probe_video(str(p))


def test_text_file_renamed_mp4(tmp_path):
    p = tmp_path / "notes.mp4"
    p.write_text("these are not video bytes\n" * 20)
    with pytest.raises(EpisodeError, match=r"notes\.mp4: not a readable video container"):
        probe_video(str(p))


def test_missing_file(tmp_path):
    with pytest.raises(EpisodeError, match=r"gone\.mp4: file not found"):
        probe_video(str(tmp_path / "gone.mp4"))


def test_audio_only_file_has_no_video_stream(tmp_path):
    import av

    p = str(tmp_path / "sound.mp4")
    with av.open(p, "w") as c:
        s = c.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 16000
        for packet in s.encode(frame):
            c.mux(packet)
        for packet in s.encode():
            c.mux(packet)
    with pytest.raises(EpisodeError, match=r"sound\.mp4: no video stream"):
        probe_video(p)


@pytest.mark.parametrize("fraction", [0.5, 0.9])
def test_truncated_mp4_fails_with_frame_counts(shared_data, tmp_path, fraction):
    """The fixture stores its index first, so a cut file opens and announces 202 frames."""
    data = (shared_data / LANDMARKER).read_bytes()
    p = tmp_path / "cut.mp4"
    p.write_bytes(data[: int(len(data) * fraction)])
    info = probe_video(str(p))
    assert info.num_frames == 202
    reader = FrameReader(str(p), info=info)
    pattern = r"cut\.mp4: truncated stream: decoded (\d+) of ~202 frames"
    with pytest.raises(EpisodeError, match=pattern) as exc:
        for _ in reader:
            pass
    decoded = int(str(exc.value).split("decoded ")[1].split(" ")[0])
    assert 0 < decoded < 202 - 2
    assert reader.decoded == decoded


def test_truncated_to_header_only(shared_data, tmp_path):
    data = (shared_data / LANDMARKER).read_bytes()
    p = tmp_path / "stub.mp4"
    p.write_bytes(data[:4000])  # inside the moov box: not even the index is complete
    with pytest.raises(EpisodeError, match=r"stub\.mp4: "):
        probe_video(str(p))


def test_is_video_path():
    assert is_video_path("a/b/CLIP.MP4") and is_video_path("x.webm") and is_video_path("y.MoV")
    assert not is_video_path("clip.mp4.intrinsics.json") and not is_video_path("README")
