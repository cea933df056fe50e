"""dexhands-data: data preparation and dataset package for dexterous world models (DexWM)."""

__version__ = "0.1.0"

from .loader.hf import load  # noqa: E402  (datasets.load_dataset of a folder or Hub repo, no stale caches)

__all__ = ["__version__", "load"]
