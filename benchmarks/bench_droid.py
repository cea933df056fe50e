"""Speed of ``convert-droid``: steps/s per core without frames, with embedded frames, and decode only.

Builds a raw-layout DROID root from the real crowndata episode (166 steps, 15 Hz; the camera videos are
its real frames upscaled to ``--size`` and H.264-encoded like a release MP4) and times, in this one
process (one core):

* ``geometry``: pseudo-hand + camera transform + projection only (arrays in memory);
* ``no_frames``: the whole processor without frames (HDF5 + metadata + video header + geometry),
  i.e. the extract pipeline's processor with source ``droid``, as ``convert-droid --frame-size 0`` runs it;
* ``with_frames``: the same decoding the camera video and encoding JPEGs (short side 224), with the
  pipeline's read-ahead thread and on-disk spool;
* ``decode_only``: PyAV decoding the same videos to RGB, nothing else.

Reports wall and process-CPU rates (the CPU rate is the per-core figure on a shared machine).

    python benchmarks/bench_droid.py --episodes 20 --size 1280x720
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import av
import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from droid_fixtures import load_episode, write_raw_episode  # noqa: E402

from dexhands_data.sources.droid.cameras import T_base_cam_from_extrinsics, default_intrinsics  # noqa: E402
from dexhands_data.pipelines.convert_droid import DroidInput, DroidSettings, droid_extract_settings  # noqa: E402
from dexhands_data.pipelines.extract import ExtractProcessor  # noqa: E402
from dexhands_data.sources.droid.pseudo_hand import pseudo_hand  # noqa: E402
from dexhands_data.sources.droid.readers import discover  # noqa: E402
from dexhands_data.geometry import project, se3_inverse  # noqa: E402


def encode_release_video(path: Path, frames: np.ndarray) -> None:
    """H.264 yuv420p, default CRF, as the release MP4s are."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=15)
        s.width, s.height = frames.shape[2], frames.shape[1]
        s.pix_fmt = "yuv420p"
        for rgb in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def processor(embed_frames: bool) -> ExtractProcessor:
    settings = droid_extract_settings(DroidInput(""), DroidSettings(embed_frames=embed_frames, short_side=224))
    return ExtractProcessor(**asdict(settings))


def convert_all(proc: ExtractProcessor, refs) -> None:
    for ref in refs:
        ep = proc(ref)
        if ep.images is not None:
            ep.images.close()


def timed(fn) -> tuple[float, float]:
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=20)
    ap.add_argument("--size", default="1280x720", help="camera video size WxH")
    ap.add_argument("--shared-data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    args = ap.parse_args()
    width, height = (int(x) for x in args.size.split("x"))
    ep = load_episode(Path(args.shared_data))
    big = np.stack([cv2.resize(f, (width, height), interpolation=cv2.INTER_CUBIC) for f in ep.frames])
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder = write_raw_episode(root, ep, rel="RAIL/success/2023-04-17/t0000")
        for mp4 in (folder / "recordings" / "MP4").glob("*.mp4"):
            encode_release_video(mp4, big)
        for i in range(1, args.episodes):  # the same real episode under other names (hard links)
            dst = root / f"RAIL/success/2023-04-17/t{i:04d}"
            (dst / "recordings" / "MP4").mkdir(parents=True)
            for f in folder.rglob("*"):
                if f.is_file():
                    (dst / f.relative_to(folder)).hardlink_to(f)
        refs = discover(root)
        steps = len(ep) * len(refs)
        report = {}

        n_rep = 200
        T = T_base_cam_from_extrinsics(ep.extrinsics["ext1"])
        K = default_intrinsics(width, height).K

        def geometry():
            for _ in range(n_rep):
                base = pseudo_hand("oriented", ep.cartesian, ep.gripper)
                Tc = se3_inverse(T)
                cam = base @ Tc[:3, :3].T + Tc[:3, 3]
                project(cam, K)

        report["geometry"] = (len(ep) * n_rep, *timed(geometry))
        for name, proc in (("no_frames", processor(False)), ("with_frames", processor(True))):
            convert_all(proc, refs[:1])  # warm-up
            report[name] = (steps, *timed(lambda p=proc: convert_all(p, refs)))
        videos = [r.path + "/recordings/MP4/22008760.mp4" for r in refs]

        def decode():
            for v in videos:
                with av.open(v) as c:
                    c.streams.video[0].thread_type = "AUTO"
                    for f in c.decode(video=0):
                        f.to_ndarray(format="rgb24")

        report["decode_only"] = (steps, *timed(decode))
    print(f"DROID conversion, {len(refs)} episodes x {len(ep)} steps, video {width}x{height}")
    print(f"{'stage':<12} {'steps':>7} {'wall s':>8} {'cpu s':>8} {'steps/s wall':>13} {'steps/s cpu':>12}")
    for name, (n, wall, cpu) in report.items():
        print(f"{name:<12} {n:>7} {wall:>8.2f} {cpu:>8.2f} {n / wall:>13.0f} {n / max(cpu, 1e-9):>12.0f}")
    ratio = report["decode_only"][1] / report["with_frames"][1]
    print(f"with_frames / decode_only rate ratio (wall): {ratio:.2f}")


if __name__ == "__main__":
    main()
