"""Camera-motion estimators by name.

* ``vo``: :class:`~.vo.VisualOdometry` (default for ``videos`` and ``ego4d``).
* ``none``: no estimate; every frame's pose is identity flagged invalid.
* ``given`` is not an estimator: the pipeline passes the source's own ground-truth poses through.
* ``colmap``: :class:`~.colmap_backend.ColmapCamera` (pycolmap structure from motion over keyframes).
"""

from __future__ import annotations

import numpy as np

from ..geometry import Intrinsics
from ..records import CameraTrack
from .base import CameraEstimator


class NoCamera:
    """The ``none`` estimator: camera motion is not estimated (``camera_valid`` false everywhere)."""

    name = "none"
    version = "1.0"

    def config(self) -> dict:
        return {}

    def session(self, intrinsics: Intrinsics) -> "_NoCameraSession":
        return _NoCameraSession()


class _NoCameraSession:
    def __init__(self) -> None:
        self.n = 0

    def step(self, image: np.ndarray, hand_keypoints_2d: np.ndarray, hand_valid: np.ndarray) -> None:
        self.n += 1

    def finish(self) -> CameraTrack:
        return CameraTrack.not_estimated(self.n)


CAMERA_ESTIMATORS = ("vo", "colmap", "none")


def create_camera_estimator(name: str, **options) -> CameraEstimator:
    """The estimator registered as ``name``, built with ``options`` (e.g. VO config overrides)."""
    if name == "vo":
        from .vo import VisualOdometry

        return VisualOdometry(**options)
    if name == "none":
        if options:
            raise ValueError(f"camera estimator 'none' takes no options, got {sorted(options)}")
        return NoCamera()
    if name == "given":
        raise ValueError("camera 'given' is not an estimator: it passes the source's ground-truth poses "
                         "through (only sources with camera poses, e.g. egodex and aria, have them)")
    if name == "colmap":
        from .colmap_backend import ColmapCamera

        return ColmapCamera(**options)
    raise ValueError(f"unknown camera estimator {name!r}; known: {', '.join(CAMERA_ESTIMATORS)}")
