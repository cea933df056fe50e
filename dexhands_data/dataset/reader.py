"""The one reader of a written dataset (shards + ``meta/``), for the loader, ``viz``, ``compare-hands``
and ``info``.

An episode is found through ``meta/episodes.parquet`` (its shard and row range) and read from the row
groups of its shard that hold those rows, only the columns asked for. The root is a local dataset
folder, or a Hub repo id (``org/name``, not a local folder) whose files are downloaded one by one.
A file that is not there raises :class:`MissingFileError` naming it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..records import EpisodeError
from ..schema import EPISODES_PATH, STATS_PATH, column_specs
from .episodes import EpisodeMeta, StoredEpisode
from .location import is_hub_id, meta_file

#: Columns every read includes (they identify and order the rows).
KEY_COLUMNS = ("episode_id", "frame_index", "timestamp", "embodiment")


class MissingFileError(EpisodeError, FileNotFoundError):
    """A file of the dataset (``meta/episodes.parquet``, a shard, ...) is not there."""


def dataset_file(root: str | os.PathLike, relpath: str, revision: str | None = None) -> Path:
    """Local path of the file ``relpath`` of the dataset at ``root`` (downloaded for a Hub repo id)."""
    if is_hub_id(root):
        return meta_file(root, relpath, revision)
    path = Path(root).expanduser() / relpath
    if not path.is_file():
        raise MissingFileError(f"{path}: missing (not a dataset, or not finalised)")
    return path


def load_episodes(root: str | os.PathLike, revision: str | None = None) -> pa.Table:
    """``meta/episodes.parquet`` as an Arrow table."""
    return pq.read_table(dataset_file(root, EPISODES_PATH, revision))


def load_stats(root: str | os.PathLike, revision: str | None = None) -> dict:
    """``meta/stats.json``: per-dimension statistics keyed e.g. ``action/relative``."""
    return json.loads(dataset_file(root, STATS_PATH, revision).read_text())


def episode_rows(root: str | os.PathLike, revision: str | None = None) -> list[dict]:
    """Rows of ``meta/episodes.parquet`` (ok and failed), sorted by episode id as written."""
    return load_episodes(root, revision).to_pylist()


def _frame_columns(columns: Iterable[str] | None) -> list[str]:
    names = [c.name for c in column_specs("frame")]
    if columns is None:
        return names
    wanted = set(columns) | set(KEY_COLUMNS)
    unknown = sorted(wanted - set(names))
    if unknown:
        raise ValueError(f"no frame column(s) {unknown} in the contract")
    return [n for n in names if n in wanted]


def read_rows(shard: str | os.PathLike, start: int, end: int, columns: list[str] | None = None) -> pa.Table:
    """Rows [start, end) of a Parquet shard, reading only the row groups that hold them (and only
    ``columns``, all when None)."""
    pf = pq.ParquetFile(shard)
    groups, first, offset = [], None, 0
    for g in range(pf.metadata.num_row_groups if end > start else 0):
        n = pf.metadata.row_group(g).num_rows
        if offset < end and offset + n > start:
            groups.append(g)
            first = offset if first is None else first
        offset += n
    if not groups:
        schema = pf.schema_arrow
        return (schema if columns is None else pa.schema([schema.field(c) for c in columns])).empty_table()
    return pf.read_row_groups(groups, columns=columns).slice(start - first, end - start)


def episode_from_row(root: str | os.PathLike, row: dict, columns: Iterable[str] | None = None,
                     revision: str | None = None) -> StoredEpisode:
    """The episode of one row of ``meta/episodes.parquet`` (as :func:`episode_rows` returns it), read
    from its shard's row range: for callers that walk the episode table themselves, so that it is
    not re-read per episode. ``columns`` as for :func:`read_episode`."""
    columns = _frame_columns(columns)
    eid = row["episode_id"]
    if row["status"] != "ok":
        raise EpisodeError(f"{root}: episode {eid!r} failed: {row['error']}")
    shard = dataset_file(root, row["shard"], revision)
    try:
        table = read_rows(shard, row["row_start"], row["row_end"], columns)
    except (OSError, ValueError) as exc:
        raise EpisodeError(f"{shard}: cannot read shard ({exc})") from exc
    if table.num_rows != row["row_end"] - row["row_start"] or table.column("episode_id")[0].as_py() != eid:
        raise EpisodeError(f"{shard}: rows {row['row_start']}:{row['row_end']} are not episode {eid!r}")
    return StoredEpisode.from_table(table, EpisodeMeta.from_row(row))


def read_episode(root: str | os.PathLike, episode_id: str, columns: Iterable[str] | None = None,
                 revision: str | None = None) -> StoredEpisode:
    """One ``ok`` episode, read from its shard's row range without loading the rest of the dataset.

    ``columns``: frame columns to read (all when None; :data:`KEY_COLUMNS` always). Raises
    :class:`MissingFileError` or :class:`EpisodeError` (unknown id, failed episode, rows that are
    not the episode's) naming the file.
    """
    rows = [r for r in episode_rows(root, revision) if r["episode_id"] == episode_id]
    if not rows:
        raise EpisodeError(f"{root}: no episode {episode_id!r} in {EPISODES_PATH}")
    return episode_from_row(root, rows[0], columns, revision)


def iter_episodes(root: str | os.PathLike, columns: Iterable[str] | None = None,
                  episode_ids: Iterable[str] | None = None,
                  revision: str | None = None) -> Iterator[StoredEpisode]:
    """The ``ok`` episodes of a dataset (those in ``episode_ids`` when given), in episode-id order,
    each read as :func:`read_episode` reads it."""
    wanted = None if episode_ids is None else set(episode_ids)
    for row in episode_rows(root, revision):
        if row["status"] == "ok" and (wanted is None or row["episode_id"] in wanted):
            yield episode_from_row(root, row, columns, revision)


def read_shard(root: str | os.PathLike, relpath: str, columns: list[str]) -> tuple[pa.Table, int]:
    """``columns`` of a whole local shard, and how many of its frames embed an image (counted from the
    row groups' null statistics, so no JPEG bytes are read). Raises EpisodeError naming the shard."""
    path = dataset_file(root, relpath)
    try:
        pf = pq.ParquetFile(path)
        table = pf.read(columns=columns)
        embedded = pf.metadata.num_rows - _null_images(pf)
    except (OSError, ValueError) as exc:
        raise EpisodeError(f"{path}: unreadable shard ({exc})") from exc
    return table, embedded


def _null_images(pf: pq.ParquetFile) -> int:
    """Frames without an embedded image, from the row groups' statistics."""
    meta = pf.metadata
    names = [meta.schema.column(i).path for i in range(meta.num_columns)]
    col = names.index("image.bytes")
    total = 0
    for g in range(meta.num_row_groups):
        stats = meta.row_group(g).column(col).statistics
        if stats is None or not stats.has_null_count:
            return pf.read(columns=["image"]).column("image").null_count
        total += stats.null_count
    return total
