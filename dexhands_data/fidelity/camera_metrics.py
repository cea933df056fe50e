"""Camera motion of an estimate against ground truth over frame pairs, vectorised.

Poses are ``T_world_cam`` (M, 4, 4), OpenCV camera to each track's own world (the two worlds need
not agree: only relative motion ``T_ci_cj = inv(T_world_ci) @ T_world_cj`` is compared, see
:func:`~.batched.relative_poses`).

* rotation error (deg): angle of ``R_est^T R_gt`` of the relative rotations;
* translation direction error (deg): angle between the relative translations (in camera i), only
  where the true translation exceeds ``min_translation_m`` (1 cm: below it the direction is noise).
  An estimate that holds still on such a pair (|t_est| = 0, e.g. a visual odometry that judged the
  pair a pure rotation) has no direction and scores 90 deg, the error of a direction guessed at
  random, rather than dropping out (or, with the 4 x 4 product, scoring the direction of rounding
  noise);
* scale error: ``|t_est| / |t_gt| - 1`` on the same pairs, meaningful only for an estimate that
  claims metric translation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .batched import (PoseEntries, RelativePoses, angle_between_deg, norm_first, relative_poses,
                      rotation_angles_deg)

MIN_TRANSLATION_M = 0.01


@dataclass(frozen=True)
class CameraSamples:
    """Per-pair samples (P = pairs with both cameras valid in both tracks): ``rotation_deg`` (P,);
    ``direction_deg`` (Q,) and ``scale_ratio`` (Q,) on the Q pairs whose true translation exceeds
    the threshold; ``true_rotation_deg`` (P,) and ``true_translation_m`` (P,) the true motion's size."""

    rotation_deg: np.ndarray
    direction_deg: np.ndarray
    scale_ratio: np.ndarray
    true_rotation_deg: np.ndarray
    true_translation_m: np.ndarray

    @classmethod
    def empty(cls) -> CameraSamples:
        return cls(*(np.zeros(0) for _ in range(5)))


def camera_samples(est_T: np.ndarray, gt_T: np.ndarray, valid: np.ndarray, rows_i: np.ndarray,
                   rows_j: np.ndarray, min_translation_m: float = MIN_TRANSLATION_M) -> CameraSamples:
    """Samples for the pairs ``(rows_i, rows_j)``; ``valid`` (M,) both tracks' cameras valid."""
    ok = valid[rows_i] & valid[rows_j]
    i, j = rows_i[ok], rows_j[ok]
    return pair_samples(relative_poses(est_T, i, j), relative_poses(gt_T, i, j), min_translation_m)


def pair_samples(est: RelativePoses, gt: RelativePoses,
                 min_translation_m: float = MIN_TRANSLATION_M) -> CameraSamples:
    """Samples of the pairs whose relative poses both tracks give (all of them count)."""
    if not len(gt):
        return CameraSamples.empty()
    rot = angle_between_deg(est.R, gt.R)
    ne, ng = norm_first(est.t), norm_first(gt.t)
    moved = ng > min_translation_m
    te, tg = est.t[:, moved], gt.t[:, moved]
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = (te * tg).sum(axis=0) / (ne[moved] * ng[moved])
        direction = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
        direction[ne[moved] == 0] = 90.0
        ratio = ne[moved] / ng[moved]
    return CameraSamples(rot, direction, ratio, rotation_angles_deg(gt.R), ng)


def concat(samples: list[CameraSamples]) -> CameraSamples:
    if not samples:
        return CameraSamples.empty()
    fields = ("rotation_deg", "direction_deg", "scale_ratio", "true_rotation_deg", "true_translation_m")
    return CameraSamples(*(np.concatenate([getattr(s, f) for s in samples]) for f in fields))


def end_rotation_error_deg(est_T: np.ndarray | PoseEntries, gt_T: np.ndarray | PoseEntries,
                           valid: np.ndarray) -> tuple[float, float]:
    """Rotation error (deg) accumulated from the first to the last frame with both cameras valid, and
    the true rotation over that span (deg). NaN when fewer than two such frames. Poses (M, 4, 4) or
    their :class:`~.batched.PoseEntries`."""
    rows = np.flatnonzero(valid)
    if len(rows) < 2:
        return float("nan"), float("nan")
    i, j = rows[:1], rows[-1:]
    est, gt = relative_poses(est_T, i, j), relative_poses(gt_T, i, j)
    return float(angle_between_deg(est.R, gt.R)[0]), float(rotation_angles_deg(gt.R)[0])
