"""Hand-estimator names -> classes, imported lazily (a backend's heavy imports happen only when chosen).

Registered:
- ``"mediapipe"``: :class:`~.mediapipe_backend.MediaPipeHands` (default; CPU; bundled models).
- ``"hamer"``: :class:`~.hamer_backend.HamerHands` (GPU; needs the user's HaMeR install, checkpoint
  and MANO model; raises ``HamerUnavailable`` naming what is missing).

Reserved name, for a backend that plugs in here by adding one line to ``ESTIMATORS``:
- ``"mediapipe_tasks"``: the MediaPipe Tasks ``HandLandmarker`` with a user-supplied
  ``hand_landmarker.task`` path (``model_path=...``). It only needs a :class:`.mediapipe_backend.HandDetector`
  built on ``mediapipe.tasks.python.vision.HandLandmarker`` (VIDEO running mode) passed as
  ``detector_factory`` to :class:`~.mediapipe_backend.MediaPipeHands`; handedness rule, lift and
  post-processing are shared.
"""

from __future__ import annotations

from typing import Any

from ..registry import LazyRegistry
from .base import HandEstimator

DEFAULT_ESTIMATOR = "mediapipe"

ESTIMATORS = LazyRegistry("hand estimator", {
    "mediapipe": "dexhands_data.hands.mediapipe_backend:MediaPipeHands",
    "hamer": "dexhands_data.hands.hamer_backend:HamerHands",
}, reserved={
    "mediapipe_tasks": "a MediaPipe Tasks backend (user-supplied hand_landmarker.task) "
                       "is not part of this build",
}, error=KeyError)


def register(name: str, target: str) -> None:
    """Register ``"package.module:ClassName"`` under ``name`` (replaces an earlier registration)."""
    ESTIMATORS.register(name, target)


def available() -> list[str]:
    """Names that :func:`create` accepts, sorted."""
    return ESTIMATORS.names()


def estimator_class(name: str) -> type:
    """The class registered under ``name`` (imports its module)."""
    return ESTIMATORS.load(name)


def create(name: str = DEFAULT_ESTIMATOR, **kwargs: Any) -> HandEstimator:
    """Build the estimator ``name`` with its keyword arguments."""
    return ESTIMATORS.create(name, **kwargs)
