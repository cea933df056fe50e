"""``dexdata validate``: check a dataset folder against the data contract (v1 or v2).

Checks the schema version (any readable one; the Arrow schemas are those of that version), Arrow
schemas of shards and ``meta/episodes.parquet``, the lens distortion of each episode, that row ranges
in the episode table match the shards exactly (no orphan shards or rows, sorted rows, contiguous
frame indices), strictly increasing timestamps, NaN exactly where validity flags say missing,
rigid camera poses, confidences in [0, 1], and the presence of stats and the dataset card.
It also detects metadata left stale by an interrupted ``finalize`` (the meta files are each written
atomically, but one after another): ``info.json`` totals, ``stats.json`` counts and ``README.md`` must
describe the same episodes as ``meta/episodes.parquet``; rerunning the same command rewrites them.
Each problem is reported with the file it is in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from ..distortion import Distortion, check_covers_frame
from ..schema import (
    DATA_DIR, DATASET_CONVENTIONS, EPISODES_PATH, INFO_PATH, READABLE_SCHEMA_VERSIONS, SCHEMA_VERSION,
    STATS_PATH, arrow_schema, fixed_list_to_numpy,
)
from .card import card_text

_ARRAY_COLUMNS = {
    "keypoints_cam": (2, 21, 3), "keypoints_2d": (2, 21, 2), "hand_valid": (2,), "keypoint_conf": (2, 21),
    "T_world_cam": (4, 4), "action": (44, 3),
}


@dataclass
class ValidationReport:
    root: Path
    problems: list[str] = field(default_factory=list)
    version: str = SCHEMA_VERSION  # the schema version the folder was checked against
    episodes: int = 0
    rows: int = 0
    #: finite values per dimension over all shard rows, as counted into stats.json
    finite_counts: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, where: str | Path, message: str) -> None:
        self.problems.append(f"{where}: {message}")


def _schema_diff(actual, expected) -> str | None:
    a = {f.name: f.type for f in actual}
    e = {f.name: f.type for f in expected}
    if list(a) != list(e):
        return f"columns {list(a)} differ from the contract's {list(e)}"
    bad = [n for n in e if a[n] != e[n]]
    return f"column types differ from the contract for {bad}" if bad else None


def _check_shard(report: ValidationReport, root: Path, relpath: str, episodes: list[dict],
                 version: str) -> None:
    path = root / relpath
    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a violation, not a crash
        report.add(relpath, f"unreadable Parquet file ({exc})")
        return
    diff = _schema_diff(pf.schema_arrow, arrow_schema("frame", version))
    if diff:
        report.add(relpath, diff)
        return
    columns = ["episode_id", "frame_index", "timestamp", "camera_valid", *_ARRAY_COLUMNS]
    table = pf.read(columns=columns)
    n = table.num_rows
    report.rows += n
    ids = np.asarray(table.column("episode_id").to_pylist(), dtype=object)
    frame_index = table.column("frame_index").to_numpy()
    ts = table.column("timestamp").to_numpy()
    arrays = {k: fixed_list_to_numpy(table.column(k), s) for k, s in _ARRAY_COLUMNS.items()}
    covered = np.zeros(n, bool)
    for ep in sorted(episodes, key=lambda e: e["row_start"]):
        a, b, eid = int(ep["row_start"]), int(ep["row_end"]), ep["episode_id"]
        where = f"{relpath} rows {a}:{b} (episode {eid})"
        if not (0 <= a < b <= n):
            report.add(where, f"row range outside the shard's {n} rows")
            continue
        if covered[a:b].any():
            report.add(where, "row range overlaps another episode")
        covered[a:b] = True
        if b - a != ep["num_frames"]:
            report.add(where, f"num_frames {ep['num_frames']} != {b - a} rows")
        if np.any(ids[a:b] != eid):
            report.add(where, "rows belong to another episode_id")
        if not np.array_equal(frame_index[a:b], np.arange(b - a)):
            report.add(where, "frame_index is not 0..n-1 in order")
        if not np.all(np.isfinite(ts[a:b])) or np.any(np.diff(ts[a:b]) <= 0):
            report.add(where, "timestamps are not strictly increasing")
        if not np.all(np.isnan(arrays["action"][b - 1])):
            report.add(where, "the last frame's action is not all NaN")
    if not covered.all():
        report.add(relpath, f"{int((~covered).sum())} rows belong to no episode in {EPISODES_PATH}")
    if n > 1 and np.any(ids[1:] < ids[:-1]):
        report.add(relpath, "rows are not sorted by episode_id")
    for key, name, width in (("action/relative", "action", 132), ("keypoints_cam", "keypoints_cam", 126)):
        counts = np.isfinite(arrays[name].reshape(n, width)).sum(axis=0)
        report.finite_counts[key] = report.finite_counts.get(key, 0) + counts
    valid = arrays["hand_valid"].astype(bool)
    for name in ("keypoints_cam", "keypoints_2d"):
        finite = np.isfinite(arrays[name]).all(axis=(2, 3))
        nan = np.isnan(arrays[name]).all(axis=(2, 3))
        bad = (valid & ~finite) | (~valid & ~nan)
        if bad.any():
            f, h = np.argwhere(bad)[0]
            report.add(relpath, f"{name} row {f} hand {h}: NaN must appear exactly where hand_valid is false "
                                f"({int(bad.sum())} hand-rows violate)")
    conf = arrays["keypoint_conf"]
    if np.any(~np.isfinite(conf)) or np.any((conf < 0) | (conf > 1)):
        report.add(relpath, "keypoint_conf outside [0, 1]")
    T = arrays["T_world_cam"]
    if not np.all(np.isfinite(T)):
        report.add(relpath, "T_world_cam has NaN/inf")
    else:
        cam_ok = table.column("camera_valid").to_numpy(zero_copy_only=False).astype(bool)
        R = T[cam_ok, :3, :3]
        if R.size and not np.allclose(R @ np.swapaxes(R, 1, 2), np.eye(3), atol=1e-4):
            report.add(relpath, "a valid T_world_cam has a non-orthonormal rotation")


def validate_dataset(root: str | Path) -> ValidationReport:
    """Validate the dataset folder ``root``; the report lists every violation found."""
    root = Path(root)
    report = ValidationReport(root)
    if not root.is_dir():
        report.add(root, "not a folder")
        return report
    info_path = root / INFO_PATH
    version = SCHEMA_VERSION
    if not info_path.exists():
        report.add(info_path.relative_to(root), "missing")
    else:
        stated = json.loads(info_path.read_text()).get("schema_version")
        if stated in READABLE_SCHEMA_VERSIONS:
            version = report.version = stated
        else:
            report.add(INFO_PATH, f"schema_version {stated!r}, "
                                  f"expected one of {list(READABLE_SCHEMA_VERSIONS)}")
    for required in (STATS_PATH, "README.md"):
        if not (root / required).exists():
            report.add(required, "missing")
    if not (root / EPISODES_PATH).exists():
        report.add(EPISODES_PATH, "missing")
        return report
    episodes_table = pq.read_table(root / EPISODES_PATH)
    diff = _schema_diff(episodes_table.schema, arrow_schema("episode", version))
    if diff:
        report.add(EPISODES_PATH, diff)
        return report
    episodes = episodes_table.to_pylist()
    report.episodes = len(episodes)
    ids = [e["episode_id"] for e in episodes]
    if len(ids) != len(set(ids)):
        report.add(EPISODES_PATH, "duplicate episode_id")
    by_shard: dict[str, list[dict]] = {}
    for e in episodes:
        if e["status"] == "ok":
            if not e["shard"] or e["row_start"] is None or e["row_end"] is None:
                report.add(EPISODES_PATH, f"episode {e['episode_id']} is ok but has no shard/row range")
                continue
            if e["intrinsics"] is None or len(e["intrinsics"]) != 4:
                report.add(EPISODES_PATH, f"episode {e['episode_id']}: intrinsics must be [fx, fy, cx, cy]")
            elif e.get("distortion") is not None:
                problem = _distortion_problem(e)
                if problem:
                    report.add(EPISODES_PATH, f"episode {e['episode_id']}: {problem}")
            by_shard.setdefault(e["shard"], []).append(e)
        elif e["status"] == "failed":
            if not e["error"]:
                report.add(EPISODES_PATH, f"failed episode {e['episode_id']} has no reason")
        else:
            report.add(EPISODES_PATH, f"episode {e['episode_id']} has unknown status {e['status']!r}")
    on_disk = {p.relative_to(root).as_posix() for p in (root / DATA_DIR).rglob("*.parquet")}
    for orphan in sorted(on_disk - set(by_shard)):
        report.add(orphan, f"shard is not referenced by {EPISODES_PATH}")
    for relpath in sorted(by_shard):
        if relpath not in on_disk:
            report.add(relpath, f"listed in {EPISODES_PATH} but missing")
            continue
        _check_shard(report, root, relpath, by_shard[relpath], version)
    _check_meta_consistency(report, root, episodes)
    return report


def _distortion_problem(row: dict) -> str | None:
    """Why an episode row's ``distortion`` is not [k1, k2, p1, p2] of a lens valid over its frame."""
    try:
        d = Distortion.from_list(row["distortion"])
        if len(row["distortion"]) != 4:
            raise ValueError("expected [k1, k2, p1, p2]")
        fx, fy, cx, cy = row["intrinsics"]
        K = [[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]]
        check_covers_frame(d, np.asarray(K), int(row["width"]), int(row["height"]))
    except (ValueError, TypeError) as exc:
        return f"distortion {row['distortion']}: {exc}"
    return None


def _check_meta_consistency(report: ValidationReport, root: Path, episodes: list[dict]) -> None:
    """info.json totals, stats.json counts and the card must describe the episodes in episodes.parquet."""
    shards_ok = report.ok  # stats counts are only comparable when every shard was read
    info = json.loads((root / INFO_PATH).read_text()) if (root / INFO_PATH).exists() else None
    if info is not None:
        ok = [e for e in episodes if e["status"] == "ok"]
        expected = {"total_episodes": len(episodes), "total_ok": len(ok),
                    "total_failed": len(episodes) - len(ok),
                    "total_frames": sum(int(e["num_frames"]) for e in ok)}
        for key, value in expected.items():
            if info.get(key) != value:
                report.add(INFO_PATH, f"{key} {info.get(key)} != {value} in {EPISODES_PATH} "
                                      "(stale metadata: rerun the same command to rebuild meta/)")
        readme = root / "README.md"
        conventions = info.get("conventions") or {}  # info.json sorts keys; the card keeps DATASET_CONVENTIONS order
        ordered = {k: conventions[k] for k in DATASET_CONVENTIONS if k in conventions}
        card_info = {**info, "conventions": {**ordered, **conventions}}
        if readme.exists() and readme.read_text() != card_text(card_info):
            report.add("README.md", f"does not match {INFO_PATH} "
                                    "(stale dataset card: rerun the same command)")
    if (root / STATS_PATH).exists() and shards_ok:
        stats = json.loads((root / STATS_PATH).read_text())
        for key, counts in sorted(report.finite_counts.items()):
            stored = np.asarray((stats.get(key) or {}).get("count", []), dtype=np.int64)
            if stored.shape != counts.shape or np.any(stored != counts):
                report.add(STATS_PATH, f"{key} counts do not match the shards' finite values "
                                       "(stale statistics: rerun the same command to rebuild meta/)")
