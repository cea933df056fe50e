"""dexhands-data: data preparation and dataset package for dexterous world models (DexWM).

The front door stays light: ``import dexhands_data`` (or any submodule such as
``dexhands_data.geometry``) imports neither pyarrow.parquet nor ``datasets``; ``dexhands_data.load``
(``datasets.load_dataset`` of a folder or Hub repo, no stale caches) is imported on first use.
"""

from ._version import __version__

__all__ = ["__version__", "load"]


def __getattr__(name: str):
    if name == "load":
        from .loader.hf import load

        return load
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
