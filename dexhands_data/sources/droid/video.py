"""PyAV access to DROID camera videos: frame counts from the header and decoding selected frames.

A DROID video has one frame per trajectory step (15 Hz): in a whole-file video (raw release, LeRobot
v2.1) frame k is the k-th decoded frame, whatever rate the container declares. LeRobot v3.0
concatenates episodes in one file; an episode is the span ``[from_timestamp, to_timestamp)`` and its
frame k is the one presented at ``from_timestamp + k / fps``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

import av
import numpy as np

from ...records import EpisodeError


@dataclass(frozen=True)
class VideoSpan:
    """One episode's frames in a video file: the whole file, or a v3.0 time span (seconds)."""

    path: str
    fps: float = 15.0
    from_timestamp: float | None = None
    to_timestamp: float | None = None

    def probe(self) -> tuple[int, int, int]:
        """``(frames, width, height)`` of the episode without decoding.

        Frames come from the span (v3.0), else from the MP4 sample table (a few hundred bytes read,
        ~100x cheaper than opening the container), else from PyAV's stream header.
        """
        spanned = self.from_timestamp is not None and self.to_timestamp is not None
        info = mp4_video_info(self.path)
        if info is None:
            info = self._probe_av()
        frames, width, height = info
        if spanned:
            frames = int(round((self.to_timestamp - self.from_timestamp) * self.fps))
        return frames, width, height

    def _probe_av(self) -> tuple[int, int, int]:
        try:
            with av.open(self.path, metadata_errors="replace") as container:
                stream = container.streams.video[0]
                width, height = int(stream.codec_context.width), int(stream.codec_context.height)
                frames = int(stream.frames) or sum(1 for p in container.demux(stream) if p.size > 0)
        except (OSError, av.FFmpegError, IndexError, AttributeError) as e:  # AttributeError: no codec context
            raise EpisodeError(f"{self.path}: cannot read the video: {e}") from e
        return frames, width, height

    def frames(self, indices: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(k, rgb)`` for the sorted episode frame indices ``indices`` (RGB uint8 H x W x 3)."""
        wanted = np.asarray(indices, dtype=np.int64)
        if wanted.size == 0:
            return
        spanned = self.from_timestamp is not None
        start = self.from_timestamp or 0.0
        last = int(wanted[-1])
        pos = 0
        try:
            with av.open(self.path, metadata_errors="replace") as container:
                if not container.streams.video:
                    raise EpisodeError(f"{self.path}: no video stream")
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                if spanned and start > 0:
                    target = int(start / stream.time_base)
                    container.seek(target, stream=stream, backward=True, any_frame=False)
                for count, frame in enumerate(container.decode(stream)):
                    if spanned:
                        if frame.pts is None:
                            raise EpisodeError(f"{self.path}: frame without a timestamp")
                        k = int(round((float(frame.pts * stream.time_base) - start) * self.fps))
                    else:
                        k = count
                    if k < 0:
                        continue
                    if k > last:
                        break
                    if wanted[pos] < k:
                        raise EpisodeError(f"{self.path}: frame {int(wanted[pos])} missing from the stream")
                    if wanted[pos] == k:
                        yield k, frame.to_ndarray(format="rgb24")
                        pos += 1
        except (OSError, av.FFmpegError) as e:
            raise EpisodeError(f"{self.path}: decoding failed: {e}") from e
        if pos < wanted.size:
            raise EpisodeError(f"{self.path}: stream ended before frame {int(wanted[pos])}")


# ----------------------------------------------------------------------------- MP4 sample table

_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}


def _boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[bytes, int, int]]:
    """ISO-BMFF boxes of ``data[start:end]`` as (type, payload start, box end)."""
    end = len(data) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if pos + 16 > end:
                return
            size = struct.unpack_from(">Q", data, pos + 8)[0]
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            return
        yield kind, pos + header, pos + size
        pos += size


def _read_moov(path: str) -> bytes | None:
    with open(path, "rb") as f:
        while True:
            head = f.read(8)
            if len(head) < 8:
                return None
            size, kind = struct.unpack(">I4s", head)
            header = 8
            if size == 1:
                size = struct.unpack(">Q", f.read(8))[0]
                header = 16
            elif size == 0:
                return f.read() if kind == b"moov" else None
            if size < header:
                return None
            if kind == b"moov":
                return head + (struct.pack(">Q", size) if header == 16 else b"") + f.read(size - header)
            f.seek(size - header, 1)


def mp4_video_info(path: str) -> tuple[int, int, int] | None:
    """``(samples, width, height)`` of the first video track of an MP4, or None if it cannot be parsed."""
    try:
        moov = _read_moov(path)
    except OSError:
        return None
    if moov is None:
        return None
    for kind, a, b in _boxes(moov):
        if kind != b"moov":
            continue
        for trak, ta, tb in _boxes(moov, a, b):
            if trak != b"trak":
                continue
            info = _video_track(moov, ta, tb)
            if info is not None:
                return info
    return None


def _video_track(data: bytes, start: int, end: int) -> tuple[int, int, int] | None:
    found: dict[bytes, tuple[int, int]] = {}

    def walk(a: int, b: int) -> None:
        for kind, pa, pb in _boxes(data, a, b):
            if kind in _CONTAINERS:
                walk(pa, pb)
            elif kind in (b"hdlr", b"stsz", b"stz2", b"stsd"):
                found[kind] = (pa, pb)

    walk(start, end)
    if b"hdlr" not in found or data[found[b"hdlr"][0] + 8:found[b"hdlr"][0] + 12] != b"vide":
        return None
    if b"stsd" not in found or (b"stsz" not in found and b"stz2" not in found):
        return None
    size_box = found.get(b"stsz") or found[b"stz2"]
    samples = struct.unpack_from(">I", data, size_box[0] + 8)[0]
    entry = found[b"stsd"][0] + 8  # version/flags + entry_count
    width, height = struct.unpack_from(">HH", data, entry + 8 + 24)
    return int(samples), int(width), int(height)
