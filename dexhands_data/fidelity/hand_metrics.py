"""Per-frame hand matching and the hand figures of one reference track against another, vectorised.

Arrays follow the data contract: ``keypoints_2d`` (N, 2, 21, 2) px of the source frame,
``keypoints_cam`` (N, 2, 21, 3) m in each frame's OpenCV camera, ``valid`` (N, 2), slots left then
right. "Reference" is the track judged against (ground truth for ``score``, track A for
``compare-hands``); "other" is the track being judged.

Matching is by image position, not by slot, so a left/right mix-up is measured instead of turning
into huge keypoint errors: in each frame the candidate pairs are (reference slot, other slot) with
both hands valid and a mean 2D keypoint distance of at most ``match_fraction`` times the reference
hand's 2D size (diagonal of its keypoint box); the closest candidate is taken first, then the
complementary pair if it is a candidate too (the greedy rule on a 2 x 2 problem).
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from dataclasses import dataclass

import numpy as np

from ..keypoints import WRIST
from .batched import (HandRows, chunk_slices, components_first, keypoint_mean, linear_map, norm_first,
                      norm_last)

#: A GT hand counts as "in view" when its wrist and at least this share of its keypoints project
#: inside the image, in front of the camera.
IN_VIEW_FRACTION = 0.5


@dataclass(frozen=True)
class HandPairs:
    """Matched hands, one row per pair: frame (P,), reference slot (P,), other slot (P,).
    ``other_for_ref`` (N, 2) is the other slot matched to each reference slot, -1 where none."""

    frame: np.ndarray
    ref_slot: np.ndarray
    other_slot: np.ndarray
    other_for_ref: np.ndarray

    def __len__(self) -> int:
        return int(self.frame.shape[0])


@contextlib.contextmanager
def _quiet_nan():
    """Silence numpy's "All-NaN slice" / "Mean of empty slice" warnings (invalid hands are NaN)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _with_nan_fallback(fast: np.ndarray, slow, rows: np.ndarray) -> np.ndarray:
    """``fast`` (computed assuming finite input) with its NaN entries at ``rows`` (bool mask) replaced
    by ``slow(mask)``: hands with only some keypoints missing take the NaN-aware path."""
    redo = np.isnan(fast) & rows
    if redo.any():
        with _quiet_nan():
            fast[redo] = slow(redo)
    return fast


def _keypoint_extent(kp: np.ndarray) -> np.ndarray:
    """max - min over the keypoint axis of (..., K, C) -> (..., C), NaN where a keypoint is NaN, as
    segment reductions of the flat (-1, C) array (a reduction over the middle axis is ~10x slower)."""
    k, c = kp.shape[-2], kp.shape[-1]
    flat = np.ascontiguousarray(kp).reshape(-1, c)
    starts = np.arange(0, flat.shape[0], k)
    out = np.maximum.reduceat(flat, starts, axis=0) - np.minimum.reduceat(flat, starts, axis=0)
    return out.reshape(kp.shape[:-2] + (c,))


def hand_size_2d(keypoints_2d: np.ndarray) -> np.ndarray:
    """Diagonal (px) of each hand's keypoint box: (..., 21, 2) -> (...); keypoints that are NaN are
    left out, an all-NaN hand gives NaN."""
    kp = np.asarray(keypoints_2d)
    if kp.size == 0:
        return np.zeros(kp.shape[:-2], kp.dtype)
    size = norm_last(_keypoint_extent(kp))

    def nan_aware(m: np.ndarray) -> np.ndarray:
        return norm_last(np.nanmax(kp[m], axis=-2) - np.nanmin(kp[m], axis=-2))

    return _with_nan_fallback(size, nan_aware, np.isfinite(kp).any(axis=(-1, -2)))


def match_hands(ref_2d: np.ndarray, ref_valid: np.ndarray, other_2d: np.ndarray, other_valid: np.ndarray,
                match_fraction: float = 0.5) -> HandPairs:
    """Pairs of hands per frame (see the module doc); every hand is used at most once per frame."""
    ref_2d = np.asarray(ref_2d)
    other_2d = np.asarray(other_2d)
    n = ref_2d.shape[0]
    both = np.asarray(ref_valid, bool)[:, :, None] & np.asarray(other_valid, bool)[:, None, :]
    # D[n, a, b]: mean keypoint distance between reference slot a and other slot b (NaN keypoints left out)
    dist = norm_last(ref_2d[:, :, None] - other_2d[:, None, :])
    D = _with_nan_fallback(keypoint_mean(dist), lambda m: np.nanmean(dist[m], axis=-1), both)
    limit = match_fraction * hand_size_2d(ref_2d)
    with np.errstate(invalid="ignore"):
        cand = both & np.isfinite(D) & (D <= limit[:, :, None])
    flat = np.where(cand, D, np.inf).reshape(n, 4)
    first = np.argmin(flat, axis=1)  # ties resolve to the lower (a, b), as a sort of (d, a, b) would
    has_first = np.isfinite(flat[np.arange(n), first])
    a1, b1 = first // 2, first % 2
    a2, b2 = 1 - a1, 1 - b1
    has_second = has_first & cand[np.arange(n), a2, b2]
    other_for_ref = np.full((n, 2), -1, np.int64)
    rows = np.arange(n)
    other_for_ref[rows[has_first], a1[has_first]] = b1[has_first]
    other_for_ref[rows[has_second], a2[has_second]] = b2[has_second]
    frame, ref_slot = np.nonzero(other_for_ref >= 0)
    return HandPairs(frame, ref_slot, other_for_ref[frame, ref_slot], other_for_ref)


def _cofactors(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cofactor matrices (9, A) and determinants (A,) of 3 x 3 matrices stored as rows (9, A)."""
    a00, a01, a02, a10, a11, a12, a20, a21, a22 = a
    c = np.empty_like(a)
    c[0] = a11 * a22 - a12 * a21
    c[1] = a12 * a20 - a10 * a22
    c[2] = a10 * a21 - a11 * a20
    c[3] = a21 * a02 - a22 * a01
    c[4] = a22 * a00 - a20 * a02
    c[5] = a20 * a01 - a21 * a00
    c[6] = a01 * a12 - a02 * a11
    c[7] = a02 * a10 - a00 * a12
    c[8] = a00 * a11 - a01 * a10
    return c, a00 * c[0] + a01 * c[1] + a02 * c[2]


def _polar_rotations(H: np.ndarray, max_iterations: int = 12,
                     tol: float = 1e-10) -> tuple[np.ndarray, np.ndarray]:
    """Orthogonal polar factors Q of a batch of float64 3 x 3 matrices H = Q P (P symmetric positive
    semi-definite), by Newton's iteration Q <- (g Q + Q^-T / g) / 2 with Higham's Frobenius scaling g,
    on the nine entries as rows of a (9, P) array (one cofactor inverse per step, no per-matrix LAPACK
    call). Convergence is quadratic: once no entry of a matrix changes by more than ``tol`` in a step,
    Q equals Q^-T to rounding, i.e. is orthogonal; the iteration stops when all have (hands need 5-6
    steps). Returns Q (P, 3, 3) and ok (P,): det(H) > 0 and converged (where det(H) <= 0 the best
    rotation is not the polar factor; the caller redoes those)."""
    n = len(H)
    q = np.ascontiguousarray(H.reshape(n, 9).T)
    det_h = None
    converged = np.zeros(n, bool)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for _ in range(max_iterations):
            c, det = _cofactors(q)
            det_h = det if det_h is None else det_h
            inv = 1.0 / det  # Q^-T = cofactors / det
            g = np.sqrt(np.sqrt(np.einsum("ia,ia->a", c, c) * inv * inv / np.einsum("ia,ia->a", q, q)))
            new = (0.5 * g) * q + (0.5 * inv / g) * c
            converged = functools.reduce(np.maximum, np.abs(new - q)) <= tol  # NaN: never
            q = new
            if converged.all() or not np.isfinite(q[:, ~converged]).any():  # the rest are NaN for good
                break
        ok = (det_h > 1e-12 * np.abs(H.reshape(n, 9)).sum(axis=1) ** 3) & converged
    return np.ascontiguousarray(q.T).reshape(n, 3, 3), ok


def _kabsch(H: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For cross-covariances H = Xc^T Yc (P, 3, 3): the rotations R (P, 3, 3) maximising
    tr(R H) (so that R x best fits y, reflections excluded) and the sums of H's singular values with
    the reflection sign (the Umeyama scale numerator). The polar factor serves where det(H) > 0
    (R = Q^T, sum = tr(Q^T H)); the rest (reflections, rank-deficient sets) take the SVD."""
    Q, ok = _polar_rotations(H)
    R = np.swapaxes(Q, 1, 2)
    sv_sum = np.einsum("pij,pji->p", R, H)
    redo = np.flatnonzero(~ok)
    if len(redo):
        U, S, Vt = np.linalg.svd(H[redo])
        d = np.sign(np.linalg.det(U @ Vt))
        d[d == 0] = 1.0
        D = np.ones((len(redo), 3))
        D[:, 2] = d
        R[redo] = np.swapaxes((U * D[:, None, :]) @ Vt, 1, 2)  # (U D Vt)^T
        sv_sum[redo] = (S * D).sum(axis=1)
    return R, sv_sum


def _similarity(X: np.ndarray, Y: np.ndarray,
                scale: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Umeyama's least-squares similarity from component-major point sets X to Y (3, P, K), finite:
    ``M`` (P, 3, 3) float64 (scale times rotation), the centred sets and Y's centroids (3, P), so
    that ``M @ (x - mean x) + mean y`` is x aligned. The 3 x 3 cross-covariances are solved in
    float64 whatever the points' dtype."""
    my = keypoint_mean(Y)
    Xc, Yc = X - keypoint_mean(X)[..., None], Y - my[..., None]
    H = np.empty((X.shape[1], 3, 3))
    for a in range(3):
        for b in range(3):
            H[:, a, b] = keypoint_mean(Xc[a] * Yc[b])  # mean, not sum: the K cancels in R and in c
    M, sv_sum = _kabsch(H)
    if scale:
        var = sum(keypoint_mean(np.square(Xc[a])).astype(np.float64) for a in range(3))
        with np.errstate(invalid="ignore", divide="ignore"):
            M *= np.where(var > 0, sv_sum / var, 1.0)[:, None, None]
    return M, Xc, Yc, my


def _finite_sets(Xs: np.ndarray, Ys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Component-major point sets (3, P, K) in a common float dtype with the rows that hold a
    non-finite point zeroed (in copies; the inputs are left alone), and the mask of the finite rows."""
    dtype = np.result_type(Xs, Ys, np.float32)
    Xs, Ys = Xs.astype(dtype, copy=False), Ys.astype(dtype, copy=False)
    ok = np.isfinite(keypoint_mean(Xs).sum(axis=0)) & np.isfinite(keypoint_mean(Ys).sum(axis=0))
    if not ok.all():
        Xs, Ys = np.where(ok[:, None], Xs, 0.0).astype(dtype), np.where(ok[:, None], Ys, 0.0).astype(dtype)
    return Xs, Ys, ok


def procrustes_align_batch(source: np.ndarray, target: np.ndarray, scale: bool = True) -> np.ndarray:
    """Each ``source`` (P, K, 3) moved by the similarity (rotation, translation, optional scale) that best
    fits it to ``target`` (P, K, 3) in least squares (Umeyama), reflections excluded. Rows with a
    non-finite point come back NaN. Points keep their float dtype (float32 keypoints align to ~1e-8 m,
    float64 sets to ~1e-12)."""
    Xs, Ys, ok = _finite_sets(components_first(source), components_first(target))
    M, Xc, _, my = _similarity(Xs, Ys, scale)
    out = np.ascontiguousarray(np.moveaxis(linear_map(np.moveaxis(M, 0, -1), Xc, my), 0, -1))
    out[~ok] = np.nan
    return out


def procrustes_align(source: np.ndarray, target: np.ndarray, scale: bool = True) -> np.ndarray:
    """One (K, 3) point set aligned to another (see :func:`procrustes_align_batch`)."""
    return procrustes_align_batch(np.asarray(source)[None], np.asarray(target)[None], scale)[0]


def procrustes_errors(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """PA-MPJPE: the mean point distance (P,) between each component-major ``target`` (3, P, K) and its
    ``source`` (3, P, K) aligned as :func:`procrustes_align_batch` aligns (with scale); NaN for rows
    with a non-finite point."""
    Xs, Ys, ok = _finite_sets(source, target)
    M, Xc, Yc, _ = _similarity(Xs, Ys, True)
    residual = linear_map(np.moveaxis(M, 0, -1), Xc)
    residual -= Yc
    error = keypoint_mean(norm_first(residual))
    error[~ok] = np.nan
    return error


@dataclass(frozen=True)
class PairErrors:
    """Per-pair errors of matched hands (P = pairs): ``kp2d_px`` (P, 21) px; ``mpjpe_cam_m``,
    ``mpjpe_root_m``, ``pa_mpjpe_m`` (P,) m (camera frame, wrist-aligned, similarity-aligned);
    ``wrist_depth_ratio`` (P,) other wrist z / reference wrist z; ``same_side`` (P,) bool."""

    kp2d_px: np.ndarray
    mpjpe_cam_m: np.ndarray
    mpjpe_root_m: np.ndarray
    pa_mpjpe_m: np.ndarray
    wrist_depth_ratio: np.ndarray
    same_side: np.ndarray


def pair_errors(pairs: HandPairs, ref_2d: np.ndarray, ref_cam: np.ndarray | HandRows,
                other_2d: np.ndarray, other_cam: np.ndarray | HandRows) -> PairErrors:
    """Errors of the other track's hands against their matched reference hands (in chunks of pairs,
    see :mod:`.batched`); the 3D tracks may come as :class:`~.batched.HandRows`."""
    ref_rows, other_rows = HandRows.of(ref_cam), HandRows.of(other_cam)
    ref_2d, other_2d = np.asarray(ref_2d), np.asarray(other_2d)
    parts = [_pair_errors(pairs.frame[c], pairs.ref_slot[c], pairs.other_slot[c], ref_2d, ref_rows, other_2d,
                          other_rows)
             for c in chunk_slices(len(pairs))]
    return PairErrors(*(np.concatenate([getattr(e, f) for e in parts])
                        for f in PairErrors.__dataclass_fields__))


def _pair_errors(frame: np.ndarray, ref_slot: np.ndarray, other_slot: np.ndarray, ref_2d: np.ndarray,
                 ref_cam: HandRows, other_2d: np.ndarray, other_cam: HandRows) -> PairErrors:
    r2, o2 = ref_2d[frame, ref_slot], other_2d[frame, other_slot]
    rc, oc = ref_cam.take(frame, ref_slot), other_cam.take(frame, other_slot)  # (3, P, 21)
    d = oc - rc
    with np.errstate(invalid="ignore", divide="ignore"):
        depth_ratio = oc[2][:, WRIST] / rc[2][:, WRIST]
    return PairErrors(
        kp2d_px=norm_last(o2 - r2),
        mpjpe_cam_m=keypoint_mean(norm_first(d)),
        mpjpe_root_m=keypoint_mean(norm_first(d - d[:, :, WRIST, None])),
        pa_mpjpe_m=procrustes_errors(oc, rc),
        wrist_depth_ratio=depth_ratio,
        same_side=ref_slot == other_slot,
    )


def hands_in_view(keypoints_cam: np.ndarray, keypoints_2d: np.ndarray, valid: np.ndarray,
                  width: int, height: int, fraction: float = IN_VIEW_FRACTION) -> np.ndarray:
    """(N, 2) bool: valid hands whose wrist and at least ``fraction`` of keypoints are in front of the
    camera and inside the ``width`` x ``height`` image."""
    uv = np.asarray(keypoints_2d)
    z = np.asarray(keypoints_cam)[..., 2]
    with np.errstate(invalid="ignore"):
        u, v = uv[..., 0], uv[..., 1]
        inside = (z > 0) & (u >= 0) & (u < width) & (v >= 0) & (v < height)
    inside_count = np.count_nonzero(inside, axis=-1)
    return np.asarray(valid, bool) & inside[..., WRIST] & (inside_count >= fraction * inside.shape[-1])


def reprojection_px(keypoints_cam: np.ndarray, keypoints_2d: np.ndarray, valid: np.ndarray,
                    K: np.ndarray, distortion=None) -> np.ndarray:
    """A track's own 3D -> 2D consistency: mean px distance between ``keypoints_cam`` projected with
    ``K`` (and the lens ``distortion``, a :class:`~dexhands_data.distortion.Distortion` or None) and
    ``keypoints_2d``, one value per valid hand (H,)."""
    from ..distortion import distort_pixels
    from ..geometry import project

    frame, slot = np.nonzero(np.asarray(valid, bool))
    cam, uv = np.asarray(keypoints_cam), np.asarray(keypoints_2d)
    parts = [keypoint_mean(norm_last(distort_pixels(project(cam[frame[c], slot[c]], K), K, distortion)
                                     - uv[frame[c], slot[c]]))
             for c in chunk_slices(len(frame))]
    return np.concatenate(parts)
