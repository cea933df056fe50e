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

from .batched import (HandRows, PoseEntries, RelativePoses, chunk_slices, keypoint_mean, linear_map,
                      norm_first, relative_poses)

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
    ``true_m`` (S,) mean keypoint motion of the ground truth (m), ``est`` / ``gt`` (3, S, 21) motions
    (m, component-major, see :func:`~.batched.components_first`) kept for the per-episode scale
    alignment."""

    error_m: np.ndarray
    true_m: np.ndarray
    est: np.ndarray
    gt: np.ndarray



@dataclass(frozen=True)
class PairCameras:
    """Both tracks' camera motion over P frame pairs (:func:`~.batched.relative_poses`) and ``ok``
    (P,): both tracks' cameras valid at i and at j."""

    est: RelativePoses
    gt: RelativePoses
    ok: np.ndarray

    @classmethod
    def of(cls, est_T: np.ndarray | PoseEntries, gt_T: np.ndarray | PoseEntries, valid: np.ndarray,
           rows_i: np.ndarray, rows_j: np.ndarray) -> PairCameras:
        """From poses (M, 4, 4) (or their :class:`~.batched.PoseEntries`) and ``valid`` (M,) both
        tracks' cameras valid."""
        return cls(relative_poses(est_T, rows_i, rows_j), relative_poses(gt_T, rows_i, rows_j),
                   valid[rows_i] & valid[rows_j])

    def subset(self, rows: np.ndarray | slice) -> PairCameras:
        return PairCameras(self.est.subset(rows), self.gt.subset(rows), self.ok[rows])


def keypoint_motion(kp_i: np.ndarray, kp_j: np.ndarray, poses: RelativePoses | None = None) -> np.ndarray:
    """Motion (3, S, 21) m of component-major keypoints ``kp_i`` -> ``kp_j`` (3, S, 21), in camera i,
    given one relative pose camera j -> camera i per sample. Without poses, camera frame only:
    ``kp_j - kp_i``. Keeps the keypoints' dtype."""
    if poses is None:
        return kp_j - kp_i
    moved = linear_map(poses.R, kp_j, poses.t)
    moved -= kp_i
    return moved


def _variants_of_chunk(est_cam: HandRows, gt_cam: HandRows, est_for_gt: np.ndarray,
                       rows_i: np.ndarray, rows_j: np.ndarray,
                       cameras: PairCameras | None) -> dict[str, MotionSamples]:
    bi, bj = est_for_gt[rows_i], est_for_gt[rows_j]  # (P, 2)
    p, h = np.nonzero((bi >= 0) & (bi == bj))
    i, j, b = rows_i[p], rows_j[p], bi[p, h]
    gt_i, gt_j, est_i, est_j = gt_cam.take(i, h), gt_cam.take(j, h), est_cam.take(i, b), est_cam.take(j, b)
    out = {"camera_frame": _samples(keypoint_motion(est_i, est_j), keypoint_motion(gt_i, gt_j))}
    if cameras is not None:
        both = cameras.ok[p]
        if not both.all():
            p = p[both]
            gt_i, gt_j, est_i, est_j = gt_i[:, both], gt_j[:, both], est_i[:, both], est_j[:, both]
        out["with_camera"] = _samples(keypoint_motion(est_i, est_j, cameras.est.subset(p)),
                                      keypoint_motion(gt_i, gt_j, cameras.gt.subset(p)))
    return out


def _samples(est: np.ndarray, gt: np.ndarray) -> MotionSamples:
    """Samples of motions (3, S, 21), keeping those finite in both tracks (a NaN or inf anywhere
    makes the error or the true motion non-finite)."""
    error, true = keypoint_mean(norm_first(est - gt)), keypoint_mean(norm_first(gt))
    keep = np.isfinite(error) & np.isfinite(true)
    if not keep.all():
        return MotionSamples(error[keep], true[keep], est[:, keep], gt[:, keep])
    return MotionSamples(error, true, est, gt)


@dataclass
class MotionResult:
    """One stride and motion variant, per sample (S,): the error and the true motion's size (m, see
    :class:`MotionSamples`) and the error after the per-episode scale alignment (m); ``scales`` the
    episode scales (one per episode pooled)."""

    error_m: np.ndarray
    true_m: np.ndarray
    aligned_error_m: np.ndarray
    scales: list[float]

    @classmethod
    def of_chunks(cls, chunks: list[MotionSamples]) -> MotionResult:
        """The result of one episode's samples, given in chunks (the scale is fitted over all)."""
        scale = motion_scale(chunks)
        return cls(np.concatenate([c.error_m for c in chunks]), np.concatenate([c.true_m for c in chunks]),
                   np.concatenate([scale_aligned_error(c, scale) for c in chunks]), [scale])

    @classmethod
    def pooled(cls, results: list[MotionResult]) -> MotionResult:
        return cls(*(np.concatenate([getattr(r, f) for r in results])
                     for f in ("error_m", "true_m", "aligned_error_m")),
                   [x for r in results for x in r.scales])


def motion_results(est_cam: np.ndarray | HandRows, gt_cam: np.ndarray | HandRows, est_for_gt: np.ndarray,
                   rows_i: np.ndarray, rows_j: np.ndarray,
                   cameras: PairCameras | None = None) -> dict[str, MotionResult]:
    """Both variants for the pairs ``(rows_i, rows_j)`` of aligned frames, by variant name
    (``with_camera`` only when cameras are given); the hands are gathered once for both.

    est_cam / gt_cam (M, 2, 21, 3) m, camera frame of each frame (or their :class:`~.batched.HandRows`);
    ``est_for_gt`` (M, 2): the estimate's slot matched to each GT slot (-1 none,
    :class:`~.hand_metrics.HandPairs`); a sample needs the GT hand matched in both frames to the *same*
    estimated slot (a slot change breaks the action).
    With ``cameras`` of the P pairs, ``with_camera`` includes each track's own camera motion, on the
    pairs whose cameras are ok.
    """
    est_cam, gt_cam = HandRows.of(est_cam), HandRows.of(gt_cam)
    parts = []
    for c in chunk_slices(len(rows_i)):
        chunk_cameras = None if cameras is None else cameras.subset(c)
        parts.append(_variants_of_chunk(est_cam, gt_cam, est_for_gt, rows_i[c], rows_j[c], chunk_cameras))
    names = [n for n in MOTION_VARIANTS if n in parts[0]]
    return {name: MotionResult.of_chunks([part[name] for part in parts]) for name in names}


def motion_scale(chunks: list[MotionSamples]) -> float:
    """Least-squares scale of the estimated motions onto the true ones (NaN without motion); sums
    per chunk, added in float64."""
    num = sum(float(np.dot(c.est.ravel(), c.gt.ravel())) for c in chunks)
    den = sum(float(np.dot(c.est.ravel(), c.est.ravel())) for c in chunks)
    return num / den if den > 0 else float("nan")


def scale_aligned_error(samples: MotionSamples, scale: float) -> np.ndarray:
    """Per-sample error (m) after multiplying the estimated motions by ``scale``."""
    if not np.isfinite(scale):
        return np.full(len(samples.error_m), np.nan)
    return keypoint_mean(norm_first(scale * samples.est - samples.gt))
