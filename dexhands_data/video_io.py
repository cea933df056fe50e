"""PyAV video decoding shared by the sources and the loader: probing, display rotation, streaming, resampling.

Frames come out as RGB uint8 (H, W, 3) **as a person sees them**: the container's display matrix
(or legacy ``rotate`` tag) is applied exactly as FFmpeg's ``-autorotate`` does, so ``keypoints_2d``
and intrinsics refer to that displayed grid. Timestamps are seconds from the first decoded frame.

Decoding streams one frame at a time (memory independent of the video length) with FFmpeg frame
threading. Problems are raised as :class:`~dexhands_data.records.EpisodeError` naming the file:
an empty file, not a video, no video stream, a stream that fails to decode, and a **truncated
stream**: when fewer frames decode than the container announces (beyond a small tolerance) the
episode fails with ``"decoded K of ~N frames"``, because a silently shortened episode looks complete.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import av
import numpy as np

from .distortion import Distortion
from .geometry import Intrinsics
from .records import EpisodeError, VideoFrame

#: File extensions treated as videos (compared lower-case).
VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts", ".3gp",
     ".flv", ".wmv", ".ogv"}
)

#: Frames a container may announce but not deliver before the stream counts as truncated
#: (edit lists and B-frame priming legitimately drop a frame or two).
TRUNCATION_TOLERANCE_FRAMES = 2
#: Relative tolerance when the frame count is only estimated from the duration.
TRUNCATION_TOLERANCE_ESTIMATED = 0.05


def is_video_path(path: str) -> bool:
    """True when the file name has a known video extension (case-insensitive)."""
    return os.path.splitext(path)[1].lower() in VIDEO_EXTENSIONS


# ----------------------------------------------------------------------------- display transform


@dataclass(frozen=True)
class DisplayTransform:
    """Signed axis permutation from the decoded (coded) pixel grid to the displayed one.

    Applied in this order: ``transpose`` (swap u and v), then mirror columns (``flip_x``) and rows
    (``flip_y``). Pixel-centre convention: a flip maps u to W - 1 - u. A flip without a matching
    second flip is a mirror image (a left-handed camera frame); real phone videos only rotate.
    """

    transpose: bool = False
    flip_x: bool = False
    flip_y: bool = False

    @property
    def is_identity(self) -> bool:
        return not (self.transpose or self.flip_x or self.flip_y)

    @property
    def rotation_ccw_deg(self) -> int | None:
        """Counter-clockwise rotation in degrees if the transform is a pure rotation, else None."""
        table = {(False, False, False): 0, (True, False, True): 90,
                 (False, True, True): 180, (True, True, False): 270}
        return table.get((self.transpose, self.flip_x, self.flip_y))

    def apply(self, image: np.ndarray) -> np.ndarray:
        """The displayed image (a contiguous copy when anything changes)."""
        if self.is_identity:
            return image
        out = np.swapaxes(image, 0, 1) if self.transpose else image
        if self.flip_x:
            out = out[:, ::-1]
        if self.flip_y:
            out = out[::-1]
        return np.ascontiguousarray(out)

    def displayed_size(self, coded_width: int, coded_height: int) -> tuple[int, int]:
        return (coded_height, coded_width) if self.transpose else (coded_width, coded_height)

    def apply_to_pixels(self, uv: np.ndarray, coded_width: int, coded_height: int) -> np.ndarray:
        """Coded-grid pixels (..., 2) to displayed-grid pixels."""
        uv = np.asarray(uv, dtype=np.float64)
        w, h = self.displayed_size(coded_width, coded_height)
        out = uv[..., ::-1].copy() if self.transpose else uv.copy()
        if self.flip_x:
            out[..., 0] = (w - 1) - out[..., 0]
        if self.flip_y:
            out[..., 1] = (h - 1) - out[..., 1]
        return out

    def apply_to_intrinsics(self, intr: Intrinsics) -> Intrinsics:
        """Intrinsics of the coded grid re-expressed on the displayed grid (same physical camera)."""
        fx, fy, cx, cy, w, h = intr.fx, intr.fy, intr.cx, intr.cy, intr.width, intr.height
        d = intr.distortion
        # radial terms do not change; the tangential ones follow the axes (x <-> y swaps p1 <-> p2,
        # x -> -x flips p2, y -> -y flips p1)
        k1, k2, p1, p2 = d.to_list() if d is not None else (0.0, 0.0, 0.0, 0.0)
        if self.transpose:
            fx, fy, cx, cy, w, h = fy, fx, cy, cx, h, w
            p1, p2 = p2, p1
        if self.flip_x:
            cx = (w - 1) - cx
            p2 = -p2
        if self.flip_y:
            cy = (h - 1) - cy
            p1 = -p1
        return Intrinsics(fx, fy, cx, cy, w, h, intr.source,
                          None if d is None else Distortion(k1, k2, p1, p2))


def display_transform_from_matrix(matrix: np.ndarray) -> DisplayTransform:
    """FFmpeg's autorotate decision (``fftools``) for a 3x3 int32 display matrix (9 values, 16.16).

    Raises ValueError for a rotation that is not a multiple of 90 degrees.
    """
    m = np.asarray(matrix, dtype=np.float64).reshape(9)
    scale0, scale1 = math.hypot(m[0], m[3]), math.hypot(m[1], m[4])
    if scale0 == 0 or scale1 == 0:
        return DisplayTransform()
    rotation_get = -math.degrees(math.atan2(m[1] / scale1, m[0] / scale0))  # av_display_rotation_get
    theta = -round(rotation_get)
    theta -= 360 * math.floor(theta / 360 + 0.9 / 360)
    if abs(theta - 90) < 1:
        return DisplayTransform(True, False, False) if m[3] > 0 else DisplayTransform(True, True, False)
    if abs(theta - 180) < 1:
        return DisplayTransform(False, m[0] < 0, m[4] < 0)
    if abs(theta - 270) < 1:
        return DisplayTransform(True, True, True) if m[3] < 0 else DisplayTransform(True, False, True)
    if abs(theta) > 1:
        raise ValueError(f"display rotation of {theta:.1f} degrees is not a multiple of 90")
    return DisplayTransform(False, False, m[4] < 0)


def display_transform_from_rotate_tag(clockwise_deg: int) -> DisplayTransform:
    """The legacy ``rotate`` metadata tag (clockwise degrees to apply for display)."""
    table = {0: DisplayTransform(), 90: DisplayTransform(True, True, False),
             180: DisplayTransform(False, True, True), 270: DisplayTransform(True, False, True)}
    key = clockwise_deg % 360
    if key not in table:
        raise ValueError(f"rotate tag of {clockwise_deg} degrees is not a multiple of 90")
    return table[key]


def _frame_display_transform(frame: av.VideoFrame, stream: av.video.stream.VideoStream) -> DisplayTransform:
    for sd in frame.side_data:
        if str(sd.type).endswith("DISPLAYMATRIX"):
            return display_transform_from_matrix(np.frombuffer(bytes(sd)[:36], dtype="<i4"))
    tag = stream.metadata.get("rotate")
    return display_transform_from_rotate_tag(int(float(tag))) if tag else DisplayTransform()


# ----------------------------------------------------------------------------- probing


@dataclass(frozen=True)
class VideoInfo:
    """Container facts of one video. Sizes are of the displayed grid unless named ``coded_``.

    ``num_frames`` is the container's frame count (``num_frames_exact``) or an estimate from the
    duration and average rate, or None when neither is known. ``fps`` is the average frame rate.
    """

    path: str
    width: int
    height: int
    coded_width: int
    coded_height: int
    fps: float
    num_frames: int | None
    num_frames_exact: bool
    duration_s: float | None
    codec: str
    display: DisplayTransform = field(default_factory=DisplayTransform)

    @property
    def rotation_ccw_deg(self) -> int | None:
        return self.display.rotation_ccw_deg


def _open_container(path: str) -> av.container.InputContainer:
    if not os.path.isfile(path):
        raise EpisodeError(f"{path}: file not found")
    if os.path.getsize(path) == 0:
        raise EpisodeError(f"{path}: empty file (0 bytes)")
    try:
        # metadata tags that are not UTF-8 (some cameras, damaged files) must not make a video unreadable
        return av.open(path, mode="r", metadata_errors="replace")
    except av.error.FFmpegError as exc:
        raise EpisodeError(f"{path}: not a readable video container ({exc.strerror or exc})") from exc


def _video_stream(container: av.container.InputContainer, path: str) -> av.video.stream.VideoStream:
    if not container.streams.video:
        raise EpisodeError(f"{path}: no video stream")
    return container.streams.video[0]


def _stream_fps(stream: av.video.stream.VideoStream) -> float | None:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate is not None and float(rate) > 0:
            return float(rate)
    return None


def probe_video(path: str) -> VideoInfo:
    """Read container metadata and decode the first frame (rotation lives in frame side data).

    Raises EpisodeError naming ``path`` when the file is empty, not a video, has no video stream,
    or no frame decodes.
    """
    container = _open_container(path)
    try:
        stream = _video_stream(container, path)
        fps = _stream_fps(stream)
        if fps is None:
            raise EpisodeError(f"{path}: video stream has no frame rate")
        try:
            first = next(container.decode(stream), None)
        except av.error.FFmpegError as exc:
            raise EpisodeError(f"{path}: first frame does not decode ({exc.strerror or exc})") from exc
        if first is None:
            raise EpisodeError(f"{path}: video stream holds no decodable frame")
        try:
            display = _frame_display_transform(first, stream)
        except ValueError as exc:
            raise EpisodeError(f"{path}: {exc}") from exc
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        if stream.frames and stream.frames > 0:
            num_frames, exact = int(stream.frames), True
        elif duration is not None:
            num_frames, exact = int(round(duration * fps)), False
        else:
            num_frames, exact = None, False
        width, height = display.displayed_size(first.width, first.height)
        return VideoInfo(path, width, height, first.width, first.height, fps, num_frames, exact, duration,
                         stream.codec_context.name, display)
    finally:
        container.close()


# ----------------------------------------------------------------------------- resampling

#: Seconds within which two frames count as equally near a target (ties go to the earlier frame).
_TIE_EPS = 1e-9


def select_nearest_frames(
    timestamps: np.ndarray, fps: float, frame_duration: float | None = None
) -> np.ndarray:
    """Indices of the frames nearest to t_k = k / fps (k = 0, 1, ...), without duplicates.

    ``timestamps`` (N,) are strictly increasing seconds from 0. A target beyond the last frame
    counts only while it lies within half a source frame of it (``frame_duration``, default the
    median spacing). Ties go to the earlier frame. The streaming reader makes the same choices.
    """
    t = np.asarray(timestamps, dtype=np.float64)
    if t.size == 0:
        return np.zeros(0, np.int64)
    if frame_duration is None:
        frame_duration = float(np.median(np.diff(t))) if t.size > 1 else 1.0 / fps
    end = t[-1] + 0.5 * frame_duration
    targets = np.arange(int(math.floor(end * fps + 1e-9)) + 1) / fps
    targets = targets[targets <= end]
    right = np.clip(np.searchsorted(t, targets, side="left"), 0, t.size - 1)
    left = np.clip(right - 1, 0, t.size - 1)
    pick = np.where((targets - t[left]) <= (t[right] - targets) + _TIE_EPS, left, right)
    pick = np.where(t[right] <= targets, right, pick)  # targets past the last frame
    return np.unique(pick)


class _NearestSelector:
    """Streaming twin of :func:`select_nearest_frames`: feed frames in order, get the kept ones."""

    def __init__(self, fps: float, frame_duration: float):
        self.fps = fps
        self.frame_duration = frame_duration
        self.k = 0
        self.prev: VideoFrame | None = None
        self.last_emitted = -1

    def _target(self) -> float:
        return self.k / self.fps

    def _emit(self, frame: VideoFrame, out: list[VideoFrame]) -> None:
        if frame.source_index != self.last_emitted:
            out.append(frame)
            self.last_emitted = frame.source_index

    def push(self, frame: VideoFrame) -> list[VideoFrame]:
        out: list[VideoFrame] = []
        while self._target() <= frame.timestamp:
            tk = self._target()
            prev = self.prev
            prev_nearer = prev is not None and (tk - prev.timestamp) <= (frame.timestamp - tk) + _TIE_EPS
            pick = prev if prev_nearer else frame
            self._emit(pick, out)
            self.k += 1
        self.prev = frame
        return out

    def flush(self) -> list[VideoFrame]:
        out: list[VideoFrame] = []
        if self.prev is not None and self._target() <= self.prev.timestamp + 0.5 * self.frame_duration:
            self._emit(self.prev, out)
        return out


def expected_output_frames(info: VideoInfo, target_fps: float | None) -> int | None:
    """Stored-frame count for ``info`` at ``target_fps`` assuming a constant source rate."""
    if info.num_frames is None:
        return None
    if target_fps is None:
        return info.num_frames
    t = np.arange(info.num_frames) / info.fps
    return int(select_nearest_frames(t, target_fps, 1.0 / info.fps).size)


# ----------------------------------------------------------------------------- streaming reader


class FrameReader:
    """Iterate the displayed RGB frames of one video, optionally resampled to ``target_fps``.

    Each :class:`VideoFrame` has ``index`` (among the frames yielded), ``source_index`` (decode
    order in the stream) and ``timestamp`` (s, from the first frame's pts). Frames whose pts does
    not increase are skipped and counted in ``skipped_non_monotonic``. After a full pass,
    ``decoded`` holds the number of decoded frames. The reader can be iterated again (it reopens).
    """

    def __init__(self, path: str, info: VideoInfo | None = None, target_fps: float | None = None,
                 threads: int = 0, check_truncation: bool = True):
        if target_fps is not None and not target_fps > 0:
            raise ValueError(f"target fps must be positive, got {target_fps}")
        self.path = path
        self.info = info if info is not None else probe_video(path)
        self.target_fps = target_fps
        self.threads = threads
        self.check_truncation = check_truncation
        self.decoded = 0
        self.skipped_non_monotonic = 0

    def __iter__(self) -> Iterator[VideoFrame]:
        info = self.info
        selector = _NearestSelector(self.target_fps, 1.0 / info.fps) if self.target_fps else None
        self.decoded = 0
        self.skipped_non_monotonic = 0
        out_index = 0
        container = _open_container(self.path)
        try:
            stream = _video_stream(container, self.path)
            stream.thread_type = "AUTO"
            stream.codec_context.thread_count = self.threads
            t0: float | None = None
            last_t = -math.inf
            decoder = container.decode(stream)
            while True:
                try:
                    frame = next(decoder, None)
                except av.error.FFmpegError as exc:
                    raise EpisodeError(
                        f"{self.path}: decode error after frame {self.decoded} of ~{info.num_frames} "
                        f"({exc.strerror or exc})"
                    ) from exc
                if frame is None:
                    break
                source_index = self.decoded
                self.decoded += 1
                if frame.pts is not None:
                    t_abs = float(frame.pts * frame.time_base)
                else:
                    t_abs = source_index / info.fps
                if t0 is None:
                    t0 = t_abs
                t = t_abs - t0
                if t <= last_t:
                    self.skipped_non_monotonic += 1
                    continue
                last_t = t
                image = info.display.apply(frame.to_ndarray(format="rgb24"))
                vf = VideoFrame(index=-1, source_index=source_index, timestamp=t, image=image)
                for kept in (selector.push(vf) if selector else [vf]):
                    kept.index = out_index
                    out_index += 1
                    yield kept
            if selector:
                for kept in selector.flush():
                    kept.index = out_index
                    out_index += 1
                    yield kept
        finally:
            container.close()
        if self.check_truncation:
            self._check_complete()

    def _check_complete(self) -> None:
        expected = self.info.num_frames
        if not expected:
            return
        if self.info.num_frames_exact:
            tolerance = TRUNCATION_TOLERANCE_FRAMES
        else:
            tolerance = max(TRUNCATION_TOLERANCE_FRAMES, int(TRUNCATION_TOLERANCE_ESTIMATED * expected))
        if self.decoded < expected - tolerance:
            raise EpisodeError(
                f"{self.path}: truncated stream: decoded {self.decoded} of ~{expected} frames"
            )


def read_frames_at(
    path: str, source_indices: list[int] | np.ndarray, info: VideoInfo | None = None
) -> list[np.ndarray]:
    """Displayed RGB frames at the given source (decode-order) indices, one sequential pass.

    For the loader and tools that need a few frames; decodes up to the largest index only.
    Raises EpisodeError when an index lies beyond the stream's end.
    """
    wanted = sorted(set(int(i) for i in source_indices))
    if not wanted:
        return []
    reader = FrameReader(path, info=info, check_truncation=False)
    found: dict[int, np.ndarray] = {}
    for frame in reader:
        if frame.source_index in wanted:
            found[frame.source_index] = frame.image
        if frame.source_index >= wanted[-1]:
            break
    missing = [i for i in wanted if i not in found]
    if missing:
        raise EpisodeError(f"{path}: frame index {missing[0]} is beyond the last decoded frame")
    return [found[int(i)] for i in source_indices]


# ----------------------------------------------------------------------------- writing


def write_video(path: str, frames, fps: float = 25.0, rotation_ccw_deg: int = 0, hflip: bool = False,
                vflip: bool = False, gop: int = 10, crf: int = 18, container_format: str | None = None) -> None:
    """Encode RGB uint8 frames (H, W, 3; even sizes) as H.264 with a display matrix.

    ``rotation_ccw_deg`` and the flips are written as the container's display matrix (PyAV's
    ``set_display_rotation``): a player, and :class:`FrameReader`, shows each frame rotated
    counter-clockwise by that angle, then mirrored. A short GOP keeps seeking cheap.
    ``container_format`` (e.g. ``"mp4"``) is needed when the file name does not end in the format.
    """
    from fractions import Fraction

    container = av.open(path, mode="w", format=container_format)
    try:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "g": str(gop)}
        if rotation_ccw_deg or hflip or vflip:
            stream.set_display_rotation(rotation_ccw_deg, hflip=hflip, vflip=vflip)
        for i, rgb in enumerate(frames):
            if i == 0:
                stream.height, stream.width = rgb.shape[:2]
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    finally:
        container.close()
