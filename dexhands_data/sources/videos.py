"""Source ``videos``: any folder (searched recursively) of video files, e.g. Ego4D or a phone's camera roll.

Discovery is cheap (file names only). Opening a video reads its container (fps, size, display
rotation) with PyAV and decodes the first frame; frames then stream one at a time, displayed as a
person sees them, optionally resampled to a target fps by timestamps (see :mod:`..video_io`).

Intrinsics, in pixels of the displayed grid:
1. a sidecar file next to the video, ``<video>.intrinsics.json`` (``clip.mp4.intrinsics.json``) or,
   failing that, ``<stem>.intrinsics.json`` (``clip.intrinsics.json``), holding either
   ``{"fx", "fy", "cx", "cy"}`` or ``{"K": [[...], [...], [...]]}``, optionally ``"width"`` and
   ``"height"`` of the grid the numbers refer to (default: the displayed grid). Numbers given for
   the coded (unrotated) grid of a rotated video are rotated; another size of the same aspect ratio
   is scaled. Optional lens distortion: ``"k1"``, ``"k2"`` (and ``"p1"``, ``"p2"``) of OpenCV's model
   (:mod:`..distortion`; missing ones are 0; without ``k1`` the camera is a pinhole). A value that is
   not a finite number, or a lens that folds the image inside the frame, fails the episode with a
   message naming the sidecar. ``Intrinsics.source == "sidecar"``.
2. otherwise the field-of-view prior: square pixels, centred principal point,
   fx = 0.5 W / tan(hfov / 2) with ``hfov_deg`` (default 90 degrees, the CLI's ``--hfov``);
   ``Intrinsics.source == "fov_prior"``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..distortion import distortion_from_mapping
from ..geometry import Intrinsics
from ..records import EpisodeError, EpisodeRef
from ..slugs import slug
from ..video_io import (
    VIDEO_EXTENSIONS, FrameReader, VideoInfo, expected_output_frames, is_video_path, probe_video,
)
from .base import OpenedEpisode

DEFAULT_HFOV_DEG = 90.0
_SLUG_MAX = 80


def episode_id_for(relpath: str) -> str:
    """Deterministic, file-name-safe, unique id: a slug of the relative path plus 8 hex of its SHA-1.

    ``"P01/P01_01.MP4"`` -> ``"P01__P01_01_MP4-1c0b6e33"``. The hash makes ids unique even when two
    paths slug to the same text (``"a b.mp4"`` and ``"a_b.mp4"``).
    """
    posix = Path(relpath).as_posix()
    name = slug(posix.replace("/", "__"), keep="_-", strip="_", max_len=_SLUG_MAX, default="video")
    digest = hashlib.sha1(posix.encode("utf-8")).hexdigest()[:8]
    return f"{name}-{digest}"


def sidecar_path(video_path: str) -> str | None:
    """The intrinsics sidecar of ``video_path`` if one exists (``clip.mp4.intrinsics.json`` first)."""
    for candidate in (video_path + ".intrinsics.json", os.path.splitext(video_path)[0] + ".intrinsics.json"):
        if os.path.isfile(candidate):
            return candidate
    return None


def read_sidecar_intrinsics(path: str, info: VideoInfo) -> Intrinsics:
    """Intrinsics from a sidecar JSON, expressed on the displayed grid of ``info``.

    Raises EpisodeError naming the sidecar for malformed content or an incompatible grid size.
    """
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object")
        if "K" in data:
            K = np.asarray(data["K"], dtype=np.float64)
        else:
            fx, fy, cx, cy = (float(data[k]) for k in ("fx", "fy", "cx", "cy"))
            K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
        width = int(data.get("width", info.width))
        height = int(data.get("height", info.height))
        intr = Intrinsics.from_K(K, width, height, source="sidecar", distortion=distortion_from_mapping(data))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EpisodeError(f"{path}: invalid intrinsics sidecar ({exc})") from exc
    if (width, height) == (info.width, info.height):
        return intr
    if not info.display.is_identity and (width, height) == (info.coded_width, info.coded_height):
        return info.display.apply_to_intrinsics(intr)
    if abs(width / height - info.width / info.height) < 1e-3 * info.width / info.height:
        return intr.scaled(info.width, info.height)
    raise EpisodeError(
        f"{path}: intrinsics are for a {width}x{height} grid, the video shows {info.width}x{info.height}"
    )


class VideosSource:
    """Episodes = video files under a root folder. ``name = "videos"``.

    ``hfov_deg``: horizontal field of view of the prior used when no sidecar exists.
    ``target_fps``: resample to this rate by timestamps (None keeps every frame).
    ``threads``: FFmpeg decoding threads (0 = automatic).
    """

    name = "videos"

    def __init__(self, hfov_deg: float = DEFAULT_HFOV_DEG, target_fps: float | None = None, threads: int = 0):
        if not 1.0 < hfov_deg < 179.0:
            raise ValueError(f"horizontal field of view must be in (1, 179) degrees, got {hfov_deg}")
        if target_fps is not None and not target_fps > 0:
            raise ValueError(f"target fps must be positive, got {target_fps}")
        self.hfov_deg = float(hfov_deg)
        self.target_fps = None if target_fps is None else float(target_fps)
        self.threads = int(threads)

    def config(self) -> dict[str, Any]:
        return {"source": self.name, "hfov_deg": self.hfov_deg, "target_fps": self.target_fps}

    def discover(self, root: str) -> list[EpisodeRef]:
        """Every video file under ``root`` (recursive, extensions case-insensitive; hidden entries skipped).

        Raises ValueError when ``root`` is not a folder or holds no video file.
        """
        root_path = Path(root).resolve()
        if not root_path.is_dir():
            raise ValueError(f"{root}: not a folder")
        refs: list[EpisodeRef] = []
        for dirpath, dirnames, filenames in os.walk(root_path):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if name.startswith(".") or not is_video_path(name):
                    continue
                path = Path(dirpath) / name
                relpath = path.relative_to(root_path).as_posix()
                refs.append(EpisodeRef(
                    episode_id=episode_id_for(relpath), source=self.name, path=str(path), relpath=relpath,
                    metadata={"size_bytes": path.stat().st_size},
                ))
        if not refs:
            looked_for = ", ".join(sorted(VIDEO_EXTENSIONS))
            raise ValueError(f"{root}: no video files found (looked for {looked_for})")
        refs.sort(key=lambda r: r.episode_id)
        ids = [r.episode_id for r in refs]
        if len(set(ids)) != len(ids):  # a SHA-1 prefix collision: refuse rather than merge episodes
            raise ValueError(f"{root}: duplicate episode ids derived from file paths")
        return refs

    def intrinsics_for(self, info: VideoInfo) -> Intrinsics:
        side = sidecar_path(info.path)
        if side is not None:
            return read_sidecar_intrinsics(side, info)
        return Intrinsics.from_fov(info.width, info.height, self.hfov_deg)

    def open(self, ref: EpisodeRef) -> OpenedEpisode:
        """Probe the container and return a lazily decoding episode (EpisodeError on bad input)."""
        info = probe_video(ref.path)
        intrinsics = self.intrinsics_for(info)
        return video_episode(
            ref, info, intrinsics, self.target_fps, self.threads,
            extra={
                "source_fps": info.fps,
                "container_frames": info.num_frames,
                "coded_size": [info.coded_width, info.coded_height],
                "display_rotation_ccw_deg": info.rotation_ccw_deg,
                "display_transform": [info.display.transpose, info.display.flip_x, info.display.flip_y],
                "codec": info.codec,
                "intrinsics_source": intrinsics.source,
                "hfov_deg": self.hfov_deg if intrinsics.source == "fov_prior" else None,
            },
        )


def video_episode(ref: EpisodeRef, info: VideoInfo, intrinsics: Intrinsics, target_fps: float | None,
                  threads: int, extra: dict[str, Any], task: str | None = None) -> OpenedEpisode:
    """A human-hand episode over a probed video file: frames decode lazily (resampled to
    ``target_fps`` by timestamps when given), fps and expected frame count follow from ``info``."""

    def frames():
        return iter(FrameReader(ref.path, info=info, target_fps=target_fps, threads=threads))

    return OpenedEpisode(
        ref=ref,
        intrinsics=intrinsics,
        fps=target_fps if target_fps is not None else info.fps,
        frame_iter=frames,
        num_frames=expected_output_frames(info, target_fps),
        task=task,
        embodiment="human",
        extra=extra,
    )
