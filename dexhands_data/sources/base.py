"""The source protocol: cheap discovery of episode references, then opening one episode.

``Source.discover(root)`` walks an input folder and returns :class:`EpisodeRef` s (paths and small
metadata, no decoding). ``Source.open(ref)`` returns an :class:`OpenedEpisode` whose frames are
decoded lazily. Ground-truth sources (EgoDex, Aria) also return hands and camera poses; estimator
sources return ``None`` there and the pipeline runs estimators instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ..geometry import Intrinsics
from ..records import CameraTrack, EpisodeRef, HandTrack, VideoFrame


@dataclass
class OpenedEpisode:
    """An opened episode.

    ``frames()`` streams :class:`VideoFrame` s (one at a time; memory independent of video length).
    ``num_frames`` is the expected stored frame count when known cheaply (for progress), else None.
    ``hands`` / ``camera``: per-stored-frame ground truth, or None to estimate.
    ``T_opencv_source``: fixed axis change from the source's camera axes to OpenCV (4x4).
    ``timestamps`` (N,) s and ``source_frame_index`` (N,): the stored frames' times and source
    indices when the source knows them without decoding (DROID: ``step / 15``); with ground-truth
    hands and camera and no frames to embed, the pipeline then never decodes a frame.
    """

    ref: EpisodeRef
    intrinsics: Intrinsics
    fps: float
    frame_iter: Any  # zero-arg callable returning Iterator[VideoFrame]
    num_frames: int | None = None
    hands: HandTrack | None = None
    camera: CameraTrack | None = None
    task: str | None = None
    embodiment: str = "human"
    gripper: np.ndarray | None = None
    T_opencv_source: np.ndarray = field(default_factory=lambda: np.eye(4))
    extra: dict[str, Any] = field(default_factory=dict)
    timestamps: np.ndarray | None = None
    source_frame_index: np.ndarray | None = None

    def frames(self) -> Iterator[VideoFrame]:
        return self.frame_iter()


class Source(Protocol):
    name: str

    def discover(self, root: str) -> list[EpisodeRef]:
        """Episode references under ``root``, sorted by episode_id. Raises ValueError for an unknown layout."""
        ...

    def open(self, ref: EpisodeRef) -> OpenedEpisode:
        """Open one episode. Raises :class:`~dexhands_data.records.EpisodeError` naming the file on bad input."""
        ...
