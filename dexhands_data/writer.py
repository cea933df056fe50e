"""Shard writer: Parquet shards, per-shard commit markers, and the dataset's ``meta/`` files.

Layout (``schema.py`` holds the path templates)::

    <root>/data/<source>/<split>/<shard>.parquet   frame rows sorted by (episode_id, frame_index)
    <root>/meta/shards/<source>/<split>/<shard>.json   commit marker: episode rows + shard statistics
    <root>/meta/episodes.parquet, meta/stats.json, meta/info.json, README.md   (written by finalize)

Every file is written to a hidden temporary name in its folder and renamed into place, so a crash
never leaves a partial file under a name that ``load_dataset`` globs. A shard counts as finished
only when its marker exists; the marker is written after the Parquet file is in place.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .assemble import episode_row, failed_episode_row, frame_columns, frame_table
from .records import EpisodeData, EpisodeError, EpisodeRef
from .schema import EPISODES_PATH, SHARD_MARKERS_DIR, SHARD_PATH, STATS_PATH, arrow_schema, fixed_list_to_numpy
from .stats import DimStats

ROW_GROUP_SIZE = 512


@dataclass
class FailedEpisode:
    ref: EpisodeRef
    error: str


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a hidden temporary file next to ``path``, fsync it, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def table_stats(table: pa.Table) -> dict[str, DimStats]:
    """Per-dimension statistics of frame rows: the stored ``relative`` actions (132) and keypoints_cam (126)."""
    actions = fixed_list_to_numpy(table.column("action"), (44, 3)).reshape(len(table), -1)
    keypoints = fixed_list_to_numpy(table.column("keypoints_cam"), (2, 21, 3)).reshape(len(table), -1)
    return {"action/relative": DimStats.from_values(actions), "keypoints_cam": DimStats.from_values(keypoints)}


class DatasetWriter:
    """Writes shards of one dataset folder and finalises its metadata."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    # ------------------------------------------------------------------ shards
    def shard_relpath(self, source: str, split: str, name: str) -> str:
        return SHARD_PATH.format(source=source, split=split, name=name)

    def marker_path(self, source: str, split: str, name: str) -> Path:
        return self.root / SHARD_MARKERS_DIR / source / split / f"{name}.json"

    def read_marker(self, source: str, split: str, name: str) -> dict | None:
        path = self.marker_path(source, split, name)
        return json.loads(path.read_text()) if path.exists() else None

    def write_shard(
        self,
        source: str,
        split: str,
        name: str,
        results: list[EpisodeData | FailedEpisode],
        config_hash: str,
    ) -> list[dict]:
        """Write the finished episodes of one shard and its marker; returns the episode rows.

        Rows are streamed to Parquet in row groups, so long episodes (with images spooled on
        disk) never sit in memory as one table. An episode whose data breaks the contract (shape,
        NaN under a valid flag, non-monotonic time) becomes a failed episode with the reason.
        """
        rows: list[dict] = []
        ready: list[tuple[EpisodeData, dict, dict]] = []
        for res in results:
            if isinstance(res, FailedEpisode):
                rows.append(failed_episode_row(res.ref, res.error, config_hash))
                continue
            try:
                ready.append((res, frame_columns(res), episode_row(res, config_hash)))
            except EpisodeError as exc:
                rows.append(failed_episode_row(res.ref, str(exc), config_hash))
        ready.sort(key=lambda t: t[0].ref.episode_id)
        relpath = self.shard_relpath(source, split, name)
        stats: dict[str, DimStats] = {}
        num_rows = 0
        if ready:
            path = self.root / relpath
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
            with pq.ParquetWriter(tmp, arrow_schema(), compression="zstd") as sink:
                for ep, columns, row in ready:
                    row.update(shard=relpath, row_start=num_rows, row_end=num_rows + len(ep))
                    rows.append(row)
                    for start in range(0, len(ep), ROW_GROUP_SIZE):
                        table = frame_table(ep, columns, start, min(len(ep), start + ROW_GROUP_SIZE))
                        sink.write_table(table)
                        for key, value in table_stats(table).items():
                            stats[key] = value if key not in stats else stats[key].merge(value)
                    num_rows += len(ep)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
        rows.sort(key=lambda r: r["episode_id"])
        marker = {"shard": relpath if ready else None, "num_rows": num_rows, "episodes": rows,
                  "stats": {k: v.to_dict() for k, v in stats.items()} or None}
        atomic_write_text(self.marker_path(source, split, name), json.dumps(marker, sort_keys=True))
        return rows

    def markers(self) -> list[dict]:
        base = self.root / SHARD_MARKERS_DIR
        return [json.loads(p.read_text()) for p in sorted(base.rglob("*.json"))] if base.is_dir() else []

    # ------------------------------------------------------------------ metadata
    def finalize(self, recipes: dict | None = None) -> dict:
        """Merge all shard markers into ``meta/episodes.parquet``, ``meta/stats.json``,
        ``meta/info.json`` and the dataset card; returns the info dict. ``recipes`` maps a source
        name to the settings of the run that wrote it."""
        from .card import write_card
        from .info_json import build_info

        markers = self.markers()
        rows = sorted((r for m in markers for r in m["episodes"]), key=lambda r: r["episode_id"])
        ids = [r["episode_id"] for r in rows]
        if len(ids) != len(set(ids)):
            dup = sorted({i for i in ids if ids.count(i) > 1})[:5]
            raise RuntimeError(f"{self.root}: episode ids appear in more than one shard: {dup}")
        episodes = pa.Table.from_pylist(rows, schema=arrow_schema("episode"))
        sink = pa.BufferOutputStream()
        pq.write_table(episodes, sink, compression="zstd")
        atomic_write_bytes(self.root / EPISODES_PATH, sink.getvalue().to_pybytes())

        merged: dict[str, DimStats] = {}
        for m in markers:
            for key, d in (m.get("stats") or {}).items():
                shard = DimStats.from_dict(d)
                merged[key] = shard if key not in merged else merged[key].merge(shard)
        atomic_write_text(self.root / STATS_PATH, json.dumps({k: v.to_dict() for k, v in sorted(merged.items())}, indent=1))

        info_path = self.root / "meta" / "info.json"
        previous = json.loads(info_path.read_text()) if info_path.exists() else None
        info = build_info(rows, recipes or {}, previous)
        atomic_write_text(info_path, json.dumps(info, indent=2, sort_keys=True))
        write_card(self.root, info)
        return info

