"""Per-episode statistics for ``meta/stats.json``: the actions of every stored step under every
convention, and the keypoints.

Each stored step (i, i + 1) is its own two-frame window, computed by the one implementation of its
convention (:mod:`dexhands_data.actions`). Dimensions :func:`~dexhands_data.actions.action_mask`
marks as not data (a missing hand, an unknown camera, non-metric translation) are skipped, so a
masked dimension never shifts a mean or a std (its count says how many values it has).
"""

from __future__ import annotations

import numpy as np

from ..actions import CONVENTIONS, action_mask, compute_actions, consecutive_pairs
from ..keypoints import ACTION_DIM
from .stats import DimStats


def step_actions(convention: str, columns: dict[str, np.ndarray], T_opencv_source: np.ndarray,
                 translation_metric: bool) -> np.ndarray:
    """(N-1, 132) float64 actions of every stored step of one episode, NaN where masked.

    ``columns``: the episode's validated frame columns (``rows.frame_columns``)."""
    n = len(columns["hand_valid"])
    if n < 2:
        return np.zeros((0, ACTION_DIM))
    pairs = consecutive_pairs(n)
    state = (columns["keypoints_cam"], columns["hand_valid"], columns["T_world_cam"], columns["camera_valid"])
    values = compute_actions(convention, *state, pairs, T_opencv_source=T_opencv_source,
                             translation_metric=translation_metric)
    mask = action_mask(columns["hand_valid"], columns["camera_valid"], pairs, translation_metric)
    return np.where(mask, values, np.nan).reshape(n - 1, ACTION_DIM)


def episode_stats(columns: dict[str, np.ndarray], T_opencv_source: np.ndarray,
                  translation_metric: bool) -> dict[str, DimStats]:
    """``action/<convention>`` (132 dims each) and ``keypoints_cam`` (126) statistics of one episode."""
    n = len(columns["hand_valid"])
    out = {f"action/{c}": DimStats.from_values(step_actions(c, columns, T_opencv_source, translation_metric))
           for c in CONVENTIONS}
    out["keypoints_cam"] = DimStats.from_values(columns["keypoints_cam"].reshape(n, -1))
    return out
