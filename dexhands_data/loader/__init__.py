"""The dataset loader: ``load`` (HF datasets, local folder or Hub) and DexWM windows for PyTorch.

``WindowDataset`` / ``StreamingWindowDataset`` / ``WindowConfig`` / ``SamplerConfig`` are imported
lazily (they pull in torch).
"""

from __future__ import annotations

from .hf import load, load_episodes, load_stats, resolve

_LAZY = {
    "WindowDataset": ".windows", "StreamingWindowDataset": ".windows", "WindowConfig": ".windows",
    "ActionNormalizer": ".windows", "SamplerConfig": ".sampling", "episode_split": ".sampling",
    "CropGeometry": ".crop", "heatmap_targets": ".heatmaps", "windows_from": ".windows",
}

__all__ = ["load", "load_episodes", "load_stats", "resolve", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
