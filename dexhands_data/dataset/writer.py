"""Shard writer: Parquet shards, per-shard commit markers, and the dataset's ``meta/`` files.

Layout (``schema.py`` holds the path templates)::

    <root>/data/<source>/<split>/<shard>.parquet   frame rows sorted by (episode_id, frame_index)
    <root>/meta/shards/<source>/<split>/<shard>.json   commit marker: episode rows + shard statistics
    <root>/meta/episodes.parquet, meta/stats.json, meta/info.json, README.md   (written by finalize)

The root is a local folder or a pyarrow filesystem URI (``s3://``, ``gs://``; see ``storage.py``).
Every file is written to a hidden temporary name and moved into place, so a crash never leaves a
partial file under a name that ``load_dataset`` globs. A shard counts as finished only when its
marker exists; the marker is written after the Parquet file is in place.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from ..records import EpisodeData, EpisodeError, EpisodeRef
from ..schema import EPISODES_PATH, INFO_PATH, SHARD_MARKERS_DIR, SHARD_PATH, STATS_PATH, arrow_schema
from .action_stats import episode_stats
from .rows import episode_row, failed_episode_row, frame_columns, frame_table
from .stats import DimStats
from .storage import Storage

ROW_GROUP_SIZE = 512


@dataclass
class FailedEpisode:
    ref: EpisodeRef
    error: str


class DatasetWriter:
    """Writes shards of one dataset folder and finalises its metadata."""

    def __init__(self, root: str | os.PathLike):
        self.storage = Storage(root)

    # ------------------------------------------------------------------ shards
    def shard_relpath(self, source: str, split: str, name: str) -> str:
        return SHARD_PATH.format(source=source, split=split, name=name)

    def marker_relpath(self, source: str, split: str, name: str) -> str:
        return f"{SHARD_MARKERS_DIR}/{source}/{split}/{name}.json"

    def read_marker(self, source: str, split: str, name: str) -> dict | None:
        relpath = self.marker_relpath(source, split, name)
        return json.loads(self.storage.read_bytes(relpath)) if self.storage.exists(relpath) else None

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
            with self.storage.open_atomic(relpath) as stream, \
                    pq.ParquetWriter(stream, arrow_schema(), compression="zstd") as sink:
                for ep, columns, row in ready:
                    row.update(shard=relpath, row_start=num_rows, row_end=num_rows + len(ep))
                    rows.append(row)
                    for start in range(0, len(ep), ROW_GROUP_SIZE):
                        sink.write_table(frame_table(ep, columns, start, min(len(ep), start + ROW_GROUP_SIZE)))
                    num_rows += len(ep)
                    metric = bool(ep.camera.translation_metric)
                    for key, value in episode_stats(columns, ep.T_opencv_source, metric).items():
                        stats[key] = value if key not in stats else stats[key].merge(value)
        elif self.storage.exists(relpath):  # a retry in which every episode failed: drop the old shard
            self.storage.delete(relpath)
        rows.sort(key=lambda r: r["episode_id"])
        marker = {"shard": relpath if ready else None, "num_rows": num_rows, "episodes": rows,
                  "stats": {k: v.to_dict() for k, v in stats.items()} or None}
        self.storage.write_text(self.marker_relpath(source, split, name), json.dumps(marker, sort_keys=True))
        return rows

    def markers(self) -> list[dict]:
        return [json.loads(self.storage.read_bytes(p)) for p in self.storage.list_files(SHARD_MARKERS_DIR, ".json")]

    # ------------------------------------------------------------------ metadata
    def finalize(self, recipes: dict | None = None) -> dict:
        """Merge all shard markers into ``meta/episodes.parquet``, ``meta/stats.json``,
        ``meta/info.json`` and the dataset card; returns the info dict. ``recipes`` maps a source
        name to the settings of the run that wrote it."""
        from .card import card_text
        from .meta_info import build_info

        markers = self.markers()
        rows = sorted((r for m in markers for r in m["episodes"]), key=lambda r: r["episode_id"])
        ids = [r["episode_id"] for r in rows]
        if len(ids) != len(set(ids)):
            dup = sorted({i for i in ids if ids.count(i) > 1})[:5]
            raise RuntimeError(f"{self.storage.uri}: episode ids appear in more than one shard: {dup}")
        episodes = pa.Table.from_pylist(rows, schema=arrow_schema("episode"))
        with self.storage.open_atomic(EPISODES_PATH) as stream:
            pq.write_table(episodes, stream, compression="zstd")

        merged: dict[str, DimStats] = {}
        for m in markers:
            for key, d in (m.get("stats") or {}).items():
                shard = DimStats.from_dict(d)
                merged[key] = shard if key not in merged else merged[key].merge(shard)
        self.storage.write_text(STATS_PATH, json.dumps({k: v.to_dict() for k, v in sorted(merged.items())}, indent=1))

        previous = json.loads(self.storage.read_bytes(INFO_PATH)) if self.storage.exists(INFO_PATH) else None
        shard_bytes = {m["shard"]: self.storage.size(m["shard"]) for m in markers if m["shard"]}
        info = build_info(rows, recipes or {}, previous, shard_bytes)
        self.storage.write_text(INFO_PATH, json.dumps(info, indent=2, sort_keys=True))
        self.storage.write_text("README.md", card_text(info))
        return info

