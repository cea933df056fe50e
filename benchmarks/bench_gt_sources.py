"""Speed of the ground-truth sources (egodex, aria) on the real Aria fixtures and a synthetic EgoDex file.

    .venv/bin/python benchmarks/bench_gt_sources.py [--frames 30]

Prints: MPS trajectory parsing (ours vs projectaria_tools), slerp at frame times, Aria open / remap-table
build / per-frame decode + rotate + undistort at two pinhole sizes (and projectaria's per-frame
``distort_by_calibration`` for comparison), EgoDex open and per-frame 1080p decode.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from dexhands_data.sources import aria_mps  # noqa: E402
from dexhands_data.sources.aria import AriaSource  # noqa: E402
from dexhands_data.sources.egodex import EgoDexSource  # noqa: E402

DATA = ROOT.parent / "shared" / "data"


def timed(fn, repeat: int = 1) -> float:
    t = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t) / repeat


def bench_mps() -> None:
    from projectaria_tools.core import mps

    path = DATA / "aria_mps_sample/trajectory/closed_loop_trajectory.csv"
    ours = timed(lambda: aria_mps.read_closed_loop_trajectory(path), 3)
    theirs = timed(lambda: np.stack([p.transform_world_device.to_matrix()
                                     for p in mps.read_closed_loop_trajectory(str(path))]), 3)
    traj = aria_mps.read_closed_loop_trajectory(path)
    times = np.linspace(traj.times_s[0], traj.times_s[-1], 30 * 11)
    slerp = timed(lambda: aria_mps.interpolate_poses(traj, times), 10)
    print(f"trajectory 11,517 rows: ours {ours * 1e3:.0f} ms, projectaria + to_matrix {theirs * 1e3:.0f} ms")
    print(f"slerp at 330 frame times: {slerp * 1e3:.1f} ms")


def bench_aria() -> None:
    from projectaria_tools.core import calibration, data_provider

    vrs_root = DATA / "aria_adt_vrs"
    for size in (1024, 512):
        src = AriaSource(pinhole_size=size)
        (ref,) = src.discover(str(vrs_root))
        t_open = timed(lambda: src.open(ref))
        ep = src.open(ref)
        t_first = timed(lambda: list(ep.frames()))  # includes building the remap tables
        t_frame = timed(lambda: list(ep.frames()), 3) / ep.num_frames
        print(f"aria {size}x{size}: open {t_open * 1e3:.0f} ms, first pass (tables) {t_first * 1e3:.0f} ms, "
              f"{t_frame * 1e3:.0f} ms/frame")
    provider = data_provider.create_vrs_data_provider(str(vrs_root / "video.vrs"))
    stream = provider.get_stream_id_from_label("camera-rgb")
    fisheye = provider.get_device_calibration().get_camera_calib("camera-rgb")
    rotated = calibration.rotate_camera_calib_cw90deg(fisheye)
    pinhole = calibration.get_linear_camera_calibration(1024, 1024, 444.3, "camera-rgb",
                                                        rotated.get_transform_device_camera())
    raw = provider.get_image_data_by_index(stream, 0)[0].to_numpy_array()
    upright = np.ascontiguousarray(np.rot90(raw, -1))
    t = timed(lambda: calibration.distort_by_calibration(upright, pinhole, rotated), 3)
    print(f"projectaria distort_by_calibration per frame (1024): {t * 1e3:.0f} ms")


def bench_egodex(frames: int) -> None:
    from egodex_fixtures import write_egodex_episode

    with tempfile.TemporaryDirectory() as tmp:
        write_egodex_episode(Path(tmp), n_frames=frames)
        src = EgoDexSource()
        (ref,) = src.discover(tmp)
        t_open = timed(lambda: src.open(ref), 3)
        ep = src.open(ref)
        t_frame = timed(lambda: list(ep.frames())) / ep.num_frames
        print(f"egodex {frames} frames 1920x1080: open (69 transforms + probe) {t_open * 1e3:.0f} ms, "
              f"decode {t_frame * 1e3:.1f} ms/frame")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=30, help="frames of the synthetic EgoDex episode")
    args = parser.parse_args()
    bench_mps()
    bench_aria()
    bench_egodex(args.frames)


if __name__ == "__main__":
    main()
