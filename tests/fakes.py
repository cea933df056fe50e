"""Test doubles and builders for OUR logic around real backends (never a stand-in for real results)."""

from __future__ import annotations

import numpy as np

from dexhands_data.geometry import Intrinsics, se3
from dexhands_data.records import CameraTrack, EpisodeData, EpisodeError, EpisodeRef, HandTrack


def synthetic_episode(episode_id: str, n: int = 12, source: str = "videos", split: str = "train",
                      seed: int = 0, images: list[bytes] | None = None) -> EpisodeData:
    """A small physically consistent episode: a right hand 40 cm in front of a camera that yaws."""
    rng = np.random.default_rng(seed)
    K = Intrinsics.from_fov(640, 480, 90.0)
    hands = HandTrack.empty(n, "synthetic")
    base = rng.normal(0, 0.03, (21, 3)) + [0.05, 0.02, 0.4]
    for i in range(n):
        hands.keypoints_cam[i, 1] = base + [0.002 * i, 0, 0]
    hands.valid[:, 1] = True
    hands.keypoints_2d[:, 1] = ((K.K @ hands.keypoints_cam[:, 1].reshape(-1, 3).T).T.reshape(n, 21, 3)[..., :2]
                                / hands.keypoints_cam[:, 1, :, 2:3])
    hands.confidence[:, 1] = 0.9
    hands.score[:, 1] = 0.95
    hands.lift_residual_px[:, 1] = 1.5
    yaw = np.deg2rad(2.0) * np.arange(n)
    R = np.stack([[[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]] for a in yaw])
    camera = CameraTrack(se3(R, np.c_[0.01 * np.arange(n), np.zeros(n), np.zeros(n)]), np.ones(n, bool),
                         False, False, "first_camera", "synthetic")
    ref = EpisodeRef(episode_id, source, f"/in/{episode_id}.mp4", f"{episode_id}.mp4", split)
    return EpisodeData(ref, "human", np.arange(n) / 30.0, np.arange(n), K, 30.0, hands, camera, images=images)


class FakeProcessor:
    """Processor double: builds synthetic episodes; ids containing 'bad' raise EpisodeError,
    ids containing 'crash' raise an unexpected exception, ids containing 'nan' break the contract."""

    def __init__(self, frames: int = 12):
        self.frames = frames

    def config(self) -> dict:
        return {"frames": self.frames}

    def __call__(self, ref: EpisodeRef) -> EpisodeData:
        if "bad" in ref.episode_id:
            raise EpisodeError(f"{ref.relpath}: cannot decode (test)")
        if "crash" in ref.episode_id:
            raise ZeroDivisionError("boom")
        ep = synthetic_episode(ref.episode_id, self.frames, ref.source, ref.split)
        ep.ref = ref
        if "nan" in ref.episode_id:
            ep.hands.keypoints_cam[3, 1, 5] = np.nan
        return ep


def refs(*ids: str, source: str = "videos", split: str = "train") -> list[EpisodeRef]:
    return [EpisodeRef(i, source, f"/in/{i}.mp4", f"{i}.mp4", split) for i in ids]
