"""DROID layouts -> one internal episode record.

Layouts (``formats.md`` §1):

* ``raw``: ``<lab>/{success,failure}/<date>/<time>/`` with ``trajectory.h5``, ``metadata_<id>.json`` and
  ``recordings/MP4/<serial>.mp4``.
* ``lerobot`` v2.1: ``meta/info.json`` + ``meta/episodes.jsonl``, one parquet and one mp4 per episode.
* ``lerobot`` v3.0: ``meta/info.json`` + ``meta/episodes/**.parquet``, episodes concatenated in shared
  ``file-XXX`` parquet / mp4 files (an episode's video is the span ``from_timestamp .. to_timestamp``).

Discovery (:func:`discover`) is cheap: it returns :class:`EpisodeRef` s with small JSON metadata and
applies the success / episode-id filters and resolves ``keep_ranges``. :func:`read_episode` opens one
episode into a :class:`DroidRecord` (float64 arrays, no frames), raising
:class:`~dexhands_data.records.EpisodeError` naming the file on bad input.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ...records import EpisodeError, EpisodeRef
from ...slugs import slug
from .video import VideoSpan

SOURCE = "droid"
FPS = 15.0
CAMERAS: tuple[str, str, str] = ("ext1", "ext2", "wrist")
#: LeRobot port names of the three left-eye cameras.
LEROBOT_CAMERA_KEYS = {"ext1": "exterior_1_left", "ext2": "exterior_2_left", "wrist": "wrist_left"}
CARTESIAN_KEY = "observation/robot_state/cartesian_position"
GRIPPER_KEY = "observation/robot_state/gripper_position"
LEROBOT_CARTESIAN = "observation.state.cartesian_position"
LEROBOT_GRIPPER = "observation.state.gripper_position"


@dataclass
class DroidRecord:
    """One DROID episode in memory (robot-base frame, metres, radians, 15 Hz steps).

    cartesian: (N, 6) float64 end-effector [x, y, z, roll, pitch, yaw] (extrinsic-xyz Euler).
    gripper: (N,) float64, 0 open .. 1 closed.
    extrinsics: camera name -> (6,) static camera-to-base 6-vector, or (N, 6) per step (wrist).
    videos: camera name -> :class:`VideoSpan`. serials: camera name -> serial string.
    official_camera: the exterior camera the released DexWM code picks (``left_mp4_path`` matched
    against ``ext{1,2}_mp4_path``), None if that cannot be decided.
    """

    episode_id: str
    layout: str
    path: str
    cartesian: np.ndarray
    gripper: np.ndarray
    extrinsics: dict[str, np.ndarray]
    videos: dict[str, VideoSpan]
    serials: dict[str, str] = field(default_factory=dict)
    official_camera: str | None = None
    official_camera_note: str = ""
    calibration_key: str | None = None
    task: str | None = None
    success: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------- discovery


def detect_layout(root: str | Path) -> str:
    """``"raw"`` or ``"lerobot"`` for an input folder; ValueError when neither is recognised."""
    root = Path(root)
    if (root / "meta" / "info.json").is_file():
        return "lerobot"
    if next(root.rglob("trajectory.h5"), None) is not None:
        return "raw"
    raise ValueError(
        f"{root}: neither a raw DROID release (no trajectory.h5) nor a LeRobot port (no meta/info.json)")


def discover(
    root: str | Path,
    layout: str | None = None,
    success_only: bool = False,
    episode_ids: Iterable[str] | None = None,
    keep_ranges_path: str | None = None,
) -> list[EpisodeRef]:
    """Episode references under ``root`` sorted by episode id, after the filters.

    ``episode_ids`` matches our episode ids, raw relative folders, metadata uuids or LeRobot episode
    indices. ``keep_ranges_path``: a ``keep_ranges_1_0_1.json``-style file whose half-open
    ``[start, end)`` step ranges are stored in each ref's metadata (episodes absent from it keep all steps).
    """
    root = Path(root).resolve()
    layout = layout or detect_layout(root)
    if layout == "raw":
        refs = _discover_raw(root)
    elif layout == "lerobot":
        refs = _discover_lerobot(root)
    else:
        raise ValueError(f"unknown DROID layout {layout!r}; expected raw or lerobot")
    if success_only:
        refs = [r for r in refs if r.metadata.get("success") is True]
    if episode_ids is not None:
        wanted = {str(e) for e in episode_ids}
        refs = [r for r in refs if wanted & set(r.metadata["aliases"])]
    if keep_ranges_path is not None:
        refs = _attach_keep_ranges(refs, keep_ranges_path)
    return sorted(refs, key=lambda r: r.episode_id)


def _discover_raw(root: Path) -> list[EpisodeRef]:
    refs = []
    for h5 in sorted(root.rglob("trajectory.h5")):
        folder = h5.parent
        rel = folder.relative_to(root).as_posix()
        parts = rel.split("/")
        success = True if "success" in parts else False if "failure" in parts else None
        meta = sorted(folder.glob("metadata_*.json"))
        uuid = meta[0].stem[len("metadata_"):] if meta else None
        safe = slug(rel.replace("/", "+"), keep="_.+-", sep="-", strip="-", max_len=None, default="")
        aliases = [rel, safe] + ([uuid] if uuid else [])
        refs.append(EpisodeRef(
            episode_id=safe or "episode",
            source=SOURCE,
            path=str(folder),
            relpath=rel,
            metadata={"layout": "raw", "success": success, "uuid": uuid, "aliases": aliases},
        ))
    return refs


def _read_info(root: Path) -> dict:
    try:
        return json.loads((root / "meta" / "info.json").read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{root / 'meta' / 'info.json'}: {e}") from e


def _discover_lerobot(root: Path) -> list[EpisodeRef]:
    info = _read_info(root)
    version = str(info.get("codebase_version", ""))
    fps = float(info.get("fps", FPS))
    refs = []
    if version.startswith("v3"):
        files = sorted((root / "meta" / "episodes").rglob("*.parquet"))
        if not files:
            raise ValueError(f"{root / 'meta' / 'episodes'}: no episode metadata parquet (LeRobot v3.0)")
        success = _lerobot_v3_success(root, info)
        for f in files:
            for row in pq.read_table(f).to_pylist():
                index = int(row["episode_index"])
                spans = {}
                for cam, key in LEROBOT_CAMERA_KEYS.items():
                    vk = f"observation.images.{key}"
                    if f"videos/{vk}/chunk_index" in row:
                        spans[cam] = {
                            "path": info["video_path"].format(
                                video_key=vk, chunk_index=row[f"videos/{vk}/chunk_index"],
                                file_index=row[f"videos/{vk}/file_index"]),
                            "from_timestamp": float(row[f"videos/{vk}/from_timestamp"]),
                            "to_timestamp": float(row[f"videos/{vk}/to_timestamp"]),
                        }
                data = info["data_path"].format(
                    chunk_index=row["data/chunk_index"], file_index=row["data/file_index"])
                refs.append(_lerobot_ref(root, index, data, spans, fps, "lerobot_v3.0", success.get(index)))
    else:
        chunks_size = int(info.get("chunks_size", 1000))
        lines = (root / "meta" / "episodes.jsonl").read_text().splitlines()
        for line in lines:
            if not line.strip():
                continue
            index = int(json.loads(line)["episode_index"])
            chunk = index // chunks_size
            data = info["data_path"].format(episode_chunk=chunk, episode_index=index)
            spans = {}
            for cam, key in LEROBOT_CAMERA_KEYS.items():
                vk = f"observation.images.{key}"
                if vk in info.get("features", {}):
                    spans[cam] = {"path": info["video_path"].format(
                        episode_chunk=chunk, video_key=vk, episode_index=index)}
            success = _lerobot_v2_success(root / data)
            refs.append(_lerobot_ref(root, index, data, spans, fps, "lerobot_v2.1", success))
    return refs


def _lerobot_ref(
    root: Path, index: int, data: str, spans: dict, fps: float, layout: str, success: bool | None
) -> EpisodeRef:
    eid = f"episode_{index:06d}"
    return EpisodeRef(
        episode_id=eid, source=SOURCE, path=str(root / data), relpath=data,
        metadata={"layout": layout, "root": str(root), "episode_index": index, "fps": fps, "videos": spans,
                  "success": success, "aliases": [eid, str(index)]},
    )


def _lerobot_v2_success(data_path: Path) -> bool | None:
    try:
        if "is_episode_successful" not in pq.read_schema(data_path).names:
            return None
        col = pq.read_table(data_path, columns=["is_episode_successful"]).column(0)
    except (OSError, ValueError):
        return None  # the episode fails with a reason when it is opened
    return bool(col[0].as_py()) if len(col) else None


def _lerobot_v3_success(root: Path, info: dict) -> dict[int, bool]:
    out: dict[int, bool] = {}
    for f in sorted((root / "data").rglob("*.parquet")):
        if "is_episode_successful" not in pq.read_schema(f).names:
            continue
        t = pq.read_table(f, columns=["episode_index", "is_episode_successful"])
        for e, s in zip(t.column(0).to_pylist(), t.column(1).to_pylist()):
            out.setdefault(int(e), bool(s))
    return out


def load_keep_ranges(path: str) -> dict[str, list[list[int]]]:
    """The keep-ranges file: ``{"<recording_folderpath>--<file_path>" | episode id: [[start, end), ...]}``."""
    try:
        table = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: cannot read the keep-ranges file: {e}") from e
    if not isinstance(table, dict):
        raise ValueError(f"{path}: expected a JSON object of step ranges")
    return table


def _attach_keep_ranges(refs: list[EpisodeRef], path: str) -> list[EpisodeRef]:
    """Resolve each ref's ranges: by a key's ``file_path`` ending in ``<relpath>/trajectory.h5``
    (the public release keys), else by one of the ref's aliases used as a key."""
    table = load_keep_ranges(path)
    by_suffix: dict[str, list] = {}
    for key, ranges in table.items():
        file_path = key.split("--")[-1]
        parts = file_path.rstrip("/").split("/")
        if parts and parts[-1] == "trajectory.h5" and len(parts) >= 5:
            by_suffix["/".join(parts[-5:-1])] = ranges
    out = []
    for ref in refs:
        ranges = None
        if ref.metadata["layout"] == "raw":
            ranges = by_suffix.get("/".join(ref.relpath.split("/")[-4:]))
        if ranges is None:
            ranges = next((table[a] for a in ref.metadata["aliases"] if a in table), None)
        kept = [[int(s), int(e)] for s, e in ranges] if ranges is not None else None
        meta = dict(ref.metadata, keep_ranges=kept)
        out.append(EpisodeRef(ref.episode_id, ref.source, ref.path, ref.relpath, ref.split, meta))
    return out


# ----------------------------------------------------------------------------- reading


def read_episode(ref: EpisodeRef) -> DroidRecord:
    """Open the episode of ``ref`` into a :class:`DroidRecord` (EpisodeError on bad input)."""
    layout = ref.metadata.get("layout")
    if layout == "raw":
        return read_raw(Path(ref.path), ref.episode_id)
    if layout in ("lerobot_v2.1", "lerobot_v3.0"):
        return read_lerobot(ref)
    raise EpisodeError(f"{ref.path}: unknown DROID layout {layout!r}")


def _finite(path: str, name: str, values: np.ndarray) -> np.ndarray:
    bad = ~np.isfinite(values)
    if bad.any():
        rows = np.unique(np.nonzero(bad.reshape(bad.shape[0], -1))[0])
        raise EpisodeError(f"{path}: {name} has non-finite values at steps {rows[:5].tolist()}"
                           f"{' ...' if rows.size > 5 else ''}")
    return values


def read_raw(folder: Path, episode_id: str) -> DroidRecord:
    """A raw-release episode folder (``trajectory.h5``, ``metadata_*.json``, ``recordings/MP4``)."""
    metas = sorted(folder.glob("metadata_*.json"))
    if len(metas) != 1:
        raise EpisodeError(f"{folder}: expected one metadata_*.json, found {len(metas)}")
    try:
        meta = json.loads(metas[0].read_text())
    except (OSError, ValueError) as e:
        raise EpisodeError(f"{metas[0]}: unreadable metadata: {e}") from e
    if not isinstance(meta, dict):
        raise EpisodeError(f"{metas[0]}: metadata is a JSON {type(meta).__name__}, expected an object")
    h5_path = folder / "trajectory.h5"
    try:
        with h5py.File(h5_path, "r") as h5:
            for key in (CARTESIAN_KEY, GRIPPER_KEY):
                if key not in h5:
                    raise EpisodeError(f"{h5_path}: missing dataset {key}")
            cartesian = _h5_numeric(h5, CARTESIAN_KEY, h5_path)
            gripper = _h5_numeric(h5, GRIPPER_KEY, h5_path).reshape(-1)
            wrist_serial = str(meta.get("wrist_cam_serial", ""))
            wrist_key = f"observation/camera_extrinsics/{wrist_serial}_left"
            wrist_ext = None
            if wrist_serial and wrist_key in h5:
                wrist_ext = _h5_numeric(h5, wrist_key, h5_path)
            task = meta.get("current_task") or h5.attrs.get("current_task")
    except OSError as e:
        raise EpisodeError(f"{h5_path}: cannot read: {e}") from e
    if cartesian.ndim != 2 or cartesian.shape[1] != 6 or gripper.shape[0] != cartesian.shape[0]:
        raise EpisodeError(f"{h5_path}: cartesian_position {cartesian.shape} and gripper_position "
                           f"{gripper.shape} do not describe the same (N, 6) / (N,) steps")
    _finite(str(h5_path), "cartesian_position", cartesian)
    _finite(str(h5_path), "gripper_position", gripper)
    serials, extrinsics, videos = {}, {}, {}
    for cam in CAMERAS:
        serial = meta.get(f"{cam}_cam_serial")
        if serial is None:
            continue
        if not re.fullmatch(r"[A-Za-z0-9_-]+", str(serial)):  # it names a file: never a path outside
            raise EpisodeError(f"{metas[0]}: {cam}_cam_serial {str(serial)[:80]!r} is not a camera serial")
        serials[cam] = str(serial)
        videos[cam] = VideoSpan(str(folder / "recordings" / "MP4" / f"{serial}.mp4"), FPS)
        ext = meta.get(f"{cam}_cam_extrinsics")
        if cam == "wrist":
            ext = wrist_ext  # the metadata value is only the t = 0 pose
        vector = _extrinsic_vector(ext)
        if vector is not None:
            extrinsics[cam] = vector
    if isinstance(task, bytes):
        task = task.decode("utf-8", "replace")
    official, note = _official_camera(meta)
    success = meta.get("success")
    return DroidRecord(
        episode_id=episode_id, layout="raw", path=str(folder), cartesian=cartesian, gripper=gripper,
        extrinsics=extrinsics, videos=videos, serials=serials, official_camera=official,
        official_camera_note=note, calibration_key=metas[0].stem[len("metadata_"):],
        task=str(task) if task else None, success=bool(success) if success is not None else None,
        extra={k: meta[k] for k in ("lab", "building", "scene_id", "date", "uuid") if k in meta},
    )


def _h5_numeric(h5: h5py.File, key: str, path: Path) -> np.ndarray:
    """A numeric HDF5 dataset as float64; EpisodeError for a group or a non-numeric dtype."""
    node = h5[key]
    if not isinstance(node, h5py.Dataset):
        raise EpisodeError(f"{path}: {key} is a group, expected a dataset")
    if node.dtype.kind not in "biuf":
        raise EpisodeError(f"{path}: {key} is not numeric (dtype {node.dtype.str})")
    return np.asarray(node[()], dtype=np.float64)


def _inside(root: Path, relpath: str, what: str, where: str | Path) -> Path:
    """``root / relpath`` if it stays inside ``root`` (lexically: symlinks allowed), else EpisodeError."""
    base = os.path.normpath(root)
    full = os.path.normpath(os.path.join(base, str(relpath)))
    if not full.startswith(base + os.sep):
        raise EpisodeError(f"{where}: {what} {str(relpath)[:120]!r} points outside the input root {base}")
    return Path(full)


def _extrinsic_vector(value) -> np.ndarray | None:
    """A finite (6,) or (N, 6) extrinsic array, or None when absent or malformed (e.g. null entries)."""
    if value is None:
        return None
    try:
        v = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return v if v.shape[-1:] == (6,) and v.ndim in (1, 2) and np.all(np.isfinite(v)) else None


def _official_camera(meta: dict) -> tuple[str | None, str]:
    """The released code's choice: ``left_mp4_path`` equal to ``ext1_mp4_path`` or ``ext2_mp4_path``."""
    left = meta.get("left_mp4_path")
    for cam in ("ext1", "ext2"):
        if left is not None and left == meta.get(f"{cam}_mp4_path"):
            return cam, f"left_mp4_path == {cam}_mp4_path"
    return None, f"left_mp4_path {left!r} matches neither ext1_mp4_path nor ext2_mp4_path"


def read_lerobot(ref: EpisodeRef) -> DroidRecord:
    """A LeRobot v2.1 or v3.0 episode (state columns are float32 in the port, widened to float64)."""
    root = Path(ref.metadata["root"])
    index = int(ref.metadata["episode_index"])
    path = _inside(root, os.path.relpath(ref.path, root), "data_path", root / "meta" / "info.json")
    try:
        schema = pq.read_schema(path)
    except (OSError, ValueError) as e:
        raise EpisodeError(f"{path}: cannot read parquet: {e}") from e
    for col in (LEROBOT_CARTESIAN, LEROBOT_GRIPPER):
        if col not in schema.names:
            raise EpisodeError(f"{path}: missing column {col}")
    ext_cols = {cam: f"camera_extrinsics.{key}" for cam, key in LEROBOT_CAMERA_KEYS.items()
                if f"camera_extrinsics.{key}" in schema.names}
    optional = [c for c in ("language_instruction", "task_index", "is_episode_successful", "frame_index")
                if c in schema.names]
    columns = ["episode_index", LEROBOT_CARTESIAN, LEROBOT_GRIPPER, *ext_cols.values(), *optional]
    try:  # row groups of other episodes (v3.0 shared files) are skipped by their statistics
        table = pq.read_table(path, columns=columns, filters=[("episode_index", "=", index)])
    except (OSError, ValueError) as e:
        raise EpisodeError(f"{path}: cannot read parquet: {e}") from e
    table = table.filter(pc.equal(table.column("episode_index"), index))
    if "frame_index" in table.column_names:
        table = table.sort_by("frame_index")
    if table.num_rows == 0:
        raise EpisodeError(f"{path}: no rows of episode {index}")
    cartesian = _list_column(table, LEROBOT_CARTESIAN, 6, path)
    gripper = _list_column(table, LEROBOT_GRIPPER, 1, path).reshape(-1)
    _finite(str(path), LEROBOT_CARTESIAN, cartesian)
    _finite(str(path), LEROBOT_GRIPPER, gripper)
    extrinsics, extra = {}, {}
    for cam, col in ext_cols.items():
        values = _list_column(table, col, 6, path)
        if cam == "wrist":
            extrinsics[cam] = values
        else:
            _finite(str(path), col, values[:1])
            extrinsics[cam] = values[0]
            extra[f"{cam}_extrinsics_max_deviation"] = float(np.nanmax(np.abs(values - values[0])))
    fps = float(ref.metadata.get("fps", FPS))
    videos = {}
    for cam, span in ref.metadata.get("videos", {}).items():
        video = _inside(root, span["path"], "video_path", root / "meta" / "info.json")
        videos[cam] = VideoSpan(
            str(video), fps, span.get("from_timestamp"), span.get("to_timestamp"))
    task = None
    if "language_instruction" in table.column_names:
        task = table.column("language_instruction")[0].as_py()
    if not task and "task_index" in table.column_names:
        task = _lerobot_task(root, int(table.column("task_index")[0].as_py()))
    success = (bool(table.column("is_episode_successful")[0].as_py())
               if "is_episode_successful" in table.column_names else None)
    return DroidRecord(
        episode_id=ref.episode_id, layout=ref.metadata["layout"], path=str(path), cartesian=cartesian,
        gripper=gripper, extrinsics=extrinsics, videos=videos, official_camera="ext1",
        official_camera_note="the LeRobot port has no left_mp4_path; exterior camera 1 is used",
        task=task or None, success=success, extra={"episode_index": index, **extra},
    )


def _list_column(table, name: str, width: int, path: Path) -> np.ndarray:
    col = table.column(name).combine_chunks()
    if col.null_count:
        raise EpisodeError(f"{path}: column {name} has null rows")
    flat = np.asarray(col.flatten().to_numpy(zero_copy_only=False), dtype=np.float64)
    if flat.size != table.num_rows * width:
        raise EpisodeError(f"{path}: column {name} is not {width} values per row")
    return flat.reshape(table.num_rows, width)


def _lerobot_task(root: Path, task_index: int) -> str | None:
    v2 = root / "meta" / "tasks.jsonl"
    if v2.is_file():
        for line in v2.read_text().splitlines():
            if line.strip() and json.loads(line).get("task_index") == task_index:
                return json.loads(line).get("task")
    v3 = root / "meta" / "tasks.parquet"
    if v3.is_file():
        for row in pq.read_table(v3).to_pylist():
            if row.get("task_index") == task_index:
                return row.get("task") or row.get("__index_level_0__")
    return None
