"""Fidelity of today's estimators against ground truth, on real data; writes a section of docs/fidelity.md.

1. EgoDex (``shared/data/egodex_real_nc``, the two recordings with video): ``extract --source egodex
   --frame-size 0`` (ARKit hands and camera) and ``extract --source videos`` of the MP4s with their true K
   (sidecars written from each HDF5's ``camera/intrinsic`` into a temporary tree of symlinks: the shared
   folder is read-only), then ``dexdata score`` at strides 1 and 6.
2. ``dexdata score-images`` on ``shared/data/hand3d_gt`` (calibrated 3D: DexYCB, hand-graph-cnn,
   InterHand2.6M).
3. The visual odometry on the rendered scenes of docs/camera.md (a real photo warped by pure rotations;
   textured planes under general motion), scored with the same camera metrics against their exact poses.
4. Scoring speed: ``score_episode`` on real GT/estimate arrays tiled to 100k+ frames, one thread.
5. A PNG of one EgoDex episode's wrist tracks over time (depth and lateral position), estimate vs ARKit.

Usage: ``python benchmarks/bench_fidelity.py --label before [--work DIR] [--png PATH]``
(default PNG: docs/img/fidelity_tracks.png).
The section ``<!-- fidelity:LABEL -->`` of docs/fidelity.md is replaced (or appended): rerun with a new
label (e.g. ``"after issue-13"``) to add figures next to the earlier ones.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # the speed figure is for one core

import argparse  # noqa: E402
import copy  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import h5py  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from dexhands_data.cli.main import main as dexdata  # noqa: E402
from dexhands_data.fidelity import camera_metrics as cm  # noqa: E402
from dexhands_data.fidelity import motion_metrics as mm  # noqa: E402
from dexhands_data.fidelity.episodes import read_scored_episodes  # noqa: E402
from dexhands_data.fidelity.pairing import recording_key  # noqa: E402
from dexhands_data.fidelity.score import score_episode  # noqa: E402

SHARED = Path(os.environ.get("DEXDATA_SHARED_DATA", ROOT.parent / "shared" / "data"))
EGODEX = SHARED / "egodex_real_nc"
DOC = ROOT / "docs" / "fidelity.md"
STRIDES = (1, 6)


def f1(x, d: int = 1) -> str:
    return "-" if x is None else f"{x:.{d}f}"


def finite_median(a: np.ndarray) -> float | None:
    a = np.asarray(a, np.float64)
    a = a[np.isfinite(a)]
    return float(np.median(a)) if a.size else None


def pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


# ----------------------------------------------------------------------------- EgoDex


def video_tree(work: Path) -> Path:
    """Symlinks to the EgoDex MP4s (same relative paths) + ``<video>.intrinsics.json`` from each HDF5."""
    root = work / "videos"
    for mp4 in sorted(EGODEX.rglob("*.mp4")):
        rel = mp4.relative_to(EGODEX)
        link = root / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to(mp4.resolve())
        with h5py.File(mp4.with_suffix(".hdf5")) as f:
            K = np.asarray(f["camera/intrinsic"][()], np.float64)
        Path(str(link) + ".intrinsics.json").write_text(json.dumps({"K": K.tolist()}))
    return root


def extract(*argv: str) -> float:
    t0 = time.perf_counter()
    code = dexdata(["extract", *argv, "--executor", "local", "--no-progress", "--frame-size", "0"])
    if code != 0:
        raise SystemExit(f"extract {' '.join(argv)} exited {code}")
    return time.perf_counter() - t0


def egodex_score(work: Path) -> tuple[dict, Path, Path, float]:
    gt, est = work / "gt", work / "est"
    extract("--source", "egodex", "--input", str(EGODEX), "--out", str(gt))
    seconds = extract("--source", "videos", "--input", str(video_tree(work)), "--out", str(est))
    out = work / "score.json"
    code = dexdata(["score", str(est), str(gt), "--stride", ",".join(map(str, STRIDES)), "--json", str(out)])
    if code != 0:
        raise SystemExit(f"score exited {code}")
    return json.loads(out.read_text()), est, gt, seconds


def egodex_tables(report: dict) -> str:
    rows = report["episodes"] + [report["overall"]]
    lines = ["| recording | frames | GT hands in view | detected % | side ok % | 2D px | est 3D→2D px | "
             "MPJPE mm | PA-MPJPE mm | wrist depth err % (bias %) |", "|---" * 10 + "|"]
    for f in rows:
        h = f["hands"]
        lines.append(f"| {f['name']} | {f['frames']} | {h['gt_hands_in_view']} | {pct(h['detection'])} | "
                     f"{pct(h['side_correct'])} | {f1(h['kp2d_px'])} | {f1(h['est_reprojection_px'])} | "
                     f"{f1(h['mpjpe_cam_mm'])} | {f1(h['pa_mpjpe_mm'])} | {f1(h['wrist_depth_error_pct'])} "
                     f"({f1(h['wrist_depth_bias_pct'])}) |")
    lines += ["", "Hand keypoint motion (median over hand × frame pairs, mm): error / true motion; "
              "scale-aligned error [scale].", "",
              "| recording | stride | with camera | camera frame only | scale-aligned, camera frame |",
              "|---" * 5 + "|"]
    for f in rows:
        for s in map(str, STRIDES):
            w, c = f["motion"][s].get("with_camera"), f["motion"][s]["camera_frame"]
            wtxt = f"{f1(w['error_mm'])} / {f1(w['true_mm'])}" if w else "-"
            lines.append(f"| {f['name']} | {s} | {wtxt} | {f1(c['error_mm'])} / {f1(c['true_mm'])} | "
                         f"{f1(c['scale_aligned_error_mm'])} [{f1(c['scale'], 2)}] |")
    lines += ["", "Camera (median over frame pairs, deg): rotation error per pair / true rotation; at the "
              "episode's end; translation direction error where the true translation exceeds 1 cm.", "",
              "| recording | rotation err, stride 1 | rotation err, stride 6 | at the end (true) | "
              "direction err, stride 6 (pairs) |", "|---" * 5 + "|"]
    for f in rows:
        c = f["camera"]
        s1, s6 = c["strides"]["1"], c["strides"]["6"]
        lines.append(f"| {f['name']} | "
                     f"{f1(s1['rotation_error_deg'], 2)} / {f1(s1['true_rotation_deg'], 2)} | "
                     f"{f1(s6['rotation_error_deg'], 2)} / {f1(s6['true_rotation_deg'], 2)} | "
                     f"{f1(c['end_rotation_error_deg'], 2)} ({f1(c['end_true_rotation_deg'], 1)}) | "
                     f"{f1(s6['direction_error_deg'])} ({s6['translated_pairs']}) |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- still images


def still_table(work: Path) -> str:
    out = work / "still.json"
    if dexdata(["score-images", str(SHARED / "hand3d_gt"), "--json", str(out)]) != 0:
        raise SystemExit("score-images failed")
    r = json.loads(out.read_text())
    lines = [f"Estimator `{r['estimator']}`, each image with its true K.", "",
             "| dataset | images | GT hands | detected % | side ok % | 2D px | est 3D→2D px | MPJPE mm | "
             "root-aligned mm | PA-MPJPE mm | wrist depth err % (bias %) |", "|---" * 11 + "|"]
    for name, f in r["datasets"].items():
        lines.append(f"| {name} | {f['images']} | {f['gt_hands_in_view']} | {pct(f['detection'])} | "
                     f"{pct(f['side_correct'])} | {f1(f['kp2d_px'])} | {f1(f['est_reprojection_px'])} | "
                     f"{f1(f['mpjpe_cam_mm'])} | {f1(f['mpjpe_root_mm'])} | {f1(f['pa_mpjpe_mm'])} | "
                     f"{f1(f['wrist_depth_error_pct'])} ({f1(f['wrist_depth_bias_pct'])}) |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- rendered VO scenes


def vo_table() -> str:
    import cv2
    from vo_scenes import (
        general_motion,
        load_rgb,
        render_planes,
        rotation_sequence,
        smooth_rotations,
        textured_planes,
        view_K,
    )

    from dexhands_data.camera.vo import VisualOdometry
    from dexhands_data.geometry import Intrinsics

    photos = SHARED / "hand_images"
    R = smooth_rotations(120)
    frames, K = rotation_sequence(load_rgb(photos / "hamer_test3.jpg"), R, size=(640, 480), f=520.0)
    T_rot = np.tile(np.eye(4), (len(R), 1, 1))
    T_rot[:, :3, :3] = R
    names = ("hamer_test3.jpg", "hamer_test1.jpg", "hamer_test2.jpg", "mediapipe_hand_thumb_up.jpg")
    planes = textured_planes([load_rgb(photos / n) for n in names])
    K2 = view_K(640, 480, 500.0)
    T_gen = general_motion(120, 0.01)
    scenes = {"pure rotation (photo warped), 120 frames": (list(frames), K, T_rot),
              "general motion (textured planes), 120 frames":
                  ([render_planes(planes, T, K2) for T in T_gen], K2, T_gen)}
    cv2.setNumThreads(1)
    lines = ["| scene | valid | rotation err, stride 1 / 6 (deg) | at the end (deg) | "
             "direction err, stride 1 / 6 (deg) |", "|---" * 5 + "|"]
    for name, (imgs, Kmat, T_true) in scenes.items():
        session = VisualOdometry(background=False).session(Intrinsics.from_K(Kmat, 640, 480))
        for img in imgs:
            session.step(img, None, None)
        track = session.finish()
        rot, direc = [], []
        for s in STRIDES:
            rows = mm.stride_pairs(np.arange(len(imgs)), s)
            c = cm.camera_samples(track.T_world_cam, T_true, track.valid, *rows)
            rot.append(f1(finite_median(c.rotation_deg), 3))
            undefined = int(np.isnan(c.direction_deg).sum())  # t_est = 0 (rotation-only frames)
            note = f" ({undefined} pairs t_est = 0)" if undefined else ""
            direc.append(f1(finite_median(c.direction_deg), 2) + note)
        end, _ = cm.end_rotation_error_deg(track.T_world_cam, T_true, track.valid)
        lines.append(f"| {name} | {100 * track.valid.mean():.0f} % | {' / '.join(rot)} | {end:.3f} | "
                     f"{' / '.join(direc)} |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- speed


def _tiled(ep, reps: int):
    e = copy.copy(ep)
    for name in ("keypoints_cam", "keypoints_2d", "hand_valid", "T_world_cam", "camera_valid"):
        setattr(e, name, np.concatenate([getattr(ep, name)] * reps))
    e.source_frame_index = np.arange(len(ep) * reps)
    return e


def speed(est_root: Path, gt_root: Path, min_frames: int = 100_000) -> tuple[int, float]:
    est = {recording_key(e.source_path): e for e in read_scored_episodes(est_root).values()}
    gt = {recording_key(e.source_path): e for e in read_scored_episodes(gt_root).values()}
    key = sorted(set(est) & set(gt))[0]
    gt_key = gt[key]
    rows = np.searchsorted(gt_key.source_frame_index, est[key].source_frame_index)
    reps = -(-min_frames // len(rows))
    e, g = _tiled(est[key], reps), _tiled(gt_key.subset(rows), reps)
    best = np.inf
    for _ in range(3):
        t0 = time.process_time()
        score_episode(e, g, STRIDES)
        best = min(best, time.process_time() - t0)
    return len(e), len(e) / best


# ----------------------------------------------------------------------------- PNG


def tracks_png(est_root: Path, gt_root: Path, key: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    est = next(e for e in read_scored_episodes(est_root).values() if recording_key(e.source_path) == key)
    gt = next(e for e in read_scored_episodes(gt_root).values() if recording_key(e.source_path) == key)
    rows = np.searchsorted(gt.source_frame_index, est.source_frame_index)
    t = est.source_frame_index / 30.0
    fig, axes = plt.subplots(2, 2, figsize=(10, 5.5), sharex=True)
    for slot, side in enumerate(("left", "right")):
        for r, (axis, label) in enumerate(((2, "wrist depth z (m)"), (0, "wrist lateral x (m)"))):
            ax = axes[r, slot]
            ax.plot(t, gt.keypoints_cam[rows, slot, 0, axis], color="black", lw=1.5, label="ARKit (EgoDex)")
            ax.plot(t, est.keypoints_cam[:, slot, 0, axis], color="tab:orange", lw=1.0,
                    label="estimate (MediaPipe + lift)")
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
            if r == 0:
                ax.set_title(f"{side} hand")
            else:
                ax.set_xlabel("time (s)")
    axes[0, 0].legend(loc="best", fontsize=8)
    fig.suptitle(f"EgoDex {key}: wrist in the camera frame, estimate vs ARKit (gaps: hand not valid)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


# ----------------------------------------------------------------------------- docs


def write_section(label: str, body: str) -> None:
    begin, end = f"<!-- fidelity:{label} -->", f"<!-- /fidelity:{label} -->"
    text = DOC.read_text() if DOC.exists() else "# Fidelity\n"
    block = f"{begin}\n{body.strip()}\n{end}"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    DOC.write_text(text)


def machine() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs, Python "
            f"{platform.python_version()}; load average {load:.1f} at the start (shared machine)")


def commit() -> str:
    try:
        out = subprocess.check_output(["git", "-C", str(ROOT), "log", "-1", "--format=%h %s"], text=True)
        return out.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--label", default="before", help="section of docs/fidelity.md to write")
    ap.add_argument("--work", default=None, help="keep the datasets here (default: a temporary folder)")
    ap.add_argument("--png", default=str(ROOT / "docs" / "img" / "fidelity_tracks.png"))
    ap.add_argument("--png-recording", default="test/open_close/1")
    ap.add_argument("--no-doc", action="store_true",
                    help="print the section instead of writing docs/fidelity.md")
    args = ap.parse_args()
    head = f"Machine: {machine()}. Commit: `{commit()}`. Date: {datetime.date.today().isoformat()}."
    with tempfile.TemporaryDirectory(prefix="bench_fidelity_") as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        report, est, gt, extract_s = egodex_score(work)
        n, rate = speed(est, gt)
        tracks_png(est, gt, args.png_recording, Path(args.png))
        sections = [
            f"### {args.label}", "", head, "",
            f"**EgoDex, `extract --source videos` (true K) vs `extract --source egodex`** (extraction of the "
            f"two videos: {extract_s:.0f} s):", "", egodex_tables(report), "",
            "**Still images with calibrated 3D (`dexdata score-images shared/data/hand3d_gt`):**", "",
            still_table(work), "",
            "**Visual odometry on the rendered scenes of docs/camera.md (exact poses):**", "", vo_table(), "",
            f"**Scoring speed:** {rate:,.0f} frames/s on one core ({n:,} frames, strides {STRIDES}, "
            "no images; "
            "CPU time of `score_episode`, best of 3).", "",
            f"Tracks of `{args.png_recording}`: ![wrist tracks](img/{Path(args.png).name})",
        ]
    body = "\n".join(sections)
    if args.no_doc:
        print(body)
    else:
        write_section(args.label, body)
        print(body)
        print(f"\nwrote section {args.label!r} of {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
