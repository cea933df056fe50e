"""``dexdata compare-hands``: agreement of the stored hands of two written datasets, episode by episode.

The episodes both datasets hold (same id, same frame count) are read through :mod:`.reader`
(hand columns only) and compared with :func:`dexhands_data.hands.compare.compare_tracks`; the pooled
result weighs episodes by their matched hand pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..hands.compare import HandComparison, compare_tracks, pool
from ..records import EpisodeError, HandTrack
from .reader import iter_episodes

HAND_COLUMNS = ("keypoints_cam", "keypoints_2d", "hand_valid", "keypoint_conf", "hand_score",
                "lift_residual_px")


def read_hand_tracks(root: str | Path, episode_ids: set[str] | None = None) -> dict[str, HandTrack]:
    """The stored hands of the ``ok`` episodes of a dataset folder (local path), by episode id."""
    return {ep.episode_id: ep.hand_track() for ep in iter_episodes(Path(root), HAND_COLUMNS, episode_ids)}


@dataclass
class DatasetComparison:
    """Per-episode comparisons of the episodes two datasets share, the pooled result, and the ids
    found in only one of them."""

    episodes: dict[str, HandComparison]
    overall: HandComparison | None
    only_a: list[str]
    only_b: list[str]

    def to_dict(self) -> dict:
        return {"overall": None if self.overall is None else self.overall.to_dict(),
                "episodes": {k: v.to_dict() for k, v in sorted(self.episodes.items())},
                "only_a": self.only_a, "only_b": self.only_b}


def compare_datasets(root_a: str | Path, root_b: str | Path, episode_ids: set[str] | None = None,
                     match_fraction: float = 0.5) -> DatasetComparison:
    """Compare the hands of the episodes two dataset folders have in common (same id, same frame count)."""
    a = read_hand_tracks(root_a, episode_ids)
    b = read_hand_tracks(root_b, episode_ids)
    common = sorted(set(a) & set(b))
    eps = {}
    for eid in common:
        if len(a[eid]) != len(b[eid]):
            raise EpisodeError(f"{root_b}: episode {eid} has {len(b[eid])} frames, "
                               f"{root_a} has {len(a[eid])}")
        eps[eid] = compare_tracks(a[eid], b[eid], match_fraction)
    return DatasetComparison(eps, pool(list(eps.values())) if eps else None,
                             sorted(set(a) - set(b)), sorted(set(b) - set(a)))
