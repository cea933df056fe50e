"""Source ``ego4d``: the layout the official ``ego4d`` download CLI writes.

```
<root>/                       the --output_directory of the ego4d CLI, or its v2/ (v1/) folder
  v2/ego4d.json               metadata: videos[] (video_uid, duration_sec, scenarios, device,
                              video_metadata{fps, display_width, display_height, num_frames, ...}),
                              clips[] (clip_uid, video_uid, video_start_sec, video_end_sec, ...)
  v2/full_scale/<video_uid>.mp4  + manifest.csv (video_uid, canonical_* columns)
  v2/clips/<clip_uid>.mp4
```

Episodes are full-scale videos and/or clips (``kinds``). A subset is chosen by ``video_uids``
(a list) or ``video_uid_file`` (whitespace-separated uids, the ego4d CLI's ``--video_uid_file``
format); a clip is selected by its own uid or by its parent video's. Selected uids without a file
on disk still become episodes, which then fail with "file not found" instead of vanishing.

Ego4D's metadata is nominal: fps and resolution vary per video (1440x1080, 1920x1080,
1920x1440, ...) and are **read from each file** (PyAV); the metadata values are kept in ``extra``
with a flag when they disagree. Ego4D publishes no intrinsics (Ego4d#198), so in order:
1. ``intrinsics_file``: a JSON object ``{uid: {"fx", "fy", "cx", "cy"[, "width", "height"]} or
   {"K": [[...]]}}``, optionally with the lens distortion ``"k1", "k2"[, "p1", "p2"]`` (per-video
   overrides, e.g. calibrations from another project);
2. a sidecar next to the video (``<uid>.mp4.intrinsics.json``, see :mod:`.videos`);
3. the field-of-view prior with ``hfov_deg`` (``Intrinsics.source == "fov_prior"``).
Scenarios become the episode's ``task`` text (Ego4D has no per-video instruction) and ``extra``.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..distortion import distortion_from_mapping
from ..geometry import Intrinsics
from ..records import EpisodeError, EpisodeRef
from ..video_io import VideoInfo, probe_video
from .base import OpenedEpisode
from .videos import read_sidecar_intrinsics, sidecar_path, video_episode

DEFAULT_HFOV_DEG = 90.0
KINDS = ("full_scale", "clips")
_KIND_PREFIX = {"full_scale": "ego4d", "clips": "ego4d-clip"}


def read_uid_file(path: str) -> list[str]:
    """uids in a whitespace- or comma-separated text file (the ego4d CLI's ``--video_uid_file``)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the uid file ({exc})") from exc
    uids = [u for u in text.replace(",", " ").split() if u]
    if not uids:
        raise ValueError(f"{path}: the uid file lists no uid")
    return uids


def find_version_dir(root: str) -> Path:
    """The folder holding ``ego4d.json`` / ``full_scale/`` / ``clips/``: ``root`` or its newest ``v*/``."""
    base = Path(root).resolve()
    if not base.is_dir():
        raise ValueError(f"{root}: not a folder")

    def looks_like(p: Path) -> bool:
        return (p / "ego4d.json").is_file() or any((p / k).is_dir() for k in KINDS)

    if looks_like(base):
        return base
    versions = sorted((p for p in base.glob("v*") if p.is_dir() and looks_like(p)),
                      key=lambda p: (len(p.name), p.name), reverse=True)
    if not versions:
        raise ValueError(f"{root}: not an Ego4D folder (no ego4d.json, full_scale/ or clips/, "
                         "nor a v2/ holding them)")
    return versions[0]


def _load_metadata(version_dir: Path) -> tuple[dict[str, dict], dict[str, dict]]:
    """ego4d.json's videos and clips by uid (empty when the file is absent)."""
    path = version_dir / "ego4d.json"
    if not path.is_file():
        return {}, {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        videos = {v["video_uid"]: v for v in data.get("videos", [])}
        clips = {c["clip_uid"]: c for c in data.get("clips", []) if "clip_uid" in c}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path}: unreadable Ego4D metadata ({exc})") from exc
    return videos, clips


def _load_manifest(folder: Path) -> dict[str, dict[str, str]]:
    path = folder / "manifest.csv"
    if not path.is_file():
        return {}
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, csv.Error) as exc:
        raise ValueError(f"{path}: unreadable manifest ({exc})") from exc
    out = {}
    for row in rows:
        uid = row.get("video_uid") or row.get("clip_uid") or row.get("file_uid")
        if uid:
            out[uid] = row
    return out


def _number(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if np.isfinite(x) and x > 0 else None


def _video_facts(video: dict | None, manifest_row: dict | None) -> dict[str, Any]:
    """Nominal fps / size / frame count from ego4d.json (both levels) and the manifest."""
    video = video or {}
    vm = video.get("video_metadata") or {}
    row = manifest_row or {}
    fps = _number(vm.get("fps")) or _number(video.get("fps")) or _number(row.get("canonical_fps"))
    width = _number(vm.get("display_width")) or _number(row.get("canonical_display_width"))
    height = _number(vm.get("display_height")) or _number(row.get("canonical_display_height"))
    frames = _number(vm.get("num_frames")) or _number(row.get("canonical_num_frames"))
    return {
        "fps": fps,
        "size": [int(width), int(height)] if width and height else None,
        "num_frames": int(frames) if frames else None,
        "duration_sec": _number(video.get("duration_sec")),
        "scenarios": list(video.get("scenarios") or []),
        "device": video.get("device"),
    }


class Ego4DSource:
    """Ego4D full-scale videos and clips. ``name = "ego4d"``.

    hfov_deg: field of view of the intrinsics prior; target_fps: resample by timestamps (None keeps
    all frames); split: the split written for every episode; kinds: which of "full_scale", "clips";
    video_uids / video_uid_file: a subset; intrinsics_file: per-video intrinsics overrides (JSON).
    """

    name = "ego4d"

    def __init__(self, hfov_deg: float = DEFAULT_HFOV_DEG, target_fps: float | None = None,
                 split: str = "train", kinds: tuple[str, ...] | list[str] = KINDS,
                 video_uids: list[str] | None = None, video_uid_file: str | None = None,
                 intrinsics_file: str | None = None, threads: int = 0):
        if not 1.0 < hfov_deg < 179.0:
            raise ValueError(f"horizontal field of view must be in (1, 179) degrees, got {hfov_deg}")
        if target_fps is not None and not target_fps > 0:
            raise ValueError(f"target fps must be positive, got {target_fps}")
        unknown = set(kinds) - set(KINDS)
        if unknown or not kinds:
            raise ValueError(f"kinds must be a non-empty subset of {KINDS}, got {list(kinds)}")
        self.hfov_deg = float(hfov_deg)
        self.target_fps = None if target_fps is None else float(target_fps)
        self.split = split
        self.kinds = tuple(k for k in KINDS if k in kinds)
        uids = list(video_uids or [])
        if video_uid_file:
            uids += read_uid_file(video_uid_file)
        self.video_uids = sorted(set(uids)) or None
        self.intrinsics_file = intrinsics_file
        self._overrides = self._read_overrides(intrinsics_file) if intrinsics_file else {}
        self.threads = int(threads)

    def config(self) -> dict[str, Any]:
        return {"source": self.name, "hfov_deg": self.hfov_deg, "target_fps": self.target_fps,
                "kinds": list(self.kinds), "intrinsics_file": self.intrinsics_file}

    # ------------------------------------------------------------------ discovery

    def discover(self, root: str) -> list[EpisodeRef]:
        version_dir = find_version_dir(root)
        videos_meta, clips_meta = _load_metadata(version_dir)
        wanted = set(self.video_uids) if self.video_uids else None
        refs: list[EpisodeRef] = []
        found_uids: set[str] = set()
        for kind in self.kinds:
            folder = version_dir / kind
            manifest = _load_manifest(folder) if folder.is_dir() else {}
            files = {p.stem: p for p in sorted(folder.glob("*.mp4"))} if folder.is_dir() else {}
            for uid, path in files.items():
                clip = clips_meta.get(uid) if kind == "clips" else None
                parent = clip.get("video_uid") if clip else (uid if kind == "full_scale" else None)
                if wanted is not None and uid not in wanted and parent not in wanted:
                    continue
                found_uids.update(u for u in (uid, parent) if u)
                refs.append(self._ref(version_dir, kind, uid, path, videos_meta.get(parent or ""), clip,
                                      manifest.get(uid)))
        if wanted is not None:
            for uid in sorted(wanted - found_uids):  # asked for, not on disk: fail loudly per episode
                path = version_dir / "full_scale" / f"{uid}.mp4"
                refs.append(self._ref(version_dir, "full_scale", uid, path, videos_meta.get(uid), None, None))
        if not refs:
            raise ValueError(f"{root}: no Ego4D videos found under {version_dir} ({', '.join(self.kinds)})")
        refs.sort(key=lambda r: r.episode_id)
        return refs

    def _ref(self, version_dir: Path, kind: str, uid: str, path: Path, video: dict | None, clip: dict | None,
             manifest_row: dict | None) -> EpisodeRef:
        facts = _video_facts(video, manifest_row)
        meta: dict[str, Any] = {"uid": uid, "kind": kind, "in_metadata": video is not None, **facts}
        if clip is not None:
            meta["video_uid"] = clip.get("video_uid")
            meta["video_start_sec"] = _number(clip.get("video_start_sec")) or 0.0
            meta["video_end_sec"] = _number(clip.get("video_end_sec"))
        return EpisodeRef(
            episode_id=f"{_KIND_PREFIX[kind]}-{uid}", source=self.name, path=str(path),
            relpath=path.relative_to(version_dir).as_posix(), split=self.split, metadata=meta,
        )

    # ------------------------------------------------------------------ intrinsics

    @staticmethod
    def _read_overrides(path: str) -> dict[str, dict]:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
                raise ValueError("expected a JSON object {uid: {fx, fy, cx, cy[, width, height]} or {K}}")
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: invalid intrinsics file ({exc})") from exc
        return data

    def intrinsics_for(self, ref: EpisodeRef, info: VideoInfo) -> Intrinsics:
        uid = ref.metadata.get("uid")
        entry = self._overrides.get(uid) or self._overrides.get(ref.metadata.get("video_uid") or "")
        if entry is not None:
            return self._override_intrinsics(entry, info)
        side = sidecar_path(info.path)
        if side is not None:
            return read_sidecar_intrinsics(side, info)
        return Intrinsics.from_fov(info.width, info.height, self.hfov_deg)

    def _override_intrinsics(self, entry: dict, info: VideoInfo) -> Intrinsics:
        where = f"{self.intrinsics_file} [{os.path.basename(info.path)}]"
        try:
            if "K" in entry:
                K = np.asarray(entry["K"], dtype=np.float64)
            else:
                K = np.array([[entry["fx"], 0, entry["cx"]], [0, entry["fy"], entry["cy"]], [0, 0, 1]],
                             np.float64)
            width, height = int(entry.get("width", info.width)), int(entry.get("height", info.height))
            intr = Intrinsics.from_K(K, width, height, source="dataset",
                                     distortion=distortion_from_mapping(entry))
        except (KeyError, ValueError, TypeError) as exc:
            raise EpisodeError(f"{where}: invalid intrinsics ({exc})") from exc
        if (width, height) == (info.width, info.height):
            return intr
        if abs(width / height - info.width / info.height) < 1e-3 * info.width / info.height:
            return intr.scaled(info.width, info.height)  # e.g. calibrated on video_540ss
        raise EpisodeError(f"{where}: intrinsics for {width}x{height}, "
                           f"the video shows {info.width}x{info.height}")

    # ------------------------------------------------------------------ opening

    def open(self, ref: EpisodeRef) -> OpenedEpisode:
        """Probe the file (its own fps and size win over the metadata) and stream frames lazily."""
        info = probe_video(ref.path)
        intrinsics = self.intrinsics_for(ref, info)
        meta = ref.metadata
        nominal_size = meta.get("size")
        nominal_fps = meta.get("fps")
        mismatch = bool((nominal_size is not None and list(nominal_size) != [info.width, info.height])
                        or (nominal_fps is not None and abs(nominal_fps - info.fps) > 0.01 * info.fps))
        scenarios = list(meta.get("scenarios") or [])
        video_uid = meta.get("video_uid", meta.get("uid") if meta.get("kind") == "full_scale" else None)

        return video_episode(
            ref, info, intrinsics, self.target_fps, self.threads,
            task=", ".join(scenarios) if scenarios else None,
            extra={
                "dataset": "ego4d",
                "uid": meta.get("uid"),
                "kind": meta.get("kind"),
                "video_uid": video_uid,
                "video_start_sec": meta.get("video_start_sec"),
                "video_end_sec": meta.get("video_end_sec"),
                "scenarios": scenarios,
                "device": meta.get("device"),
                "in_metadata": meta.get("in_metadata"),
                "source_fps": info.fps,
                "source_size": [info.width, info.height],
                "metadata_fps": nominal_fps,
                "metadata_size": nominal_size,
                "metadata_mismatch": mismatch,
                "container_frames": info.num_frames,
                "display_rotation_ccw_deg": info.rotation_ccw_deg,
                "codec": info.codec,
                "intrinsics_source": intrinsics.source,
                "hfov_deg": self.hfov_deg if intrinsics.source == "fov_prior" else None,
            },
        )
