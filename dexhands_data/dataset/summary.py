"""``dexdata info``: what a dataset folder holds, per source, in a table a person reads in seconds.

Episode counts, failures (with the most frequent reasons) and hours come from
``meta/episodes.parquet``; frame-level fractions (a hand visible, both hands, camera pose known,
frames embedded) from the shards' small validity columns only; sizes from the files on disk.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..schema import fixed_list_to_numpy
from .reader import episode_rows, read_shard


@dataclass
class SourceSummary:
    source: str
    episodes: int = 0
    ok: int = 0
    failed: int = 0
    frames: int = 0
    hours: float = 0.0
    hand_visible: float = float("nan")  # fraction of frames with at least one valid hand
    both_hands: float = float("nan")
    camera_valid: float = float("nan")  # fraction of frames with a known camera pose
    images: float = float("nan")  # fraction of frames with an embedded JPEG
    disk_bytes: int = 0
    on_intrinsics_prior: int = 0  # ok episodes whose focal stayed a guess (fov_prior / default)
    splits: list[str] = field(default_factory=list)
    top_failures: list[tuple[str, int]] = field(default_factory=list)


@dataclass
class DatasetSummary:
    root: str
    sources: list[SourceSummary]
    disk_bytes: int  # every file under the root

    @property
    def total(self) -> SourceSummary:
        t = SourceSummary("all")
        for s in self.sources:
            for key in ("episodes", "ok", "failed", "frames", "hours", "disk_bytes", "on_intrinsics_prior"):
                setattr(t, key, getattr(t, key) + getattr(s, key))
        w = np.array([s.frames for s in self.sources], dtype=float)
        for key in ("hand_visible", "both_hands", "camera_valid", "images"):
            v = np.array([getattr(s, key) for s in self.sources], dtype=float)
            ok = np.isfinite(v) & (w > 0)
            setattr(t, key, float(np.sum(v[ok] * w[ok]) / np.sum(w[ok])) if ok.any() else float("nan"))
        t.splits = sorted({x for s in self.sources for x in s.splits})
        return t

    def to_dict(self) -> dict:
        return {"root": self.root, "disk_bytes": self.disk_bytes,
                "sources": [asdict(s) for s in self.sources],
                "total": asdict(self.total)}


def _failure_kind(error: str) -> str:
    """The reason without the file: ``"a/b.mp4: truncated stream"`` -> ``"truncated stream"``."""
    return error.split(": ", 1)[-1] if ": " in error else error


def summarize(root: str | Path) -> DatasetSummary:
    """Summary of the dataset folder ``root`` (raises EpisodeError naming a missing or broken file)."""
    root = Path(root)
    episodes = episode_rows(root)
    by_source: dict[str, SourceSummary] = {}
    failures: dict[str, Counter] = {}
    shards: dict[str, set[str]] = {}
    for e in episodes:
        s = by_source.setdefault(e["source"], SourceSummary(e["source"]))
        s.episodes += 1
        if e["split"] not in s.splits:
            s.splits.append(e["split"])
        if e["status"] == "ok":
            s.ok += 1
            s.frames += int(e["num_frames"])
            s.hours += int(e["num_frames"]) / float(e["fps"]) / 3600.0 if e["fps"] else 0.0
            shards.setdefault(e["source"], set()).add(e["shard"])
            s.on_intrinsics_prior += e.get("intrinsics_source") in ("fov_prior", "default")
        else:
            s.failed += 1
            failures.setdefault(e["source"], Counter())[_failure_kind(e["error"] or "unknown")] += 1
    for name, s in by_source.items():
        s.splits.sort()
        s.top_failures = failures.get(name, Counter()).most_common(3)
        counts = np.zeros(4)
        n = 0
        for rel in sorted(shards.get(name, ())):
            t, embedded = read_shard(root, rel, ["hand_valid", "camera_valid"])
            hv = fixed_list_to_numpy(t.column("hand_valid"), (2,), "bool")
            counts += [hv.any(axis=1).sum(), hv.all(axis=1).sum(),
                       np.asarray(t.column("camera_valid").to_numpy(zero_copy_only=False), bool).sum(),
                       embedded]
            n += len(t)
            s.disk_bytes += (root / rel).stat().st_size
        if n:
            s.hand_visible, s.both_hands, s.camera_valid, s.images = (counts / n).tolist()
    disk = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    return DatasetSummary(str(root), [by_source[k] for k in sorted(by_source)], disk)


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024.0
    return f"{n:.1f} TB"


def _pct(x: float) -> str:
    return "-" if not np.isfinite(x) else f"{100 * x:.0f}%"


def table_rows(summary: DatasetSummary) -> list[list[str]]:
    """Header + one row per source + a total row, as strings."""
    header = ["source", "split", "eps", "fail", "frames", "hours", "hand", "2hands", "cam", "K prior", "jpeg",
              "disk"]
    rows = [header]
    for s in [*summary.sources, summary.total]:
        rows.append([s.source, ",".join(s.splits), str(s.ok), str(s.failed), f"{s.frames:,}",
                     f"{s.hours:.2f}",
                     _pct(s.hand_visible), _pct(s.both_hands), _pct(s.camera_valid), str(s.on_intrinsics_prior),
                     _pct(s.images),
                     human_bytes(s.disk_bytes)])
    return rows


def render(summary: DatasetSummary, console=None) -> None:
    """Print the table (rich) and the most frequent failure reasons."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    rows = table_rows(summary)
    table = Table(title=f"{summary.root}  ({human_bytes(summary.disk_bytes)} on disk)", box=box.SIMPLE_HEAD,
                  pad_edge=False, title_justify="left", collapse_padding=True)
    for i, h in enumerate(rows[0]):
        table.add_column(h, justify="left" if i < 2 else "right", no_wrap=True)
    for r in rows[1:-1]:
        table.add_row(*r)
    table.add_row(*rows[-1], style="bold")
    console.print(table)
    console.print("eps: episodes ok; hand / 2hands: frames with one / both hands; cam: frames with a known "
                  "camera pose; K prior: episodes whose focal length is a guess (no sidecar, not "
                  "self-calibrated); jpeg: frames embedded", style="dim")
    if summary.total.on_intrinsics_prior:
        console.print(f"WARNING: {summary.total.on_intrinsics_prior} episode(s) use an intrinsics prior: hand "
                      "depth and camera rotation scale with a guessed focal length", style="bold yellow")
    for s in summary.sources:
        for reason, count in s.top_failures:
            console.print(f"  {s.source}: {count} failed: {reason}")


def summary_json(summary: DatasetSummary) -> str:
    return json.dumps(summary.to_dict(), indent=2)
