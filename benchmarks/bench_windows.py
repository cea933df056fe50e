"""DexWM windows per second per core: from embedded JPEG frames (our loader) versus decoding the
source video as the released code does (random access into 1080p H.264, per window).

    .venv/bin/python benchmarks/bench_windows.py [--video PATH] [--windows 200] [--out /tmp/bench]

Both paths build the same window: 9 frames resized + centre-cropped to 224x392 and
ImageNet-normalised, 8 dexwm-official actions, and the 12 HC keypoints projected into the crop
(heatmap *maps* are built on the GPU by the trainer in our design; the released loader also draws
8x12 maps of 224x392 on the CPU, which the baseline here does NOT do, so the baseline is generous).
One thread each (torch and OpenCV), so the numbers are per core.

Baseline decode strategy (the best case of a seeking decoder like decord): for the window's sorted
frame indices, seek to the keyframe at or before the first one and decode forward, seeking again
only when the next wanted frame lies beyond the next keyframe.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import av
import cv2
import numpy as np
import torch

from dexhands_data.actions import compute_actions
from dexhands_data.geometry import Intrinsics, matrix_from_rotvec, project, se3
from dexhands_data.images import encode_jpeg
from dexhands_data.loader.crop import CropGeometry, project_hc_keypoints
from dexhands_data.loader.hf import load, load_episodes
from dexhands_data.loader.normalize import normalize_frames
from dexhands_data.loader.sampling import SamplerConfig, window_indices
from dexhands_data.loader.windows import WindowConfig, WindowDataset
from dexhands_data.records import CameraTrack, EpisodeData, EpisodeRef, HandTrack
from dexhands_data.dataset.writer import DatasetWriter

SHARED = Path(os.environ.get("DEXDATA_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
# 1920x1080 H.264 (non-commercial, read only), else 1280x720 H.264 (Apache-2.0)
DEFAULT_VIDEOS = [SHARED / "egocentric_video_nc/hawor_example_video_0.mp4",
                  SHARED / "hand_video/mediapipe_gesture_recognizer_test_video.mp4"]  # 1280x720 H.264


def decode_all(path: Path) -> tuple[list[np.ndarray], float]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(s)]
        return frames, float(s.average_rate)


def synthetic_state(n: int, K: Intrinsics, seed: int = 0):
    """Both hands drifting ~0.45 m in front of a moving camera (numbers only matter for cost)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)[:, None, None, None]
    centres = np.array([[-0.12, 0.08, 0.45], [0.12, 0.08, 0.45]])[None, :, None, :]
    kp = rng.normal(0, 0.04, (1, 2, 21, 3)) + centres
    kp = kp + 0.02 * np.sin(t / 9.0)
    i = np.arange(n)
    rot = matrix_from_rotvec(np.stack([0.3 * np.sin(i / 17), 0.5 * np.sin(i / 23), 0 * i], 1))
    T = se3(rot, np.stack([0.01 * np.arange(n), 1.2 + 0 * np.arange(n), 0 * np.arange(n)], 1))
    kp2d = project(kp, K.K).astype(np.float32)
    return kp.astype(np.float32), np.ones((n, 2), bool), T, np.ones(n, bool), kp2d


def build_dataset(root: Path, video: Path, frames: list[np.ndarray], fps: float) -> EpisodeData:
    h, w = frames[0].shape[:2]
    K = Intrinsics(736.6339 * w / 1920, 736.6339 * w / 1920, w / 2, h / 2, w, h)
    kp, hv, T, cv, kp2d = synthetic_state(len(frames), K)
    n = len(frames)
    hands = HandTrack(kp, kp2d, hv, np.ones((n, 2, 21), np.float32), np.ones((n, 2), np.float32),
                      np.full((n, 2), np.nan, np.float32), "ground_truth:bench")
    ep = EpisodeData(EpisodeRef("bench-0", "egodex", str(video), video.name), "human", np.arange(n) / fps,
                     np.arange(n), K, fps, hands,
                     CameraTrack(T, cv, True, False, "bench", "ground_truth:bench"),
                     images=[encode_jpeg(f) for f in frames])
    writer = DatasetWriter(root)
    writer.write_shard("egodex", "train", "s0", [ep], "bench")
    writer.finalize()
    return ep


class SeekingDecoder:
    """Random access into an H.264 file: seek to the keyframe before the frame, decode forward."""

    def __init__(self, path: Path):
        self.container = av.open(str(path))
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "NONE"
        tb, rate = self.stream.time_base, self.stream.average_rate
        self.pts_per_frame = int(round(1 / (tb * rate)))
        self.keyframes = []
        for pkt in self.container.demux(self.stream):
            if pkt.size and pkt.is_keyframe:
                self.keyframes.append(int(round(pkt.pts / self.pts_per_frame)))
        self.container.seek(0, stream=self.stream)

    def frames(self, indices: np.ndarray) -> list[np.ndarray]:
        out: dict[int, np.ndarray] = {}
        wanted = sorted(set(int(i) for i in indices))
        it = None
        current = -1
        for target in wanted:
            key = max(k for k in self.keyframes if k <= target)
            if it is None or key > current:  # the next wanted frame lies beyond a keyframe: seek
                self.container.seek(key * self.pts_per_frame, stream=self.stream, backward=True,
                                    any_frame=False)
                it = self.container.decode(self.stream)
            for frame in it:
                current = int(round(frame.pts / self.pts_per_frame))
                if current == target:
                    out[target] = frame.to_ndarray(format="rgb24")
                    break
        return [out[int(i)] for i in indices]


def released_style_window(dec: SeekingDecoder, ep: EpisodeData, idx: np.ndarray, geom: CropGeometry) -> dict:
    imgs = dec.frames(idx)
    crops = [geom.crop_image(img) for img in imgs]  # cv2 INTER_LINEAR resize of the 1080p frame + crop
    frames = normalize_frames(np.stack(crops))
    actions = compute_actions("dexwm-official", ep.hands.keypoints_cam, ep.hands.valid, ep.camera.T_world_cam,
                              ep.camera.valid, idx)
    uv, vis = project_hc_keypoints(ep.hands.keypoints_cam[idx], ep.hands.valid[idx], ep.intrinsics.K, geom)
    actions = torch.from_numpy(actions.reshape(len(idx) - 1, -1))
    return {"frames": frames, "actions": actions, "hc": uv, "vis": vis}


def rate(fn, count: int) -> tuple[float, float]:
    """(windows per wall-clock second, windows per CPU second of this process). On a shared machine
    the CPU-time rate is the per-core figure; the wall rate includes time lost to other processes."""
    fn(0)
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(count):
        fn(i)
    return count / (time.perf_counter() - wall), count / (time.process_time() - cpu)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", type=Path, default=None)
    parser.add_argument("--windows", type=int, default=200)
    parser.add_argument("--out", type=Path, default=None, help="dataset folder (default: a temporary one)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    video = args.video or next(p for p in DEFAULT_VIDEOS if p.exists())
    frames, fps = decode_all(video)
    tmp = tempfile.TemporaryDirectory()
    root = (args.out or Path(tmp.name)) / "dexwm-actions"
    ep = build_dataset(root, video, frames, fps)
    h, w = frames[0].shape[:2]
    del frames
    ds = load(root, split="train", cache_dir=str(Path(tmp.name) / "cache"))
    episodes = load_episodes(root)
    sampler = SamplerConfig(mode="dexwm")
    print(f"video {video.name}: {w}x{h}, {len(ep)} frames at {fps:g} fps; "
          f"{args.windows} windows per measurement; "
          f"1 thread; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus")
    results = {}
    for frames_mode in ("float32", "uint8"):
        cfg = WindowConfig(sampler=sampler, convention="dexwm-official", frames=frames_mode, seed=0)
        wd = WindowDataset(ds, episodes, cfg)
        results[f"jpeg ({frames_mode} frames)"] = rate(lambda i: wd[i % len(wd)], args.windows)
    dec = SeekingDecoder(video)
    geom = CropGeometry.for_source(w, h)
    count = max(10, args.windows // 10)

    def baseline(i):
        idx = window_indices(sampler, len(ep), fps, "bench-0", i % 10, seed=0, epoch=i // 10)
        return released_style_window(dec, ep, idx, geom)

    results["source video (seek + decode, released style)"] = rate(baseline, count)
    base = results["source video (seek + decode, released style)"][1]
    for name, (wall, cpu) in results.items():
        print(f"  {name:46s} {cpu:7.1f} windows per CPU-second ({cpu / base:5.1f}x video)   "
              f"{wall:7.1f} per wall-second")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
