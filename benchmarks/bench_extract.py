"""End-to-end extraction throughput and memory (issue 2 / issue 3 speed goals).

Measures on this machine, in one run:
  * decode-only fps (PyAV, frames as RGB arrays, rotation applied);
  * MediaPipe-only fps (the estimator on pre-decoded frames, one process);
  * end-to-end ``dexdata extract`` fps through Ray with 1 and 2 workers, hands only (--camera none)
    and with visual odometry (--camera vo), frames embedded at 224 px;
  * peak RSS per worker on the 1080p clip and on a 10x longer 1080p video (memory must not grow
    with video length).

Usage: python benchmarks/bench_extract.py [--video PATH] [--copies 8] [--loop 5]
Prints a markdown table (paste into docs/benchmarks.md with the machine it ran on).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import av
import numpy as np

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("GLOG_minloglevel", "2")
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def decode_fps(path: str) -> tuple[float, list[np.ndarray], float]:
    from dexhands_data.sources.videos import VideosSource

    src = VideosSource()
    ref = next(r for r in src.discover(str(Path(path).parent)) if r.path == str(Path(path).resolve()))
    ep = src.open(ref)
    t0 = time.perf_counter()
    frames = [f for f in ep.frames()]
    dt = time.perf_counter() - t0
    return len(frames) / dt, frames, ep.intrinsics


def mediapipe_fps(frames, intrinsics, complexity: int) -> tuple[float, float]:
    """(MediaPipe steps per second, the per-track lift in ``finish()`` in ms per frame)."""
    from dexhands_data.hands.registry import create

    est = create("mediapipe", model_complexity=complexity)
    session = est.session(intrinsics)
    session.step(frames[0])  # graph initialisation is not throughput
    t0 = time.perf_counter()
    for f in frames[1:]:
        session.step(f)
    fps = (len(frames) - 1) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    session.finish()
    return fps, 1e3 * (time.perf_counter() - t0) / len(frames)


def looped_video(src: str, dst: str, times: int) -> None:
    """Re-encode ``src`` ``times`` times back to back (a long 1080p video for the memory check)."""
    with av.open(src) as inp, av.open(dst, "w") as out:
        s_in = inp.streams.video[0]
        s_out = out.add_stream("libx264", rate=int(round(float(s_in.average_rate))))
        s_out.width, s_out.height, s_out.pix_fmt = s_in.codec_context.width, s_in.codec_context.height, "yuv420p"
        s_out.options = {"preset": "ultrafast", "g": "30"}
        frames = [f.to_ndarray(format="rgb24") for f in inp.decode(s_in)]
        for _ in range(times):
            for img in frames:
                for pkt in s_out.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                    out.mux(pkt)
        for pkt in s_out.encode():
            out.mux(pkt)


def extract(input_dir: str, workers: int, camera: str, out: str):
    """(wall fps incl. actor start-up, steady fps per worker, peak worker RSS MB, failed episodes).

    Steady fps per worker = frames / the time workers spent inside episodes (model loading and Ray
    start-up excluded), i.e. the rate one worker sustains on long videos."""
    from dexhands_data.pipelines.extract import ExtractSettings, run_extract
    from dexhands_data.pipelines.runner import RunConfig

    settings = ExtractSettings(source="videos", camera=camera)
    t0 = time.perf_counter()
    summary = run_extract(settings, input_dir, RunConfig(out=out, workers=workers, show_progress=False))
    wall = summary.frames / (time.perf_counter() - t0)
    steady = summary.frames / sum(o.seconds for o in summary.outcomes)
    return wall, steady, summary.peak_worker_rss_mb, summary.failed


def main() -> None:
    import ray

    ap = argparse.ArgumentParser()
    ap.add_argument("--video", default=str(SHARED / "hand_video" / "mediapipe_gesture_recognizer_test_video.mp4"))
    ap.add_argument("--long-video", default=str(SHARED / "egocentric_video_nc" / "hawor_example_video_0.mp4"))
    ap.add_argument("--copies", type=int, default=8)
    ap.add_argument("--loop", type=int, default=5, help="length multiplier of the long 1080p video")
    ap.add_argument("--hands-only", action="store_true",
                    help="only MediaPipe-only vs end-to-end hands-only with 1 worker, back to back "
                         "(the speed ratio)")
    args = ap.parse_args()
    rows = []
    fps_dec, frames, K = decode_fps(args.video)
    rows.append(("decode only (PyAV -> RGB)", f"{fps_dec:.0f}", ""))
    for c in (1,) if args.hands_only else (0, 1):
        fps, finish_ms = mediapipe_fps(frames, K, c)
        rows.append((f"MediaPipe only, complexity {c}", f"{fps:.1f}",
                     f"per-track lift in finish(): {finish_ms:.2f} ms per frame"))
    work = Path(tempfile.mkdtemp(prefix="dexdata-bench-"))
    inp = work / "in"
    inp.mkdir()
    for i in range(args.copies):
        os.symlink(Path(args.video).resolve(), inp / f"copy{i}.mp4")
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False)
    try:
        for camera in ("none",) if args.hands_only else ("none", "vo"):
            for workers in (1,) if args.hands_only else (1, 2):
                wall, steady, rss, failed = extract(str(inp), workers, camera, str(work / f"out-{camera}-{workers}"))
                rows.append((f"end to end, camera={camera}, {workers} worker(s), {args.copies} videos",
                             f"{wall:.1f}", f"steady {steady:.1f} fps per worker, {workers * steady:.1f} fps "
                                            f"all workers; peak worker RSS {rss:.0f} MB; failed {failed}"))
        if Path(args.long_video).exists() and not args.hands_only:
            for times in (1, args.loop):
                d = work / f"long{times}"
                d.mkdir()
                looped_video(args.long_video, str(d / "clip.mp4"), times)
                wall, steady, rss, _ = extract(str(d), 1, "vo", str(work / f"out-long{times}"))
                rows.append((f"1080p clip x{times} ({121 * times} frames), 1 worker, vo", f"{wall:.1f}",
                             f"steady {steady:.1f} fps; peak worker RSS {rss:.0f} MB"))
    finally:
        ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nMachine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}; video {Path(args.video).name}\n")
    print("| stage | frames/s (wall) | notes |\n|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} |")


if __name__ == "__main__":
    main()
