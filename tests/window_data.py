"""Small dexwm-actions datasets for loader/window tests: synthetic hand + camera trajectories with
known geometry, real JPEG frames (a real 1280x720 video from ../shared/data/hand_video), written
with the project's own DatasetWriter."""

from __future__ import annotations

import functools
from pathlib import Path

import av
import numpy as np

from dexhands_data.geometry import Intrinsics, matrix_from_rotvec, project, se3
from dexhands_data.images import encode_jpeg
from dexhands_data.records import CameraTrack, EpisodeData, EpisodeRef, HandTrack
from dexhands_data.dataset.writer import DatasetWriter

EGODEX_K = Intrinsics(736.6339, 736.6339, 960.0, 540.0, 1920, 1080, "dataset")
VIDEO = "hand_video/mediapipe_gesture_recognizer_test_video.mp4"


@functools.lru_cache(maxsize=4)
def real_frames(shared_data: Path, count: int = 24) -> tuple[np.ndarray, ...]:
    """The first ``count`` RGB frames (720, 1280, 3) of a real hand video."""
    out = []
    with av.open(str(shared_data / VIDEO)) as container:
        for frame in container.decode(video=0):
            out.append(frame.to_ndarray(format="rgb24"))
            if len(out) == count:
                break
    return tuple(out)


def hand_shape(rng: np.random.Generator) -> np.ndarray:
    """A plausible 21-keypoint hand (m) around the wrist at the origin: 5 fingers fanned out in +y/-y."""
    pts = np.zeros((21, 3))
    for f in range(5):
        angle = np.deg2rad(-40 + 20 * f)
        direction = np.array([np.sin(angle), -np.cos(angle), 0.02 * f])
        for j in range(4):
            pts[1 + 4 * f + j] = direction * (0.03 + 0.022 * j) + rng.normal(0, 0.002, 3)
    return pts


def episode(
    episode_id: str, n: int = 40, source: str = "egodex", split: str = "train", seed: int = 0,
    intrinsics: Intrinsics = EGODEX_K, images: list[bytes] | None = None,
    missing: dict[int, list[int]] | None = None,
    camera_invalid: tuple[int, ...] = (), fps: float = 30.0, T_opencv_source: np.ndarray | None = None,
    embodiment: str = "human",
) -> EpisodeData:
    """Both hands ~0.45 m in front of a moving camera, drifting and opening; ``missing`` maps a hand
    (0 left, 1 right) to frames where it is absent."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    kp = np.zeros((n, 2, 21, 3))
    for h, x0 in enumerate((-0.12, 0.12)):
        shape = hand_shape(rng)
        wrist = np.stack([x0 + 0.04 * np.sin(t / 9 + h), 0.08 + 0.03 * np.cos(t / 11),
                          0.45 + 0.05 * np.sin(t / 13)], 1)
        open_ = 1.0 + 0.2 * np.sin(t / 7 + h)
        kp[:, h] = wrist[:, None, :] + shape[None] * open_[:, None, None]
    valid = np.ones((n, 2), bool)
    for h, frames in (missing or {}).items():
        valid[list(frames), h] = False
    kp[~valid] = np.nan
    rv = np.stack([0.3 * np.sin(t / 17), 0.5 * np.sin(t / 23) + 0.2, 0.2 * np.cos(t / 19)], 1)
    rot = matrix_from_rotvec(rv)
    trans = np.stack([0.5 + 0.01 * t, 1.2 + 0.02 * np.sin(t / 5), -0.3 + 0.005 * t], 1)
    T = se3(rot, trans)
    cam_valid = np.ones(n, bool)
    cam_valid[list(camera_invalid)] = False
    T[~cam_valid] = np.eye(4)
    kp2d = project(kp, intrinsics.K)
    hands = HandTrack(
        keypoints_cam=kp.astype(np.float32), keypoints_2d=kp2d.astype(np.float32), valid=valid,
        confidence=np.where(valid[..., None], 1.0, 0.0).astype(np.float32) * np.ones((n, 2, 21), np.float32),
        score=valid.astype(np.float32), lift_residual_px=np.full((n, 2), np.nan, np.float32),
        estimator="ground_truth:synthetic",
    )
    camera = CameraTrack(T, cam_valid, True, False, "synthetic world", "ground_truth:synthetic")
    ref = EpisodeRef(episode_id, source, f"/in/{episode_id}.mp4", f"{episode_id}.mp4", split)
    return EpisodeData(
        ref=ref, embodiment=embodiment, timestamps=t / fps, source_frame_index=t, intrinsics=intrinsics,
        fps=fps,
        hands=hands, camera=camera, images=images,
        T_opencv_source=np.eye(4) if T_opencv_source is None else T_opencv_source,
    )


def jpeg_frames(shared_data: Path, n: int, offset: int = 0) -> list[bytes]:
    frames = real_frames(shared_data)
    return [encode_jpeg(frames[(offset + i) % len(frames)]) for i in range(n)]


def build(root: Path, shards: dict[tuple[str, str, str], list[EpisodeData]]) -> Path:
    """Write ``{(source, split, shard name): episodes}`` with DatasetWriter and finalise."""
    writer = DatasetWriter(root)
    for (source, split, name), episodes in shards.items():
        writer.write_shard(source, split, name, episodes, "test-config")
    writer.finalize()
    return root
