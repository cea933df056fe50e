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
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..schema import EPISODES_PATH, STATS_PATH

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class DatasetLocation:
    """Where a dataset lives: a local folder (``path``) or a Hub dataset repo (``repo_id``)."""

    path: Path | None = None
    repo_id: str | None = None
    revision: str | None = None

    @property
    def is_local(self) -> bool:
        return self.path is not None

    def __str__(self) -> str:
        return str(self.path) if self.path is not None else f"hf://datasets/{self.repo_id}"


def resolve(path_or_repo: str | os.PathLike, revision: str | None = None) -> DatasetLocation:
    """Decide whether ``path_or_repo`` is a local dataset folder or a Hub repo id.

    Raises ``FileNotFoundError`` for a path-like argument whose folder does not exist (instead of
    letting ``datasets`` fall back to the Hub or to a cached copy of a same-named dataset).
    """
    text = os.fspath(path_or_repo)
    path = Path(text).expanduser()
    if path.is_dir():
        return DatasetLocation(path=path.resolve())
    if path.exists():
        raise NotADirectoryError(f"{text}: not a dataset folder")
    pathlike = isinstance(path_or_repo, os.PathLike) or text.startswith((".", "/", "~"))
    if pathlike or not _REPO_ID.match(text):
        raise FileNotFoundError(
            f"{text}: no such dataset folder (relative to {Path.cwd()}); for a Hub dataset pass 'org/name'"
        )
    return DatasetLocation(repo_id=text, revision=revision)


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


def meta_file(path_or_repo: str | os.PathLike, relpath: str, revision: str | None = None) -> Path:
    """Local path of a metadata file (``meta/...``) of the dataset, downloading it for a Hub repo."""
    loc = resolve(path_or_repo, revision)
    if loc.is_local:
        path = loc.path / relpath
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing (is the dataset finalised?)")
        return path
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(loc.repo_id, relpath, repo_type="dataset", revision=loc.revision))


def load_episodes(path_or_repo: str | os.PathLike, revision: str | None = None) -> pa.Table:
    """``meta/episodes.parquet`` as an Arrow table."""
    return pq.read_table(meta_file(path_or_repo, EPISODES_PATH, revision))


def load_stats(path_or_repo: str | os.PathLike, revision: str | None = None) -> dict:
    """``meta/stats.json``: per-dimension statistics keyed e.g. ``action/relative``."""
    return json.loads(meta_file(path_or_repo, STATS_PATH, revision).read_text())


def read_episode(path_or_repo: str | os.PathLike, episode_id: str, revision: str | None = None):
    """:class:`~dexhands_data.loader.episodes.EpisodeArrays` of one episode, read from its shard's row
    range (numeric columns + images) without loading the rest of the dataset."""
    from ..records import EpisodeError
    from .episodes import EpisodeArrays, EpisodeMeta

    episodes = load_episodes(path_or_repo, revision)
    rows = [r for r in episodes.to_pylist() if r["episode_id"] == episode_id]
    if not rows:
        raise EpisodeError(f"{path_or_repo}: no episode {episode_id!r} in {EPISODES_PATH}")
    row = rows[0]
    if row["status"] != "ok":
        raise EpisodeError(f"{path_or_repo}: episode {episode_id!r} failed: {row['error']}")
    shard = meta_file(path_or_repo, row["shard"], revision)
    table = read_rows(shard, row["row_start"], row["row_end"])
    if table.num_rows == 0 or table.column("episode_id")[0].as_py() != episode_id:
        rows_text = f"{row['row_start']}:{row['row_end']}"
        raise EpisodeError(f"{shard}: rows {rows_text} are not episode {episode_id!r}")
    return EpisodeArrays.from_table(table, EpisodeMeta.from_row(row))


def read_rows(shard: Path, start: int, end: int) -> pa.Table:
    """Rows [start, end) of a Parquet shard, reading only the row groups that hold them."""
    pf = pq.ParquetFile(shard)
    groups, first, offset = [], None, 0
    for g in range(pf.metadata.num_row_groups):
        n = pf.metadata.row_group(g).num_rows
        if offset < end and offset + n > start:
            groups.append(g)
            first = offset if first is None else first
        offset += n
    if not groups:
        return pf.schema_arrow.empty_table()
    return pf.read_row_groups(groups).slice(start - first, end - start)
