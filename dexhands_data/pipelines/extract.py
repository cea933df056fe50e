"""``dexdata extract``: egocentric episodes -> hands + camera motion -> shards.

The processor opens one episode from its source, decodes and JPEG-encodes its frames a few frames
ahead in a background thread (``prefetch.py``; the embedded JPEGs are spooled on disk), and streams
them once through the hand estimator (unless the source has ground-truth hands) and the camera
estimator (unless the source has ground-truth poses), then returns the finished
:class:`EpisodeData` for the writer. Only the episode reference crosses process boundaries.
An episode whose source knows its frame times without decoding (DROID) and that needs no frame
(ground-truth hands and camera, no frames embedded) is never decoded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np

from ..images import ImageSpool, encode_jpeg
from ..prefetch import prefetch
from ..records import CameraTrack, EpisodeData, EpisodeError, EpisodeRef, VideoFrame
from .runner import RunConfig, RunSummary, run_pipeline


@dataclass
class ExtractSettings:
    """Output-relevant settings of an extraction run (hashed into each episode's config_hash).

    ``frame_short_side``: embedded JPEG frames are resized so the shorter side has this many px;
    None stores no frames. ``hands``: an estimator name or "given" (source ground truth).
    ``camera``: "vo", "given" (source ground truth) or "none".
    """

    source: str
    source_options: dict = field(default_factory=dict)
    hands: str = "mediapipe"
    hands_options: dict = field(default_factory=dict)
    camera: str = "vo"
    camera_options: dict = field(default_factory=dict)
    frame_short_side: int | None = 224
    jpeg_quality: int = 90


class ExtractProcessor:
    """Episode processor for every source (videos, ego4d, egodex, aria, droid).

    ``hands="given"`` requires the source's ground-truth hands (an episode without them fails);
    with any other estimator name, ground-truth hands are used where the source has them.
    """

    def __init__(self, **settings):
        from ..sources.registry import create_source

        self.settings = ExtractSettings(**settings)
        self.source = create_source(self.settings.source, **self.settings.source_options)
        self._hands = None
        self._camera = None

    def config(self) -> dict:
        return asdict(self.settings)

    @property
    def hands(self):
        if self._hands is None:
            from ..hands.registry import create

            self._hands = create(self.settings.hands, **self.settings.hands_options)
        return self._hands

    @property
    def camera(self):
        if self._camera is None and self.settings.camera not in ("none", "given"):
            from ..camera.registry import create_camera_estimator

            self._camera = create_camera_estimator(self.settings.camera, **self.settings.camera_options)
        return self._camera

    def _encode(self, frame: VideoFrame) -> tuple[VideoFrame, bytes | None]:
        """Runs in the read-ahead thread with decoding: the frame and its embedded JPEG (or None)."""
        if self.settings.frame_short_side is None or frame.image is None:
            return frame, None
        return frame, encode_jpeg(frame.image, self.settings.frame_short_side, self.settings.jpeg_quality)

    def _stream(self, ep, hand_session, camera_session, spool) -> tuple[list[float], list[int]]:
        """Decode the episode once (read ahead), feeding each frame to the sessions and the spool;
        the frames' timestamps and source indices."""
        timestamps, source_index = [], []
        for frame, jpeg in prefetch(ep.frames(), self._encode):
            if frame.image is None and any(x is not None for x in (hand_session, camera_session, spool)):
                raise EpisodeError(f"{ep.ref.relpath}: the source has no video frames, but frames are "
                                   "needed (embedded images or an estimator); use --frame-size 0 "
                                   "with ground-truth hands and camera")
            timestamps.append(frame.timestamp)
            source_index.append(frame.source_index)
            if hand_session is not None:
                fh = hand_session.step(frame)
                kp2d, valid = fh.keypoints_2d, fh.valid
            else:
                i = len(timestamps) - 1
                kp2d, valid = ep.hands.keypoints_2d[i], ep.hands.valid[i]
            if camera_session is not None:
                camera_session.step(frame.image, kp2d, valid)
            if spool is not None:
                spool.append(jpeg)
        return timestamps, source_index

    def __call__(self, ref: EpisodeRef) -> EpisodeData:
        ep = self.source.open(ref)
        if self.settings.hands == "given" and ep.hands is None:
            raise EpisodeError(f"{ref.relpath}: --hands given, but source {ref.source!r} has no hand tracks")
        hand_session = None if ep.hands is not None else self.hands.session(ep.intrinsics)
        if self.settings.camera == "given" and ep.camera is None:
            raise EpisodeError(f"{ref.relpath}: --camera given, but source {ref.source!r} has no camera poses")
        use_gt_camera = ep.camera is not None and self.settings.camera in ("given", "vo")
        camera_session = None if use_gt_camera or self.camera is None else self.camera.session(ep.intrinsics)
        spool = ImageSpool() if self.settings.frame_short_side is not None else None
        try:
            if ep.timestamps is not None and hand_session is None and camera_session is None and spool is None:
                timestamps, source_index = ep.timestamps, ep.source_frame_index  # no step needs a frame
            else:
                timestamps, source_index = self._stream(ep, hand_session, camera_session, spool)
            n = len(timestamps)
            if n == 0:
                raise EpisodeError(f"{ref.relpath}: no frames decoded")
            # The camera first: it may refine the intrinsics (self-calibration), and the hands are
            # then lifted with the same K, so hands and camera share one.
            if use_gt_camera:
                camera = ep.camera
            elif camera_session is not None:
                camera = camera_session.finish()
            else:
                camera = CameraTrack.not_estimated(n)
            # (Ground-truth hands keep the source's K, which their pixels were made with.)
            refined = camera.intrinsics is not None and ep.hands is None
            intrinsics = camera.intrinsics if refined else ep.intrinsics
            hands = hand_session.finish(intrinsics) if hand_session is not None else ep.hands
            for name, track in (("hands", hands), ("camera", camera)):
                if len(track.valid) != n:
                    raise EpisodeError(f"{ref.relpath}: {name} cover {len(track.valid)} frames, video has {n}")
        except BaseException:
            if spool is not None:
                spool.close()
            raise
        return EpisodeData(
            ref=ref,
            embodiment=ep.embodiment,
            timestamps=np.asarray(timestamps, dtype=np.float64),
            source_frame_index=np.asarray(source_index, dtype=np.int64),
            intrinsics=intrinsics,
            fps=ep.fps,
            hands=hands,
            camera=camera,
            images=spool,
            gripper=ep.gripper,
            task=ep.task,
            T_opencv_source=ep.T_opencv_source,
            extra=ep.extra,
        )


def run_extract(settings: ExtractSettings, input_root: str, run: RunConfig,
                select_ids: set[str] | None = None, split: str | None = None) -> RunSummary:
    """Discover episodes of ``settings.source`` under ``input_root`` and extract them into ``run.out``.

    ``split`` assigns one split to every episode (for sources whose layout has none, e.g. videos).
    """
    from ..sources.registry import create_source

    refs = create_source(settings.source, **settings.source_options).discover(input_root)
    if select_ids is not None:
        refs = [r for r in refs if r.episode_id in select_ids]
    if split is not None:
        refs = [replace(r, split=split) for r in refs]
    if not refs:
        raise ValueError(f"{input_root}: no {settings.source} episodes found")
    return run_pipeline(refs, ExtractProcessor, asdict(settings), run)
