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
import warnings
from dataclasses import dataclass

import numpy as np

from ..keypoints import WRIST

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


def norm_last(a: np.ndarray) -> np.ndarray:
    """Euclidean norm over the last axis (faster than ``np.linalg.norm`` for short vectors)."""
    return np.sqrt(np.einsum("...i,...i->...", a, a))


def _with_nan_fallback(fast: np.ndarray, slow, rows: np.ndarray) -> np.ndarray:
    """``fast`` (computed assuming finite input) with its NaN entries at ``rows`` (bool mask) replaced
    by ``slow(mask)``: hands with only some keypoints missing take the NaN-aware path."""
    redo = np.isnan(fast) & rows
    if redo.any():
        with _quiet_nan():
            fast[redo] = slow(redo)
    return fast


def hand_size_2d(keypoints_2d: np.ndarray) -> np.ndarray:
    """Diagonal (px) of each hand's keypoint box: (..., 21, 2) -> (...); keypoints that are NaN are
    left out, an all-NaN hand gives NaN."""
    kp = np.asarray(keypoints_2d)
    size = norm_last(kp.max(axis=-2) - kp.min(axis=-2))
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
    D = _with_nan_fallback(dist.mean(axis=-1), lambda m: np.nanmean(dist[m], axis=-1), both)
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


def _polar_rotations(H: np.ndarray, iterations: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Orthogonal polar factors Q of a batch of 3 x 3 matrices H = Q P (P symmetric positive
    semi-definite), by Newton's iteration Q <- (g Q + Q^-T / g) / 2 with Higham's Frobenius scaling g
    for the first steps, written on the nine entries as separate arrays (one cofactor inverse per
    step, no per-matrix LAPACK call). Returns Q (P, 3, 3) and ok (P,): det(H) > 0 and Q orthogonal to
    1e-10 (where det(H) <= 0 the best rotation is not the polar factor; the caller redoes those)."""
    a = [H[:, i, j].copy() for i in range(3) for j in range(3)]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        det_h = None
        for step in range(iterations):
            a00, a01, a02, a10, a11, a12, a20, a21, a22 = a
            c = [a11 * a22 - a12 * a21, a12 * a20 - a10 * a22, a10 * a21 - a11 * a20,
                 a21 * a02 - a22 * a01, a22 * a00 - a20 * a02, a20 * a01 - a21 * a00,
                 a01 * a12 - a02 * a11, a02 * a10 - a00 * a12, a00 * a11 - a01 * a10]  # cofactors
            det = a00 * c[0] + a01 * c[1] + a02 * c[2]
            det_h = det if det_h is None else det_h
            inv = 1.0 / det  # Q^-T = cofactors / det
            if step < iterations // 2:
                g = np.sqrt(np.sqrt(sum(x * x for x in c) * inv * inv / sum(x * x for x in a)))
                half_q, half_c = 0.5 * g, 0.5 * inv / g
            else:
                half_q, half_c = 0.5, 0.5 * inv
            a = [half_q * x + half_c * y for x, y in zip(a, c)]
        Q = np.stack(a, axis=1).reshape(-1, 3, 3)
        gram = np.swapaxes(Q, 1, 2) @ Q
        ok = (det_h > 1e-12 * np.abs(H).sum(axis=(1, 2)) ** 3) & (np.abs(gram - np.eye(3)).max(axis=(1, 2)) < 1e-10)
    return Q, ok


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


def procrustes_align_batch(source: np.ndarray, target: np.ndarray, scale: bool = True) -> np.ndarray:
    """Each ``source`` (P, K, 3) moved by the similarity (rotation, translation, optional scale) that best
    fits it to ``target`` (P, K, 3) in least squares (Umeyama), reflections excluded. Rows with a
    non-finite point come back NaN."""
    X = np.asarray(source, np.float64)  # float64: identical sets align to ~1e-12, not float32's ~1e-7
    Y = np.asarray(target, np.float64)
    ok = np.isfinite(X).all(axis=(1, 2)) & np.isfinite(Y).all(axis=(1, 2))
    if not ok.all():
        X = np.where(ok[:, None, None], X, 0.0)
        Y = np.where(ok[:, None, None], Y, 0.0)
    mx, my = X.mean(axis=1, keepdims=True), Y.mean(axis=1, keepdims=True)
    Xc, Yc = X - mx, Y - my
    R, sv_sum = _kabsch(np.swapaxes(Xc, 1, 2) @ Yc)
    var = np.einsum("pki,pki->p", Xc, Xc)
    if scale:
        with np.errstate(invalid="ignore", divide="ignore"):
            c = np.where(var > 0, sv_sum / var, 1.0)
    else:
        c = np.ones(len(X))
    out = c[:, None, None] * (Xc @ np.swapaxes(R, 1, 2)) + my
    out[~ok] = np.nan
    return out


def procrustes_align(source: np.ndarray, target: np.ndarray, scale: bool = True) -> np.ndarray:
    """One (K, 3) point set aligned to another (see :func:`procrustes_align_batch`)."""
    return procrustes_align_batch(np.asarray(source)[None], np.asarray(target)[None], scale)[0]


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


def pair_errors(pairs: HandPairs, ref_2d: np.ndarray, ref_cam: np.ndarray,
                other_2d: np.ndarray, other_cam: np.ndarray) -> PairErrors:
    """Errors of the other track's hands against their matched reference hands."""
    ra = (pairs.frame, pairs.ref_slot)
    ob = (pairs.frame, pairs.other_slot)
    r2, o2 = np.asarray(ref_2d)[ra], np.asarray(other_2d)[ob]
    rc, oc = np.asarray(ref_cam)[ra], np.asarray(other_cam)[ob]
    d = oc - rc
    root = norm_last(d - d[:, WRIST:WRIST + 1]).mean(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        depth_ratio = oc[:, WRIST, 2] / rc[:, WRIST, 2]
    return PairErrors(
        kp2d_px=norm_last(o2 - r2),
        mpjpe_cam_m=norm_last(d).mean(axis=-1),
        mpjpe_root_m=root,
        pa_mpjpe_m=norm_last(procrustes_align_batch(oc, rc) - rc).mean(axis=-1),
        wrist_depth_ratio=depth_ratio,
        same_side=pairs.ref_slot == pairs.other_slot,
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
    return np.asarray(valid, bool) & inside[..., WRIST] & (inside.mean(axis=-1) >= fraction)


def reprojection_px(keypoints_cam: np.ndarray, keypoints_2d: np.ndarray, valid: np.ndarray,
                    K: np.ndarray, distortion=None) -> np.ndarray:
    """A track's own 3D -> 2D consistency: mean px distance between ``keypoints_cam`` projected with
    ``K`` (and the lens ``distortion``, a :class:`~dexhands_data.distortion.Distortion` or None) and
    ``keypoints_2d``, one value per valid hand (H,)."""
    from ..distortion import distort_pixels
    from ..geometry import project

    v = np.asarray(valid, bool)
    cam = np.asarray(keypoints_cam, np.float64)[v]
    seen = distort_pixels(project(cam, K), K, distortion)
    return norm_last(seen - np.asarray(keypoints_2d)[v]).mean(axis=-1)
