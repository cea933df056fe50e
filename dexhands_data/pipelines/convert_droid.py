"""``dexdata convert-droid``: DROID episodes (raw or LeRobot) -> pseudo-hand rows in the unified dataset.

Discovery runs on the driver (cheap: paths, filters, keep ranges); every episode then goes through
:class:`~dexhands_data.droid.processor.DroidProcessor` in Ray actors via :func:`run_pipeline`, which
writes shards atomically, resumes finished shards and records failed episodes with their reasons.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..droid.processor import DroidProcessor
from ..droid.readers import discover
from .runner import RunConfig, RunSummary, run_pipeline


@dataclass
class DroidSettings:
    """Processor settings (hashed into the dataset's config_hash); see :class:`DroidProcessor`."""

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


def run_convert_droid(inp: DroidInput, settings: DroidSettings, run: RunConfig) -> RunSummary:
    """Discover the DROID episodes of ``inp`` and convert them into the dataset at ``run.out``."""
    DroidProcessor(**asdict(settings))  # validate the settings before starting workers
    refs = discover(inp.root, inp.layout, inp.success_only, inp.episode_ids, inp.keep_ranges)
    if not refs:
        raise ValueError(f"{inp.root}: no DROID episodes found (after filters)")
    return run_pipeline(refs, DroidProcessor, asdict(settings), run)
