"""HaMeR backend speed: frames/s per GPU end to end and the share of decode, detection, crops and network.

Stages, timed on one video streamed once (default: the 1080p two-hand egocentric clip, non-commercial):
1. decode: :class:`FrameReader` (PyAV) -> RGB frames;
2. detection: MediaPipe Hands in tracking mode (box source; model complexity 0 by default);
3. crops: box from the landmarks, 2.5x padding to 192:256, affine warp to 256x256 (mirrored for left
   hands), normalisation, collation into batches;
4. network: ``HamerPredictor`` (HaMeR forward incl. MANO, host<->device copies) per batch;
5. lift: un-mirror, un-crop, least-squares translation with the video's intrinsics.

With ``hamer`` + its checkpoint + MANO + CUDA present, it also runs the whole ``HamerSession``
(background-thread batching, so the GPU works while the CPU decodes/detects/crops) and reports
end-to-end frames/s and GPU busy = network seconds / wall seconds. Without them it says exactly why
(``HamerUnavailable`` / no CUDA) and still measures stages 1-3, the CPU work that has to keep a GPU fed.

Usage: ``python benchmarks/bench_hamer.py [--video PATH] [--max-frames N] [--batch-size B]
[--detect-every K] [--hamer-checkpoint CKPT] [--hamer-mano-dir DIR] [--fp16]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("DEXDATA_SHARED_DATA", ROOT.parent / "shared" / "data"))
DEFAULT_VIDEO = SHARED / "egocentric_video_nc" / "hawor_example_video_0.mp4"


def stage_times(path: str, max_frames: int, hfov: float, complexity: int, detect_every: int, batch_size: int,
                predictor, spec) -> dict:
    """Seconds per stage over the first ``max_frames`` frames (network/lift only with a predictor)."""
    from dexhands_data.geometry import Intrinsics
    from dexhands_data.hands.batching import CropItem, collate
    from dexhands_data.hands.crops import CropTransform, box_from_keypoints, crop_image, normalize_crop
    from dexhands_data.hands.hamer_backend import decode_hand
    from dexhands_data.hands.mediapipe_backend import LegacyHandsDetector, to_detection
    from dexhands_data.hands.postprocess import assign_to_slots
    from dexhands_data.keypoints import LEFT
    from dexhands_data.video_io import FrameReader

    reader = FrameReader(path)
    K = Intrinsics.from_fov(reader.info.width, reader.info.height, hfov)
    det = LegacyHandsDetector(complexity, 0.5, 0.5, False, 2)
    t = dict.fromkeys(("decode", "detection", "crops", "network", "lift"), 0.0)
    frames = crops = 0
    queue: list = []

    def run_batch() -> None:
        t0 = time.perf_counter()
        batch = collate(queue)
        t["crops"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        out = predictor(batch)
        t["network"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        for i, item in enumerate(queue):
            decode_hand({k: v[i] for k, v in out.items()}, item.transform, K.K)
        t["lift"] += time.perf_counter() - t0
        queue.clear()

    it = iter(reader)
    prev, slots = None, [None, None]
    while frames < max_frames:
        t0 = time.perf_counter()
        frame = next(it, None)
        t["decode"] += time.perf_counter() - t0
        if frame is None:
            break
        frames += 1
        t0 = time.perf_counter()
        if (frames - 1) % detect_every == 0 or not any(d is not None for d in slots):
            dets = [to_detection(r, K, False) for r in det.detect(frame.image)]
            slots, _ = assign_to_slots(dets, prev)
            prev = np.array([s.keypoints_2d[0] if s is not None else [np.nan, np.nan] for s in slots])
        t["detection"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        for side, d in enumerate(slots):
            if d is None:
                continue
            tr = CropTransform.for_box(box_from_keypoints(d.keypoints_2d), side == LEFT, spec["image_size"],
                                       2.5, spec["bbox_shape"])
            patch = normalize_crop(crop_image(frame.image, tr), spec["mean"], spec["std"])
            queue.append(CropItem(frame.index, side, tr, patch, (K.width, K.height)))
            crops += 1
        t["crops"] += time.perf_counter() - t0
        if predictor is not None and len(queue) >= batch_size:
            run_batch()
    if predictor is not None and queue:
        run_batch()
    else:
        queue.clear()
    det.close()
    return {"frames": frames, "crops": crops, "seconds": t, "size": f"{K.width}x{K.height}"}


def end_to_end(path: str, max_frames: int, hfov: float, est) -> dict:
    from dexhands_data.geometry import Intrinsics
    from dexhands_data.video_io import FrameReader

    reader = FrameReader(path)
    K = Intrinsics.from_fov(reader.info.width, reader.info.height, hfov)
    t0 = time.perf_counter()
    session = est.session(K)
    n = 0
    for frame in reader:
        if n >= max_frames:
            break
        session.step(frame)
        n += 1
    track = session.finish()
    wall = time.perf_counter() - t0
    p = track.processing
    return {"frames": n, "wall": wall, "fps": n / wall, "gpu_busy": p["network_predict_seconds"] / wall,
            "batches": p["network_batches"], "mean_batch": p["network_mean_batch_size"],
            "residual_px_median": p["lift_residual_px_median"],
            "depth_ratio": p["weak_perspective_depth_ratio_median"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", default=str(DEFAULT_VIDEO))
    ap.add_argument("--max-frames", type=int, default=121)
    ap.add_argument("--hfov", type=float, default=90.0)
    ap.add_argument("--detector-complexity", type=int, default=0, choices=[0, 1])
    ap.add_argument("--detect-every", type=int, default=1, help="run the box detector on every k-th frame")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--hamer-checkpoint", default=None)
    ap.add_argument("--hamer-mano-dir", default=None)
    ap.add_argument("--fp16", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("GLOG_minloglevel", "2")

    import torch

    from dexhands_data.hands.crops import IMAGENET_MEAN, IMAGENET_STD
    from dexhands_data.hands.hamer_backend import HamerHands, HamerUnavailable, locate_hamer

    cuda = f"CUDA: {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "CUDA not available"
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
          f"torch {torch.__version__}, {cuda}")
    print(f"video: {args.video}, first {args.max_frames} frames, batch size {args.batch_size}, "
          f"detector complexity {args.detector_complexity}, detect every {args.detect_every} frame(s)\n")
    reason = None
    try:
        locate_hamer(args.hamer_checkpoint, args.hamer_mano_dir)
        if not torch.cuda.is_available():
            reason = "no CUDA device (HaMeR's ViT-H on CPU is not a meaningful benchmark)"
    except HamerUnavailable as exc:
        reason = str(exc)
    est = predictor = None
    spec = {"image_size": 256, "bbox_shape": (192, 256), "mean": IMAGENET_MEAN, "std": IMAGENET_STD}
    if reason is None:
        est = HamerHands(args.hamer_checkpoint, args.hamer_mano_dir, "cuda", args.batch_size, fp16=args.fp16,
                         detect_every=args.detect_every, detector_model_complexity=args.detector_complexity)
        predictor = est.predictor
        spec = {"image_size": est.spec.image_size, "bbox_shape": est.spec.bbox_shape, "mean": est.spec.mean,
                "std": est.spec.std}
        predictor(_warmup_batch(spec, args.batch_size))  # CUDA context, cudnn autotune
    else:
        print(f"HaMeR network NOT run: {reason}\nMeasuring the CPU stages that feed it.\n")

    r = stage_times(args.video, args.max_frames, args.hfov, args.detector_complexity, args.detect_every,
                    args.batch_size, predictor, spec)
    total = sum(r["seconds"].values())
    print(f"| stage ({r['size']}, {r['frames']} frames, {r['crops']} hand crops) | ms/frame | share |")
    print("|---|---:|---:|")
    for name, sec in r["seconds"].items():
        if predictor is None and name in ("network", "lift"):
            print(f"| {name} | not run | - |")
            continue
        print(f"| {name} | {1000 * sec / max(r['frames'], 1):.1f} | {100 * sec / total:.0f}% |")
    cpu = sum(r["seconds"][k] for k in ("decode", "detection", "crops"))
    print(f"\nCPU stages: {1000 * cpu / max(r['frames'], 1):.1f} ms/frame -> one CPU worker feeds at most "
          f"{r['frames'] / cpu:.1f} frames/s; a GPU doing G frames/s needs about "
          f"G / {r['frames'] / cpu:.1f} workers "
          f"sharing it (--workers N --gpus-per-worker 1/N).")
    if est is not None:
        e = end_to_end(args.video, args.max_frames, args.hfov, est)
        print(f"\nend to end (HamerSession, background batching): {e['fps']:.1f} frames/s per GPU, "
              f"GPU busy {100 * e['gpu_busy']:.0f}% (goal >= 70%), {e['batches']} batches of "
              f"{e['mean_batch']:.1f}, lift residual median {e['residual_px_median']:.2f} px, "
              f"weak-perspective/lift depth {e['depth_ratio']:.3f}")
    return 0


def _warmup_batch(spec: dict, n: int) -> dict:
    S = spec["image_size"]
    return {"img": np.zeros((n, 3, S, S), np.float32), "box_center": np.full((n, 2), 500, np.float32),
            "box_size": np.full((n,), 300, np.float32), "img_size": np.tile(np.float32([1920, 1080]), (n, 1)),
            "right": np.ones((n,), np.float32), "personid": np.arange(n)}


if __name__ == "__main__":
    sys.exit(main())
