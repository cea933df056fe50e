"""Accuracy and speed of the camera estimators, and the camera's cost inside an extraction.

0. Accuracy (``--accuracy``, default on): rendered videos with exact ground truth made from the
   permissive photos (pure rotation, one fronto-parallel plane, a tilted plane, planes at several
   depths; 90 frames, seeds fixed; the pure rotation and the planes also through a barrel lens,
   k1 = -0.2, k2 = 0.03), each run with its true intrinsics ("sidecar", the lens included) and with
   the 90 deg field-of-view prior ("no sidecar"); a lens scene also with its K but not its lens
   ("K only": the pinhole model on a distorted video); with ``--nc`` also the real EgoDex recordings
   against ARKit (true K, EgoDex hands as masks; 6-frame pairs). Per pair median / max rotation
   error, rotation error at the end, translation direction, invented translation on a pure
   rotation, focal found, time per frame.
1. Odometry per 640x480 frame on one core (``cv2.setNumThreads(1)``; CPU time of this process and
   wall time), on exact-geometry sequences made from the permissive photos (pure rotation, general
   motion in a textured 3D scene) and, with ``--nc``, the real egocentric clip resized to 640x480
   with MediaPipe hands as masks (non-commercial fixture).
2. Extraction throughput (frames/s of ``ExtractProcessor``: decode + MediaPipe hands + JPEG, with
   and without ``--camera vo``) on a real video; the ratio is what the camera costs.

Usage: ``python benchmarks/bench_vo.py [--nc] [--repeat 3] [--extract-video PATH] [--skip-speed]
[--skip-extract] [--cameras vo,colmap]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from dexhands_data.camera.registry import create_camera_estimator  # noqa: E402
from dexhands_data.camera.vo import VisualOdometry  # noqa: E402
from dexhands_data.geometry import Intrinsics  # noqa: E402
from vo_accuracy import accuracy  # noqa: E402
from dexhands_data.distortion import Distortion  # noqa: E402
from vo_scenes import (  # noqa: E402
    distorted_views, general_motion, load_rgb, render_planes, rotation_render, rotation_sequence, single_plane,
    smooth_rotations, textured_planes, view_K,
)

#: The lens of the distorted scenes: a moderate barrel (corners of a 640x480, f = 500 frame move ~30 px).
BARREL = Distortion(-0.2, 0.03)

SHARED = Path(os.environ.get("DEXDATA_SHARED_DATA", ROOT.parent / "shared" / "data"))


def time_vo(frames: list[np.ndarray], intr: Intrinsics, hands=None, valid=None, repeat: int = 3,
            **options) -> dict:
    best_cpu, best_wall = np.inf, np.inf
    for _ in range(repeat):
        session = VisualOdometry(background=False, **options).session(intr)
        c0, w0 = time.process_time(), time.perf_counter()
        for i, f in enumerate(frames):
            session.step(f, None if hands is None else hands[i], None if valid is None else valid[i])
        track = session.finish()
        best_cpu = min(best_cpu, time.process_time() - c0)
        best_wall = min(best_wall, time.perf_counter() - w0)
    n = len(frames)
    return {"frames": n, "cpu_ms": 1e3 * best_cpu / n, "wall_ms": 1e3 * best_wall / n,
            "valid": float(track.valid.mean()), "keyframes": track.processing["keyframes"]}


def scenes() -> dict[str, tuple[list[np.ndarray], Intrinsics]]:
    photos = SHARED / "hand_images"
    frames, K = rotation_sequence(load_rgb(photos / "hamer_test3.jpg"), smooth_rotations(120),
                                  size=(640, 480), f=520.0)
    out = {"rotation (hamer_test3, 640x480)": (list(frames), Intrinsics.from_K(K, 640, 480))}
    names = ["hamer_test3.jpg", "hamer_test1.jpg", "hamer_test2.jpg", "mediapipe_hand_thumb_up.jpg"]
    planes = textured_planes([load_rgb(photos / n) for n in names])
    K2 = view_K(640, 480, 500.0)
    out["general motion (textured planes, 640x480)"] = (
        [render_planes(planes, T, K2) for T in general_motion(120, 0.01)], Intrinsics.from_K(K2, 640, 480))
    return out


def accuracy_scenes(n: int = 90) -> dict[str, tuple[list[np.ndarray], np.ndarray, np.ndarray, Distortion | None]]:
    """Rendered videos with exact ground truth: name -> (frames, true K, T_world_cam, true lens or None)."""
    photos = SHARED / "hand_images"
    out = {}
    R = smooth_rotations(n)
    source = load_rgb(photos / "hamer_test3.jpg")
    frames, K = rotation_sequence(source, R)
    T = np.tile(np.eye(4), (n, 1, 1))
    T[:, :3, :3] = R
    out["pure rotation"] = (list(frames), K, T, None)
    K2 = view_K(640, 480, 500.0)
    T2 = general_motion(n, 0.01)
    texture = load_rgb(photos / "hamer_test1.jpg")
    several = textured_planes([load_rgb(photos / p) for p in ("hamer_test3.jpg", "hamer_test1.jpg",
                                                              "hamer_test2.jpg", "mediapipe_hand_thumb_up.jpg")])
    for name, planes in (("one plane", single_plane(texture)),
                         ("tilted plane (35 deg)", single_plane(texture, tilt_deg=35.0)),
                         ("planes at 2.5-6 m", several)):
        out[name] = ([render_planes(planes, Ti, K2) for Ti in T2], K2, T2, None)
    size = (frames.shape[2], frames.shape[1])
    out["rotation, barrel lens"] = (list(distorted_views(rotation_render(source, K[0, 0]), R, K, size, BARREL)),
                                    K, T, BARREL)
    out["planes 2.5-6 m, barrel lens"] = (
        list(distorted_views(lambda Ti, Kc, sz: render_planes(several, Ti, Kc, sz), T2, K2, (640, 480), BARREL)),
        K2, T2, BARREL)
    return out


VO_OPTIONS: dict = {}


def run_camera(camera: str, frames, intr: Intrinsics, hands=None, valid=None):
    """(CameraTrack, CPU ms per frame of this process) of one estimator run, inline (CPU time, not
    wall time: it is what a busy worker pays, and it does not move with other jobs' load)."""
    options = {"background": False, **VO_OPTIONS} if camera == "vo" else {}
    session = create_camera_estimator(camera, **options).session(intr)
    t0 = time.process_time()
    for i, f in enumerate(frames):
        session.step(f, None if hands is None else hands[i], None if valid is None else valid[i])
    track = session.finish()
    return track, 1e3 * (time.process_time() - t0) / len(frames)


def focal_of(track, intr: Intrinsics) -> float:
    used = getattr(track, "intrinsics", None)
    return float((used or intr).fx)


def k1_of(track) -> float | None:
    """The k1 the estimator ended with (None: pinhole)."""
    used = getattr(track, "intrinsics", None)
    return None if used is None or used.distortion is None else used.distortion.k1


def accuracy_rows(cameras: list[str], only: str | None = None) -> list[tuple]:
    rows = []
    for name, (frames, K, T, lens) in accuracy_scenes().items():
        h, w = frames[0].shape[:2]
        variants = [("sidecar", Intrinsics.from_K(K, w, h, "sidecar", lens)),
                    ("no sidecar", Intrinsics.from_fov(w, h, 90.0))]
        if lens is not None:
            variants.append(("K only", Intrinsics.from_K(K, w, h, "sidecar")))
        for label, intr in variants:
            if only and only not in f"{name} {label}":
                continue
            for camera in cameras:
                track, ms = run_camera(camera, frames, intr)
                acc = accuracy(track.T_world_cam, T, track.valid)
                rows.append((name, label, camera, acc, focal_of(track, intr) / K[0, 0] - 1.0, ms,
                             k1_of(track)))
    return rows


def egodex_rows(cameras: list[str]) -> list[tuple]:
    """Real EgoDex 1080p recordings vs ARKit, true K, ground-truth hands as masks, 6-frame pairs."""
    from dexhands_data.sources.egodex import EgoDexSource

    src = EgoDexSource()
    rows = []
    for ref in src.discover(str(SHARED / "egodex_real_nc")):
        try:
            ep = src.open(ref)
        except Exception as exc:  # an hdf5 without its video
            print(f"  skip {ref.episode_id}: {exc}")
            continue
        frames = [f.image for f in ep.frames()]
        hands = ep.hands
        for camera in cameras:
            track, ms = run_camera(camera, frames, ep.intrinsics, hands.keypoints_2d, hands.valid)
            acc = accuracy(track.T_world_cam, ep.camera.T_world_cam, track.valid, step=6)
            rows.append((ref.episode_id, f"{len(frames)} f, true K", camera, acc,
                         focal_of(track, ep.intrinsics) / ep.intrinsics.fx - 1.0, ms, k1_of(track)))
    return rows


def print_accuracy(rows: list[tuple]) -> None:
    print(f"{'scene':28s} {'K':14s} {'camera':7s} {'pair med':>8s} {'pair max':>8s} {'end':>6s} "
          f"{'t dir':>6s} {'inv. t':>7s} {'focal':>7s} {'k1':>7s} {'valid':>5s} {'cpu ms/f':>8s}")
    for name, label, camera, a, focal, ms, k1 in rows:
        tdir = "-" if a.trans_dir_deg is None else f"{a.trans_dir_deg:.1f}"
        inv = "-" if a.invented_translation is None else f"{a.invented_translation:.3f}"
        k1_text = "-" if k1 is None else f"{k1:+.3f}"
        print(f"{name:28s} {label:14s} {camera:7s} {a.pair_median_deg:8.3f} {a.pair_max_deg:8.3f} "
              f"{a.end_deg:6.2f} {tdir:>6s} {inv:>7s} {100 * focal:+6.1f}% {k1_text:>7s} {a.valid:5.2f} {ms:8.1f}")


def egocentric_nc() -> tuple[list[np.ndarray], Intrinsics, np.ndarray, np.ndarray]:
    import mediapipe as mp

    from dexhands_data.video_io import FrameReader

    path = SHARED / "egocentric_video_nc" / "hawor_example_video_0.mp4"
    frames = [cv2.resize(f.image, (640, 480), interpolation=cv2.INTER_AREA) for f in FrameReader(str(path))]
    kp = np.full((len(frames), 2, 21, 2), np.nan)
    valid = np.zeros((len(frames), 2), bool)
    with mp.solutions.hands.Hands(max_num_hands=2, model_complexity=0) as hands:
        for i, f in enumerate(frames):
            res = hands.process(f)
            for slot, lm in enumerate((res.multi_hand_landmarks or [])[:2]):
                kp[i, slot] = [[p.x * 640 - 0.5, p.y * 480 - 0.5] for p in lm.landmark]
                valid[i, slot] = True
    return frames, Intrinsics.from_fov(640, 480, 90.0), kp, valid


def extraction_throughput(video: Path, repeat: int) -> dict:
    from dexhands_data.pipelines.extract import ExtractProcessor
    from dexhands_data.sources.videos import VideosSource

    ref = VideosSource().discover(str(video.parent))
    ref = next(r for r in ref if Path(r.path).name == video.name)
    variants = {"none": ("none", {}), "vo": ("vo", dict(VO_OPTIONS)),
                "vo_inline": ("vo", {"background": False, **VO_OPTIONS})}
    wall: dict[str, float] = {}
    cpu: dict[str, float] = {}
    for _ in range(repeat):
        for name, (camera, options) in variants.items():  # interleaved, best of ``repeat``
            proc = ExtractProcessor(source="videos", camera=camera, camera_options=options)
            t0, c0 = time.perf_counter(), time.process_time()
            ep = proc(ref)
            wall[name] = max(wall.get(name, 0.0), len(ep) / (time.perf_counter() - t0))
            cpu[name] = min(cpu.get(name, np.inf), 1e3 * (time.process_time() - c0) / len(ep))
            ep.images.close()
    return {"fps": wall, "cpu_ms": cpu, "ratio": wall["vo"] / wall["none"],
            "ratio_inline": wall["vo_inline"] / wall["none"], "cpu_ratio": cpu["none"] / cpu["vo_inline"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nc", action="store_true", help="also time the non-commercial egocentric clip")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--extract-video",
                    default=str(SHARED / "hand_video" / "mediapipe_hand_landmarker_test_video.mp4"))
    ap.add_argument("--skip-extract", action="store_true")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-accuracy", action="store_true")
    ap.add_argument("--cameras", default="vo", help="comma-separated estimators for the accuracy suite")
    ap.add_argument("--only", default=None, help="rendered scenes whose 'name K' contains this text")
    ap.add_argument("--vo", action="append", default=[], metavar="KEY=JSON",
                    help="VO config override (accuracy, speed and extraction), e.g. bundle_adjustment=true")
    args = ap.parse_args()
    for item in args.vo:
        key, value = item.split("=", 1)
        VO_OPTIONS[key] = json.loads(value)
    cv2.setNumThreads(1)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, "
          f"python {platform.python_version()}, opencv {cv2.__version__}; cv2 threads = 1")
    cameras = args.cameras.split(",")
    if not args.skip_accuracy:
        rows = accuracy_rows(cameras, args.only) + (egodex_rows(cameras) if args.nc else [])
        print_accuracy(rows)
    if args.skip_speed:
        return
    rows = []
    for name, (frames, intr) in scenes().items():
        rows.append((name, time_vo(frames, intr, repeat=args.repeat, **VO_OPTIONS)))
    if args.nc:
        frames, intr, kp, valid = egocentric_nc()
        timing = time_vo(frames, intr, kp, valid, args.repeat, **VO_OPTIONS)
        rows.append(("egocentric hawor clip (nc) 640x480 + hand masks", timing))
    print(f"{'sequence':55s} {'frames':>6s} {'cpu ms/f':>9s} {'wall ms/f':>9s} {'valid':>6s} {'keyfr':>6s}")
    for name, r in rows:
        print(f"{name:55s} {r['frames']:6d} {r['cpu_ms']:9.2f} {r['wall_ms']:9.2f} {r['valid']:6.2f} "
              f"{r['keyframes']:6d}")
    if not args.skip_extract:
        cv2.setNumThreads(0)
        t = extraction_throughput(Path(args.extract_video), args.repeat)
        fps, ms = t["fps"], t["cpu_ms"]
        print(f"extraction of {Path(args.extract_video).name} (decode + MediaPipe + JPEG), "
              f"best of {args.repeat}:")
        print(f"  wall throughput: hands only {fps['none']:.1f} frames/s; + VO in its thread {fps['vo']:.1f} "
              f"(ratio {t['ratio']:.2f}); + VO inline {fps['vo_inline']:.1f} (ratio {t['ratio_inline']:.2f})")
        print(f"  CPU per frame (all threads): hands only {ms['none']:.1f} ms; + VO in its thread "
              f"{ms['vo']:.1f} ms; + VO inline {ms['vo_inline']:.1f} ms; "
              f"throughput ratio at full CPU load {t['cpu_ratio']:.2f}")


if __name__ == "__main__":
    main()
