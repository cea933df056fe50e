"""EgoDex K vs the video's size: numbers for the fit (``egodex_intrinsics``), and a real recording
(``../shared/data/egodex_real_nc``) re-encoded downscaled into the test's temp dir: same ``dexwm-official``
actions as the original, 2D projections scaled to the smaller frame, a wrong aspect ratio fails the
episode by name. The shared files are only read (symlinked); derived videos live in tmp only."""

from __future__ import annotations

import json
import os
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq
import pytest

from dexhands_data.cli.main import main
from dexhands_data.geometry import Intrinsics, project
from dexhands_data.schema import fixed_list_to_numpy
from dexhands_data.sources.egodex_intrinsics import IntrinsicsMismatch, fit_intrinsics, native_frame
from dexhands_data.video_io import probe_video

F, CX, CY = 736.6339, 960.0, 540.0  # the documented EgoDex camera (1920x1080)
EPISODE = "test/add_remove_lid/0"


# ------------------------------------------------------------------------------------------------ the fit
def test_native_frame_from_principal_point():
    assert native_frame(CX, CY) == (1920, 1080)
    assert native_frame(239.625, 134.625) == (479, 269)  # a K already scaled to 480x270 (pixel centres)


def test_native_size_keeps_k_as_stored():
    fit = fit_intrinsics(F, F, CX, CY, 1920, 1080, "dataset")
    assert fit.scale == 1.0 and not fit.rescaled and fit.native_size == (1920, 1080)
    assert fit.intrinsics.to_list() == [F, F, CX, CY]
    assert (fit.intrinsics.width, fit.intrinsics.height) == (1920, 1080)
    # a K of the video's own (small) size, as a tool that rescaled K along with the video writes it
    fit = fit_intrinsics(F / 4, F / 4, 239.625, 134.625, 480, 270, "dataset")
    assert fit.scale == 1.0 and fit.intrinsics.cx == 239.625


@pytest.mark.parametrize("size,scale", [((960, 540), 0.5), ((1280, 720), 2 / 3), ((320, 180), 1 / 6),
                                        ((854, 480), 854 / 1920)])
def test_downscaled_video_scales_k_and_projections(size, scale):
    w, h = size
    fit = fit_intrinsics(F, F, CX, CY, w, h, "dataset")
    assert fit.rescaled and fit.native_size == (1920, 1080)
    assert fit.scale == pytest.approx(scale)
    K = fit.intrinsics
    assert (K.width, K.height) == size
    assert K.fx == pytest.approx(F * w / 1920) and K.fy == pytest.approx(F * h / 1080)
    assert K.cx == pytest.approx((CX + 0.5) * w / 1920 - 0.5)
    assert K.cy == pytest.approx((CY + 0.5) * h / 1080 - 0.5)
    # a point projects to the native pixel mapped onto the smaller grid (u' = (u + 0.5) s - 0.5)
    pts = np.array([[0.1, -0.05, 0.6], [-0.3, 0.2, 1.4], [0.0, 0.0, 2.0]])
    native_uv = project(pts, Intrinsics(F, F, CX, CY, 1920, 1080).K)
    want = (native_uv + 0.5) * np.array([w / 1920, h / 1080]) - 0.5
    np.testing.assert_allclose(project(pts, K.K), want, atol=1e-9)
    assert fit.processing() == {"intrinsics_native_size": [1920, 1080],
                                "intrinsics_scale": round(w / 1920, 6)}


@pytest.mark.parametrize("size,message", [
    ((480, 360), "aspect ratio differs"),       # 4:3 crop of a 16:9 frame
    ((1080, 1920), "aspect ratio differs"),     # rotated
    ((1920, 1200), "aspect ratio differs"),     # 16:10
    ((3840, 2160), "larger than K's frame"),    # an upscale (or the K of a smaller frame)
])
def test_other_sizes_are_refused(size, message):
    with pytest.raises(IntrinsicsMismatch, match=message) as info:
        fit_intrinsics(F, F, CX, CY, *size, "dataset")
    assert "1920x1080" in str(info.value) and f"{size[0]}x{size[1]}" in str(info.value)


# ------------------------------------------------------------------------------------- a real recording
def _reencode(src: Path, dst: Path, size: tuple[int, int], max_frames: int | None = None) -> int:
    """``src`` decoded and written resized to ``size`` (H.264) at the same rate; returns the frame count."""
    n = 0
    fps = round(probe_video(str(src)).fps)
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "18"}
        for frame in inp.decode(video=0):
            rgb = frame.to_ndarray(width=size[0], height=size[1], format="rgb24", interpolation="AREA")
            out.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
            n += 1
            if max_frames and n >= max_frames:
                break
        out.mux(stream.encode(None))
    return n


def _recording(root: Path, shared: Path) -> Path:
    """EgoDex layout under ``root`` whose HDF5 is a symlink to the shared one."""
    folder = root / "test" / "add_remove_lid"
    folder.mkdir(parents=True)
    os.symlink(shared / "0.hdf5", folder / "0.hdf5")
    return folder


def _extract(inp: Path, out: Path) -> int:
    return main(["extract", "--source", "egodex", "--input", str(inp), "--out", str(out),
                 "--executor", "local", "--no-progress", "--frame-size", "0"])


def _episode_row(out: Path) -> dict:
    return pq.read_table(out / "meta" / "episodes.parquet").to_pylist()[0]


def _keypoints_2d(out: Path) -> np.ndarray:
    table = pq.read_table(next((out / "data").rglob("*.parquet")), columns=["keypoints_2d"])
    return fixed_list_to_numpy(table.column("keypoints_2d"), (2, 21, 2))


def _actions(out: Path, capsys) -> np.ndarray:
    capsys.readouterr()
    assert main(["actions", str(out), "--episode", EPISODE, "--convention", "dexwm-official", "--json"]) == 0
    return np.array(json.loads(capsys.readouterr().out)["actions"], dtype=np.float64)


@pytest.fixture(scope="module")
def real_runs(shared_data, tmp_path_factory):
    """The real recording as shared, and re-encoded at 480x270 (x 1/4): both extracted."""
    shared = shared_data / "egodex_real_nc" / "test" / "add_remove_lid"
    base = tmp_path_factory.mktemp("egodex_downscaled")
    original = _recording(base / "original", shared)
    os.symlink(shared / "0.mp4", original / "0.mp4")
    small = _recording(base / "small", shared)
    frames = _reencode(shared / "0.mp4", small / "0.mp4", (480, 270))
    runs = {}
    for name in ("original", "small"):
        out = base / f"out-{name}"
        assert _extract(base / name, out) == 0
        runs[name] = out
    return runs, frames


@pytest.mark.noncommercial
def test_downscaled_real_recording_same_actions_scaled_projections(real_runs, capsys):
    runs, frames = real_runs
    assert frames == 94
    original, small = (_episode_row(runs[k]) for k in ("original", "small"))
    assert (original["width"], original["height"]) == (1920, 1080)
    assert (small["width"], small["height"]) == (480, 270)
    assert small["num_frames"] == original["num_frames"] == 94
    np.testing.assert_allclose(original["intrinsics"], [F, F, CX, CY], rtol=1e-6)
    np.testing.assert_allclose(small["intrinsics"], [F / 4, F / 4, 960.5 / 4 - 0.5, 540.5 / 4 - 0.5],
                               rtol=1e-6)
    hands = json.loads(small["processing"])["hands"]
    assert hands["intrinsics_native_size"] == [1920, 1080] and hands["intrinsics_scale"] == 0.25
    assert "intrinsics_scale" not in json.loads(original["processing"])["hands"]  # K used as stored
    assert "scaled x 0.2500 from 1920x1080" in json.loads(small["extra"])["intrinsics_note"]

    np.testing.assert_array_equal(_actions(runs["small"], capsys), _actions(runs["original"], capsys))
    uv_big, uv_small = _keypoints_2d(runs["original"]), _keypoints_2d(runs["small"])
    assert np.isfinite(uv_big).any()
    np.testing.assert_array_equal(np.isfinite(uv_small), np.isfinite(uv_big))
    np.testing.assert_allclose(uv_small, (uv_big + 0.5) * 0.25 - 0.5, atol=1e-3)  # float32 storage
    inside = np.isfinite(uv_small[..., 0])
    assert ((uv_small[..., 0][inside] > -50) & (uv_small[..., 0][inside] < 530)).mean() > 0.9  # on the frame


@pytest.mark.noncommercial
def test_wrong_aspect_video_fails_the_episode_by_name(shared_data, tmp_path, capsys):
    shared = shared_data / "egodex_real_nc" / "test" / "add_remove_lid"
    folder = _recording(tmp_path / "in", shared)
    _reencode(shared / "0.mp4", folder / "0.mp4", (480, 360), max_frames=3)
    capsys.readouterr()
    assert _extract(tmp_path / "in", tmp_path / "out") == 1
    row = _episode_row(tmp_path / "out")
    assert row["status"] == "failed"
    assert "0.hdf5 with 0.mp4: camera/intrinsic: K with principal point (960.0, 540.0) belongs to a " \
           "1920x1080 frame" in row["error"]
    assert "the video is 480x360" in row["error"] and "aspect ratio differs" in row["error"]
    assert "processed 1 episodes (1 failed)" in capsys.readouterr().err
