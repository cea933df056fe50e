"""The camera-estimator protocol (streaming).

For each episode the pipeline opens a session with the intrinsics and steps it with every stored
frame (RGB uint8, as a person sees it) and that frame's 2D hand keypoints (2, 21, 2) px plus
validity (2,), which the estimator uses to mask hands out of feature tracking. ``finish()``
returns a :class:`CameraTrack` with ``T_world_cam`` per frame, the first frame's camera being the
world, and per-frame validity.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from ..geometry import Intrinsics
from ..records import CameraTrack


class CameraSession(Protocol):
    def step(self, image: np.ndarray, hand_keypoints_2d: np.ndarray, hand_valid: np.ndarray) -> None: ...

    def finish(self) -> CameraTrack: ...


class CameraEstimator(Protocol):
    name: str
    version: str

    def config(self) -> dict: ...

    def session(self, intrinsics: Intrinsics) -> CameraSession: ...
