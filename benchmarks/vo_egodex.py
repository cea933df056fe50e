"""The visual odometry alone on the real EgoDex recordings, scored against ARKit (fast iteration).

Decodes each video once and caches its working-grid frames (grey + the hand mask made from the
hands' 2D of an existing estimate) under ``--cache``; then runs only the odometry on them and scores
with :mod:`dexhands_data.fidelity.camera_metrics` (rotation error per pair at strides 1 and 6, at the
end, translation direction where the true translation over the pair exceeds 1 cm), with the true K
("sidecar") and, with ``--no-sidecar``, the 90 deg prior (self-calibrated focal).

Usage: ``python benchmarks/vo_egodex.py --est EST --gt GT --videos VIDEO_ROOT [--cache DIR]
[--vo KEY=JSON ...] [--no-sidecar]``. EST/GT are datasets of the same recordings (``dexdata extract``),
VIDEO_ROOT the ``videos`` input tree with ``*.intrinsics.json`` sidecars. Non-commercial data: nothing
of it is written into the repository.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dexhands_data.camera.vo import VisualOdometry  # noqa: E402
from dexhands_data.fidelity.camera_metrics import camera_samples, end_rotation_error_deg  # noqa: E402
from dexhands_data.geometry import Intrinsics  # noqa: E402
from dexhands_data.video_io import FrameReader  # noqa: E402


def episode_table(root: Path, key: str):
    """Frame table (sorted by frame_index) of the episode whose id contains ``key`` (``open_close__1``)."""
    for f in sorted(root.glob("data/*/*/*.parquet")):
        t = pq.read_table(f, columns=["episode_id", "frame_index", "keypoints_2d", "hand_valid",
                                      "T_world_cam", "camera_valid"]).to_pandas()
        for eid, g in t.groupby("episode_id"):
            if key in eid.replace("__", "_").replace("/", "_"):
                return g.sort_values("frame_index")
    raise FileNotFoundError(f"{root}: no episode matching {key}")


def prepared_frames(video: Path, est, intr: Intrinsics, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """(greys, masks) on the working grid, cached per video."""
    path = cache / (video.parent.name + "_" + video.stem + ".npz")
    if path.exists():
        z = np.load(path)
        return z["greys"], z["masks"]
    session = VisualOdometry(background=False).session(intr)
    session = getattr(session, "session", session)
    kp = np.array([np.array([np.array(list(h)) for h in row]) for row in est["keypoints_2d"]], dtype=np.float64)
    valid = np.array([np.array(list(v)) for v in est["hand_valid"]], dtype=bool)
    greys, masks = [], []
    for i, frame in enumerate(FrameReader(str(video))):
        g, m = session.prepare(frame.image, kp[i], valid[i])
        greys.append(g)
        masks.append(m)
    cache.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, greys=np.stack(greys), masks=np.stack(masks))
    return np.stack(greys), np.stack(masks)


def run(greys, masks, intr: Intrinsics, options: dict):
    session = VisualOdometry(background=False, **options).session(intr)
    c0 = time.process_time()
    for g, m in zip(greys, masks):
        session.step_prepared(g, m)
    track = session.finish()
    return track, 1e3 * (time.process_time() - c0) / len(greys)


def score(track, gt_T: np.ndarray, gt_valid: np.ndarray) -> dict:
    valid = track.valid & gt_valid
    out = {}
    n = len(gt_T)
    for s in (1, 6):
        i = np.arange(n - s)
        smp = camera_samples(track.T_world_cam, gt_T, valid, i, i + s)
        out[f"rot{s}"] = float(np.median(smp.rotation_deg)) if len(smp.rotation_deg) else float("nan")
        d = smp.direction_deg[np.isfinite(smp.direction_deg)]  # NaN: no estimated translation
        out[f"dir{s}"] = float(np.median(d)) if len(d) else None
        out[f"dir{s}_pairs"] = f"{len(d)}/{len(smp.direction_deg)}"
    out["end"] = end_rotation_error_deg(track.T_world_cam, gt_T, valid)[0]
    out["valid"] = float(track.valid.mean())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--est", default="/tmp/lead/fid/est")
    ap.add_argument("--gt", default="/tmp/lead/fid/gt")
    ap.add_argument("--videos", default="/tmp/lead/fid/videos")
    ap.add_argument("--cache", default="/tmp/i14ba/vo_cache")
    ap.add_argument("--vo", action="append", default=[], metavar="KEY=JSON")
    ap.add_argument("--no-sidecar", action="store_true")
    ap.add_argument("--only", default=None)
    args = ap.parse_args()
    options = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.vo)}
    import cv2
    cv2.setNumThreads(1)
    for video in sorted(Path(args.videos).glob("*/*/*.mp4")):
        key = f"{video.parent.name}_{video.stem}"
        if args.only and args.only not in key:
            continue
        K = np.array(json.loads(Path(str(video) + ".intrinsics.json").read_text())["K"])
        intr = Intrinsics.from_K(K, 1920, 1080, "sidecar")
        est, gt = episode_table(Path(args.est), key), episode_table(Path(args.gt), key)
        greys, masks = prepared_frames(video, est, intr, Path(args.cache))
        if args.no_sidecar:
            intr = Intrinsics.from_fov(1920, 1080, 90.0)
        gt_T = np.stack([np.array([np.array(list(r)) for r in T]) for T in gt["T_world_cam"]])
        track, ms = run(greys, masks, intr, options)
        s = score(track, gt_T, gt["camera_valid"].to_numpy().astype(bool))
        p = track.processing
        print(f"{key:18s} rot1 {s['rot1']:.3f} rot6 {s['rot6']:.3f} end {s['end']:.2f} "
              f"dir6 {s['dir6'] if s['dir6'] is None else round(s['dir6'], 1)} ({s['dir6_pairs']}) "
              f"dir1 {s['dir1'] if s['dir1'] is None else round(s['dir1'], 1)} ({s['dir1_pairs']}) "
              f"valid {s['valid']:.3f} ms/f {ms:.1f} focal {track.intrinsics.fx:.1f}")
        print("   ", {k: v for k, v in p.items() if k not in ("working_size",)})


if __name__ == "__main__":
    main()
