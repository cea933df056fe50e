"""Where an exported episode's frames come from, and writing them as an MP4.

Order (``docs/export.md``): the **source video** when ``--videos-from INPUT_ROOT`` is given and the
episode's video is found under it (the dataset stores source paths relative to the input root of
its run, so without that root the source is unreachable); else the **embedded frames** (the
``image`` column, JPEG at the recipe's short side); else the episode cannot be exported with video.

Intrinsics follow the frames: the stored K refers to the source frame (``width`` x ``height``), so for
embedded or even-cropped frames it is rescaled / kept to the grid actually written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..dataset.episodes import StoredEpisode, episode_extra
from ..geometry import Intrinsics
from ..images import decode_jpeg
from ..records import EpisodeError
from ..video_io import FrameReader, probe_video, write_video


@dataclass
class EpisodeFrames:
    """The stored frames of one episode, streamed (``iterate()`` yields N RGB uint8 (H, W, 3)).

    ``origin``: ``"source video <path>"`` or ``"embedded frames"``; ``intrinsics``: K on this grid;
    ``copyable``: a source video whose frames are exactly the stored ones (same count, no
    resampling, no display rotation), which can be copied verbatim instead of re-encoded.
    """

    origin: str
    width: int
    height: int
    intrinsics: Intrinsics | None
    iterate: Callable[[], Iterator[np.ndarray]]
    copyable: str | None = None


def source_video(row: dict, input_root: str | Path) -> Path | None:
    """The source video of an episodes row under ``input_root``, or None for sources without one."""
    rel = row.get("source_path")
    if not rel:
        return None
    extra = episode_extra(row)
    root = Path(input_root)
    source = row.get("source")
    if source == "egodex":
        return root / Path(rel).parent / str(extra.get("video") or Path(rel).with_suffix(".mp4").name)
    if source == "droid" and extra.get("layout") == "raw" and extra.get("camera_serial"):
        return root / rel / "recordings" / "MP4" / f"{extra['camera_serial']}.mp4"
    if source in ("videos", "ego4d"):
        return root / rel
    return None


def episode_frames(ep: StoredEpisode, row: dict, videos_from: str | None) -> EpisodeFrames:
    """The frames to export for ``ep`` (see the module docstring for the order). EpisodeError when none."""
    intr = ep.intrinsics
    video = source_video(row, videos_from) if videos_from else None
    if video is not None and video.is_file():
        info = probe_video(str(video))
        wanted = np.asarray(ep.source_frame_index, dtype=np.int64)

        def from_video() -> Iterator[np.ndarray]:
            keep = set(int(i) for i in wanted)
            count = 0
            for frame in FrameReader(str(video), info=info, check_truncation=False):
                if frame.source_index in keep:
                    count += 1
                    yield frame.image
                if frame.source_index >= wanted[-1]:
                    break
            if count != len(wanted):
                raise EpisodeError(f"{video}: holds {count} of the episode's {len(wanted)} stored frames")

        whole = (info.num_frames_exact and info.num_frames == len(wanted)
                 and np.array_equal(wanted, np.arange(len(wanted))) and info.display.is_identity)
        if intr is not None and (intr.width, intr.height) != (info.width, info.height):
            intr = intr.scaled(info.width, info.height)
        return EpisodeFrames(f"source video {video}", info.width, info.height, intr, from_video,
                             str(video) if whole else None)
    if ep.jpegs is not None and ep.jpegs.null_count == 0 and len(ep) > 0:
        first = decode_jpeg(bytes(ep.image_bytes(np.array([0]))[0]))
        h, w = first.shape[:2]

        def from_jpegs() -> Iterator[np.ndarray]:
            for data in ep.image_bytes(np.arange(len(ep))):
                yield decode_jpeg(bytes(data))

        if intr is not None and (intr.width, intr.height) != (w, h):
            intr = intr.scaled(w, h)
        return EpisodeFrames("embedded frames", w, h, intr, from_jpegs)
    where = f"; {video} not found" if video is not None else ""
    raise EpisodeError(f"episode {ep.episode_id}: no frames to export (no embedded frames and no source "
                       f"video: pass --videos-from INPUT_ROOT{where})")


def even_crop(frames: EpisodeFrames) -> EpisodeFrames:
    """Drop a last odd row / column (H.264 4:2:0 needs even sizes); K is unchanged by a right/bottom crop."""
    w, h = frames.width - frames.width % 2, frames.height - frames.height % 2
    if (w, h) == (frames.width, frames.height):
        return frames
    inner = frames.iterate
    intr = frames.intrinsics
    if intr is not None:
        intr = replace(intr, width=w, height=h)
    return EpisodeFrames(frames.origin, w, h, intr, lambda: (f[:h, :w] for f in inner()), None)


def write_mp4(path: str | Path, frames: Iterator[np.ndarray], fps: float, expected: int) -> int:
    """Encode RGB frames as H.264 (yuv420p, CRF 18) at ``fps``; EpisodeError unless exactly ``expected``."""
    count = 0

    def counted() -> Iterator[np.ndarray]:
        nonlocal count
        for f in frames:
            count += 1
            yield f

    write_video(str(path), counted(), fps=fps, container_format="mp4")
    if count != expected:
        raise EpisodeError(f"{path}: wrote {count} frames, the episode has {expected}")
    return count
