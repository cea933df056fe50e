"""Hand keypoint motion over a stride (DexWM's action step), estimate against ground truth, vectorised.

For a frame pair (i, j = the frame ``stride`` source frames later) and a hand seen in both frames of
both tracks, the motion of each keypoint is expressed in the pair's first camera (frame i):

* ``with_camera``: ``T_ci_cj @ p_j - p_i`` with ``T_ci_cj = inv(T_world_ci) @ T_world_cj``, each track
  with its *own* camera poses (what a relative action built from that dataset sees);
* ``camera_frame``: ``p_j - p_i``, each point in its own frame's camera (no camera motion at all).

The error of a pair is the mean over the 21 keypoints of ``|motion_est - motion_gt|`` (m). The
``scale_aligned`` variant multiplies the estimate's motions by one least-squares scale per episode
(``s = sum <m_est, m_gt> / sum |m_est|^2``), so a depth bias (which scales all motion) and jitter or
direction errors (which no scale removes) can be told apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .hand_metrics import norm_last

MOTION_VARIANTS = ("with_camera", "camera_frame")


def stride_pairs(source_index: np.ndarray, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows (i, j) of a sorted, unique ``source_index`` (M,) with
    ``source_index[j] == source_index[i] + stride``."""
    s = np.asarray(source_index, np.int64)
    j = np.searchsorted(s, s + stride)
    ok = j < len(s)
    ok[ok] &= s[j[ok]] == s[ok] + stride
    return np.flatnonzero(ok), j[ok]


@dataclass(frozen=True)
class MotionSamples:
    """Per (pair, hand) samples of one variant: ``error_m`` (S,) mean keypoint motion error (m),
    ``true_m`` (S,) mean keypoint motion of the ground truth (m), ``est`` / ``gt`` (S, 21, 3) motions
    (m) kept for the per-episode scale alignment."""

    error_m: np.ndarray
    true_m: np.ndarray
    est: np.ndarray
    gt: np.ndarray

    @classmethod
    def empty(cls) -> MotionSamples:
        return cls(np.zeros(0), np.zeros(0), np.zeros((0, 21, 3)), np.zeros((0, 21, 3)))


def keypoint_motion(kp_i: np.ndarray, kp_j: np.ndarray, T_world_ci: np.ndarray | None,
                    T_world_cj: np.ndarray | None) -> np.ndarray:
    """Motion (S, 21, 3) m of keypoints ``kp_i`` -> ``kp_j`` (S, 21, 3), in camera i. Without poses
    (None), camera frame only: ``kp_j - kp_i``."""
    if T_world_ci is None:
        return kp_j - kp_i
    R_i = T_world_ci[:, :3, :3]
    # camera j -> camera i: R_ij = R_i^T R_j, t_ij = R_i^T (t_j - t_i); as row vectors p R_ij^T + t_ij
    R_ij = np.swapaxes(R_i, 1, 2) @ T_world_cj[:, :3, :3]
    t_ij = np.einsum("sji,sj->si", R_i, T_world_cj[:, :3, 3] - T_world_ci[:, :3, 3])
    dtype = np.result_type(kp_i, kp_j)  # float32 keypoints stay float32: half the memory traffic
    return kp_j @ np.swapaxes(R_ij, 1, 2).astype(dtype) + (t_ij[:, None, :].astype(dtype) - kp_i)


def motion_samples(est_cam: np.ndarray, gt_cam: np.ndarray, est_for_gt: np.ndarray,
                   rows_i: np.ndarray, rows_j: np.ndarray,
                   est_T: np.ndarray | None = None, gt_T: np.ndarray | None = None,
                   camera_ok: np.ndarray | None = None) -> MotionSamples:
    """Samples for the pairs ``(rows_i, rows_j)`` of aligned frames.

    est_cam / gt_cam (M, 2, 21, 3) m, camera frame of each frame; ``est_for_gt`` (M, 2): the estimate's
    slot matched to each GT slot (-1 none, :class:`~.hand_metrics.HandPairs`); a sample needs the GT
    hand matched in both frames to the *same* estimated slot (a slot change breaks the action).
    With poses ``est_T`` / ``gt_T`` (M, 4, 4), motion includes each track's own camera motion and a
    pair also needs ``camera_ok`` (M,) at i and j.
    """
    bi, bj = est_for_gt[rows_i], est_for_gt[rows_j]  # (P, 2)
    ok = (bi >= 0) & (bi == bj)
    if camera_ok is not None:
        ok &= (camera_ok[rows_i] & camera_ok[rows_j])[:, None]
    p, h = np.nonzero(ok)
    if not len(p):
        return MotionSamples.empty()
    i, j, b = rows_i[p], rows_j[p], bi[p, h]
    gt = keypoint_motion(gt_cam[i, h], gt_cam[j, h], None if gt_T is None else gt_T[i],
                         None if gt_T is None else gt_T[j])
    est = keypoint_motion(est_cam[i, b], est_cam[j, b], None if est_T is None else est_T[i],
                          None if est_T is None else est_T[j])
    keep = np.isfinite(gt.sum(axis=(1, 2))) & np.isfinite(est.sum(axis=(1, 2)))
    if not keep.all():
        gt, est = gt[keep], est[keep]
    return MotionSamples(norm_last(est - gt).mean(axis=-1), norm_last(gt).mean(axis=-1), est, gt)


def concat(samples: list[MotionSamples]) -> MotionSamples:
    if not samples:
        return MotionSamples.empty()
    fields = ("error_m", "true_m", "est", "gt")
    return MotionSamples(*(np.concatenate([getattr(s, f) for s in samples]) for f in fields))


def motion_scale(samples: MotionSamples) -> float:
    """Least-squares scale of the estimated motions onto the true ones (NaN without motion)."""
    e, g = samples.est.reshape(-1), samples.gt.reshape(-1)
    den = float(e @ e)
    return float(e @ g) / den if den > 0 else float("nan")


def scale_aligned_error(samples: MotionSamples, scale: float) -> np.ndarray:
    """Per-sample error (m) after multiplying the estimated motions by ``scale``."""
    if not np.isfinite(scale):
        return np.full(len(samples.error_m), np.nan)
    return norm_last(scale * samples.est - samples.gt).mean(axis=-1)
