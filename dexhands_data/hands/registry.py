"""Hand-estimator names -> classes, imported lazily (a backend's heavy imports happen only when chosen).

Registered:
- ``"mediapipe"``: :class:`~.mediapipe_backend.MediaPipeHands` (default; CPU; bundled models).
- ``"hamer"``: :class:`~.hamer_backend.HamerHands` (GPU; needs the user's HaMeR install, checkpoint
  and MANO model; raises ``HamerUnavailable`` naming what is missing).

Reserved name, for a backend that plugs in here by adding one line to ``_BUILTIN``:
- ``"mediapipe_tasks"``: the MediaPipe Tasks ``HandLandmarker`` with a user-supplied
  ``hand_landmarker.task`` path (``model_path=...``). It only needs a :class:`.mediapipe_backend.HandDetector`
  built on ``mediapipe.tasks.python.vision.HandLandmarker`` (VIDEO running mode) passed as
  ``detector_factory`` to :class:`~.mediapipe_backend.MediaPipeHands`; handedness rule, lift and
  post-processing are shared.
"""

from __future__ import annotations

import importlib
from typing import Any

from .base import HandEstimator

DEFAULT_ESTIMATOR = "mediapipe"

_BUILTIN: dict[str, str] = {
    "mediapipe": "dexhands_data.hands.mediapipe_backend:MediaPipeHands",
    "hamer": "dexhands_data.hands.hamer_backend:HamerHands",
}
_RESERVED: dict[str, str] = {
    "mediapipe_tasks": "a MediaPipe Tasks backend (user-supplied hand_landmarker.task) "
                       "is not part of this build",
}
_registry: dict[str, str] = dict(_BUILTIN)


def register(name: str, target: str) -> None:
    """Register ``"package.module:ClassName"`` under ``name`` (replaces an earlier registration)."""
    if ":" not in target:
        raise ValueError(f"target must look like 'package.module:Class', got {target!r}")
    _registry[name] = target


def available() -> list[str]:
    """Names that :func:`create` accepts, sorted."""
    return sorted(_registry)


def estimator_class(name: str) -> type:
    """The class registered under ``name`` (imports its module)."""
    if name not in _registry:
        hint = _RESERVED.get(name, f"known: {', '.join(available())}")
        raise KeyError(f"unknown hand estimator {name!r} ({hint})")
    module_name, _, cls_name = _registry[name].partition(":")
    return getattr(importlib.import_module(module_name), cls_name)


def create(name: str = DEFAULT_ESTIMATOR, **kwargs: Any) -> HandEstimator:
    """Build the estimator ``name`` with its keyword arguments."""
    return estimator_class(name)(**kwargs)
