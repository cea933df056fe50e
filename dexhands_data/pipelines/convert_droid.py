"""``dexdata convert-droid``: DROID episodes (raw or LeRobot) -> pseudo-hand rows, through the one
extract pipeline.

DROID is one more source (:class:`~dexhands_data.sources.droid.source.DroidSource`): discovery runs
on the driver (paths, filters, keep ranges), every episode then goes through
:class:`~dexhands_data.pipelines.extract.ExtractProcessor` with ground-truth hands and camera, with
its read-ahead decoding and on-disk JPEG spooling when frames are embedded, and without decoding
anything when they are not.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .extract import ExtractSettings, run_extract
from .runner import RunConfig, RunSummary


@dataclass
class DroidSettings:
    """Conversion settings; see :class:`~dexhands_data.sources.droid.source.DroidSource`.
    ``short_side`` None (or ``embed_frames`` False) stores no frames."""

    pseudo_hand: str = "oriented"
    camera: str = "auto"
    embed_frames: bool = True
    short_side: int | None = 224
    jpeg_quality: int = 90
    calibration: str | None = None


@dataclass
class DroidInput:
    """Where the episodes are and which ones to take."""

    root: str
    layout: str | None = None  # "raw", "lerobot" or None to detect
    success_only: bool = False
    episode_ids: list[str] | None = None
    keep_ranges: str | None = None


def droid_extract_settings(inp: DroidInput, settings: DroidSettings) -> ExtractSettings:
    """The extract settings of a DROID conversion: source ``droid`` with its options, ground-truth
    hands and camera."""
    options = {"pseudo_hand": settings.pseudo_hand, "camera": settings.camera,
               "calibration": settings.calibration, **{k: v for k, v in asdict(inp).items() if k != "root"}}
    return ExtractSettings(
        source="droid", source_options=options, hands="given", camera="given",
        frame_short_side=settings.short_side if settings.embed_frames else None,
        jpeg_quality=settings.jpeg_quality,
    )


def run_convert_droid(inp: DroidInput, settings: DroidSettings, run: RunConfig) -> RunSummary:
    """Discover the DROID episodes of ``inp`` and convert them into the dataset at ``run.out``."""
    return run_extract(droid_extract_settings(inp, settings), inp.root, run)
