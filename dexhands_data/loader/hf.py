"""``load``: a ``dexwm-actions`` dataset from a local folder or a Hub repo, never a stale stand-in.

``datasets.load_dataset(name)`` resolves a bare name to ``./name`` if that folder exists, and
otherwise to the Hub, falling back silently to whatever it cached under that name earlier (see
``ecosystem.md`` a.6). ``load`` removes the ambiguity: an argument that looks like a path (exists,
starts with ``.``, ``/`` or ``~``, or has no ``org/`` part) is only ever loaded from that folder,
by its absolute path, and a missing folder is an error; only ``org/name`` that is not a local
folder goes to the Hub.

``datasets`` keys its Arrow cache of a local folder with YAML ``configs`` by the file *patterns* and
features only, so a folder rebuilt in place (same path, new shards) is silently served from the old
cache. ``load`` therefore gives every local folder a cache directory named by a fingerprint of its
files (relative path, size, mtime of the card and every Parquet shard) and removes the folder's
cache directories of older fingerprints.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from ..dataset.location import DatasetLocation, resolve
from ..dataset.reader import load_episodes, load_stats

__all__ = ["DatasetLocation", "content_fingerprint", "load", "load_episodes", "load_stats", "local_cache_dir",
           "resolve"]


def load(path_or_repo: str | os.PathLike, config: str | None = None, split: str | None = None,
         streaming: bool = False, revision: str | None = None, **kwargs):
    """``datasets.load_dataset`` of a dexwm-actions dataset folder or Hub repo.

    ``config``: ``None``/``"default"`` (all sources) or a source name (``droid``, ``egodex``, ...);
    ``split``: ``train``/``test``/... or None for a ``DatasetDict``; ``streaming`` gives an
    ``IterableDataset``. Extra keyword arguments go to ``load_dataset``.
    """
    import datasets

    loc = resolve(path_or_repo, revision)
    target = str(loc.path) if loc.is_local else loc.repo_id
    if loc.is_local:
        _check_local(loc.path, config)
        if not streaming:
            kwargs["cache_dir"] = str(local_cache_dir(loc.path, kwargs.get("cache_dir")))
    else:
        kwargs.setdefault("revision", revision)
    return datasets.load_dataset(target, name=config, split=split, streaming=streaming, **kwargs)


def content_fingerprint(root: Path, include_card: bool = True) -> str:
    """Hash of (relative path, size, mtime_ns) of every Parquet file under ``root`` (and the card)."""
    h = hashlib.sha256()
    files = sorted([*([root / "README.md"] if include_card else []), *root.rglob("*.parquet")])
    for f in files:
        if f.is_file() and not any(part.startswith(".") for part in f.relative_to(root).parts):
            st = f.stat()
            h.update(f"{f.relative_to(root).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def local_cache_dir(root: Path, cache_dir: str | os.PathLike | None = None) -> Path:
    """``<cache>/dexhands_local/<hash of the folder path>/<content fingerprint>``; removes stale siblings."""
    import datasets

    base = Path(cache_dir or datasets.config.HF_DATASETS_CACHE) / "dexhands_local"
    per_path = base / hashlib.sha256(str(root).encode()).hexdigest()[:16]
    current = per_path / content_fingerprint(root)
    if per_path.is_dir():
        for old in per_path.iterdir():
            if old != current and old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
    return current


def _check_local(root: Path, config: str | None) -> None:
    """A named config must exist in the folder's card (else ``datasets`` reports it less clearly)."""
    card = root / "README.md"
    if config not in (None, "default") and card.is_file():
        import yaml

        text = card.read_text()
        front = yaml.safe_load(text.split("---")[1]) if text.startswith("---") else {}
        names = [c.get("config_name") for c in (front or {}).get("configs", [])]
        if config not in names:
            raise ValueError(f"{card}: no config {config!r}; available: {', '.join(map(str, names))}")
