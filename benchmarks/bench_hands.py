"""Speed and memory of video decoding and of the MediaPipe hand estimator on the real videos.

For each video (1080p egocentric clip with ``--nc``, the 720p and 360p hand videos):
1. decode only: :class:`FrameReader` (PyAV, frame threading, RGB numpy, display rotation);
2. MediaPipe only: ``LegacyHandsDetector.detect`` (tracking mode, ``max_num_hands=2``, model
   complexity 0 and 1), timing the calls only (the first call includes the graph start-up);
3. full estimator: ``MediaPipeHands.session`` (MediaPipe + lift + slot assignment + post-processing),
   timing ``step`` and ``finish`` only.
Frames always stream from the decoder. Each measurement runs in a fresh subprocess so that its peak
RSS (``ru_maxrss``, decoder included) is its own.
Prints a markdown table. Usage: ``python benchmarks/bench_hands.py [--nc] [--max-frames N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("DEXDATA_SHARED_DATA", ROOT.parent / "shared" / "data"))

VIDEOS = {
    "360p hand (640x360, 202 fr)": SHARED / "hand_video" / "mediapipe_hand_landmarker_test_video.mp4",
    "720p hand (1280x720, 195 fr)": SHARED / "hand_video" / "mediapipe_gesture_recognizer_test_video.mp4",
}
NC_VIDEOS = {
    "1080p egocentric (1920x1080, 121 fr, NC)": SHARED / "egocentric_video_nc" / "hawor_example_video_0.mp4",
}


def measure(kind: str, path: str, complexity: int, max_frames: int) -> dict:
    """One measurement in this process, streaming the video (memory independent of its length).

    ``seconds`` counts only the stage measured: decoding for "decode", ``detect`` calls for
    "mediapipe", ``step`` + ``finish`` for "session" (decoding excluded in both).
    """
    from dexhands_data.video_io import FrameReader

    frames = (f for _, f in zip(range(max_frames), FrameReader(path)))
    n, hands, dt = 0, None, 0.0
    if kind == "decode":
        t0 = time.perf_counter()
        n = sum(1 for _ in frames)
        dt = time.perf_counter() - t0
    elif kind == "mediapipe":
        from dexhands_data.hands.mediapipe_backend import LegacyHandsDetector

        det = LegacyHandsDetector(complexity, 0.5, 0.5, False, 2)
        hands = 0
        for f in frames:
            t0 = time.perf_counter()
            hands += len(det.detect(f.image))
            dt += time.perf_counter() - t0
            n += 1
        det.close()
    else:
        from dexhands_data.geometry import Intrinsics
        from dexhands_data.hands.mediapipe_backend import MediaPipeHands

        estimator = MediaPipeHands(model_complexity=complexity)
        session = None
        for f in frames:
            if session is None:
                h, w = f.image.shape[:2]
                session = estimator.session(Intrinsics.from_fov(w, h, 90.0))
            t0 = time.perf_counter()
            session.step(f)
            dt += time.perf_counter() - t0
            n += 1
        t0 = time.perf_counter()
        track = session.finish()
        dt += time.perf_counter() - t0
        hands = int(track.valid.sum())
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"frames": n, "seconds": dt, "fps": n / dt, "peak_rss_mb": rss_mb, "hands": hands}


def run_child(kind: str, path: Path, complexity: int, max_frames: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(path), str(complexity), str(max_frames)],
        check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nc", action="store_true", help="include the non-commercial 1080p egocentric clip")
    ap.add_argument("--max-frames", type=int, default=1000, help="frames per measurement (default: all)")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        kind, path, complexity, max_frames = args.child
        print(json.dumps(measure(kind, path, int(complexity), int(max_frames))))
        return 0
    videos = {**(NC_VIDEOS if args.nc else {}), **VIDEOS}
    import av
    import mediapipe

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, "
          f"Python {platform.python_version()}, PyAV {av.__version__}, mediapipe {mediapipe.__version__}\n")
    print("| video | stage | frames | fps | ms/frame | hands found | peak RSS (MB) |")
    print("|---|---|---|---|---|---|---|")
    for name, path in videos.items():
        rows = [("decode (PyAV, RGB)", "decode", 0)]
        rows += [(f"MediaPipe only, complexity {c}", "mediapipe", c) for c in (0, 1)]
        rows += [(f"full estimator, complexity {c}", "session", c) for c in (0, 1)]
        for label, kind, c in rows:
            r = run_child(kind, path, c, args.max_frames)
            print(f"| {name} | {label} | {r['frames']} | {r['fps']:.1f} | {1000 / r['fps']:.1f} | "
                  f"{'' if r['hands'] is None else r['hands']} | {r['peak_rss_mb']:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
