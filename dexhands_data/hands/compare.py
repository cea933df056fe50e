"""Backend-agnostic agreement between two hand tracks of the same frames (e.g. MediaPipe vs HaMeR).

Hands are paired per frame by image position, not by slot, so a left/right disagreement is measured
instead of turning into huge keypoint errors: each valid hand of track A is paired with the valid
hand of track B (either slot) with the smallest mean 2D keypoint distance, if that distance is below
``match_fraction`` of the A hand's 2D size (diagonal of its keypoint box). On the pairs:

- ``kp2d_px``: per-keypoint 2D distance (px), mean and median over pairs (and per keypoint);
- ``mpjpe_cam_mm``: 3D distance in the camera frame (mm), no alignment (depth disagreement shows here);
- ``mpjpe_root_mm``: after aligning the wrists (translation only);
- ``pa_mpjpe_mm``: after a similarity Procrustes alignment (rotation, translation, scale);
- ``handedness_agreement``: share of pairs whose slots (left/right) agree;
- ``detection_agreement``: paired hands / hands seen by either track (pairs + unpaired of A + unpaired of B),
  independent of the slots.

:func:`dexhands_data.dataset.compare_hands.compare_datasets` runs this on the episodes two written
datasets have in common.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from ..keypoints import NUM_KEYPOINTS, WRIST
from ..records import HandTrack


def procrustes_align(source: np.ndarray, target: np.ndarray, scale: bool = True) -> np.ndarray:
    """``source`` (N, 3) moved by the similarity (rotation, translation, optional scale) that best fits it to
    ``target`` in least squares (Umeyama). Reflections are excluded."""
    X = np.asarray(source, dtype=np.float64)
    Y = np.asarray(target, dtype=np.float64)
    mx, my = X.mean(axis=0), Y.mean(axis=0)
    Xc, Yc = X - mx, Y - my
    U, S, Vt = np.linalg.svd(Xc.T @ Yc)
    d = np.sign(np.linalg.det(U @ Vt)) or 1.0
    D = np.diag([1.0, 1.0, d])
    R = (U @ D @ Vt).T
    var = float((Xc**2).sum())
    c = float(np.trace(np.diag(S) @ D)) / var if (scale and var > 0) else 1.0
    return c * Xc @ R.T + my


@dataclass
class HandComparison:
    """Agreement of two tracks (see the module doc). Distances are NaN when no pair was found."""

    frames: int
    pairs: int
    hands_a: int
    hands_b: int
    detection_agreement: float
    handedness_agreement: float
    kp2d_px_mean: float
    kp2d_px_median: float
    kp2d_px_per_keypoint: list[float]
    mpjpe_cam_mm: float
    mpjpe_root_mm: float
    pa_mpjpe_mm: float
    estimator_a: str = ""
    estimator_b: str = ""
    _sums: dict = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("_sums")
        return d


def _hand_size(kp2d: np.ndarray) -> float:
    return float(np.linalg.norm(np.nanmax(kp2d, axis=0) - np.nanmin(kp2d, axis=0)))


def match_hands(kp2d_a: np.ndarray, valid_a: np.ndarray, kp2d_b: np.ndarray, valid_b: np.ndarray,
                match_fraction: float = 0.5) -> list[tuple[int, int]]:
    """(slot in A, slot in B) pairs of one frame; each B hand is used at most once (closest A first)."""
    cands = []
    for sa in np.flatnonzero(valid_a):
        size = _hand_size(kp2d_a[sa])
        for sb in np.flatnonzero(valid_b):
            d = float(np.nanmean(np.linalg.norm(kp2d_a[sa] - kp2d_b[sb], axis=-1)))
            if np.isfinite(d) and d <= match_fraction * size:
                cands.append((d, int(sa), int(sb)))
    pairs, used_a, used_b = [], set(), set()
    for _, sa, sb in sorted(cands):
        if sa not in used_a and sb not in used_b:
            pairs.append((sa, sb))
            used_a.add(sa)
            used_b.add(sb)
    return pairs


def compare_tracks(a: HandTrack, b: HandTrack, match_fraction: float = 0.5) -> HandComparison:
    """Agreement of track ``b`` with track ``a`` over their frames (they must have the same length)."""
    n = len(a)
    if len(b) != n:
        raise ValueError(f"tracks cover different frame counts: {n} vs {len(b)}")
    va, vb = np.asarray(a.valid, bool), np.asarray(b.valid, bool)
    d2, cam, root, pa, same = [], [], [], [], []
    for t in range(n):
        for sa, sb in match_hands(a.keypoints_2d[t], va[t], b.keypoints_2d[t], vb[t], match_fraction):
            ka, kb = a.keypoints_cam[t, sa].astype(np.float64), b.keypoints_cam[t, sb].astype(np.float64)
            pa2, pb2 = a.keypoints_2d[t, sa].astype(np.float64), b.keypoints_2d[t, sb].astype(np.float64)
            d2.append(np.linalg.norm(pa2 - pb2, axis=-1))
            cam.append(np.linalg.norm(ka - kb, axis=-1).mean())
            root.append(np.linalg.norm((ka - ka[WRIST]) - (kb - kb[WRIST]), axis=-1).mean())
            pa.append(np.linalg.norm(procrustes_align(kb, ka) - ka, axis=-1).mean())
            same.append(sa == sb)
    sums = {"pairs": len(d2), "hands_a": int(va.sum()), "hands_b": int(vb.sum()), "same": int(np.sum(same)),
            "kp2d_sum": float(np.sum(d2)) if d2 else 0.0,
            "kp2d_per_kp_sum": (np.sum(d2, axis=0) if d2 else np.zeros(NUM_KEYPOINTS)).tolist(),
            "cam_sum": float(np.sum(cam)), "root_sum": float(np.sum(root)), "pa_sum": float(np.sum(pa))}
    d2_all = np.concatenate(d2) if d2 else np.array([np.nan])
    return _from_sums(sums, n, float(np.median(d2_all)), a.estimator, b.estimator)


def _from_sums(s: dict, frames: int, kp2d_median: float, est_a: str, est_b: str) -> HandComparison:
    p = s["pairs"]
    nan = float("nan")

    def mean(key: str, scale: float = 1.0, per: int = 1) -> float:
        return s[key] / (p * per) * scale if p else nan

    return HandComparison(
        frames=frames, pairs=p, hands_a=s["hands_a"], hands_b=s["hands_b"],
        detection_agreement=p / union if (union := s["hands_a"] + s["hands_b"] - p) else 1.0,
        handedness_agreement=s["same"] / p if p else nan,
        kp2d_px_mean=mean("kp2d_sum", per=NUM_KEYPOINTS),
        kp2d_px_median=kp2d_median,
        kp2d_px_per_keypoint=[v / p if p else nan for v in s["kp2d_per_kp_sum"]],
        mpjpe_cam_mm=mean("cam_sum", 1000.0), mpjpe_root_mm=mean("root_sum", 1000.0),
        pa_mpjpe_mm=mean("pa_sum", 1000.0),
        estimator_a=est_a, estimator_b=est_b, _sums=s,
    )


def pool(comparisons: list[HandComparison]) -> HandComparison:
    """One comparison over several episodes (means weighted by pairs; the 2D median is the pairs-weighted
    mean of the episodes' medians)."""
    if not comparisons:
        raise ValueError("nothing to pool")
    keys = ("pairs", "hands_a", "hands_b", "same", "kp2d_sum", "cam_sum", "root_sum", "pa_sum")
    s = {k: sum(c._sums[k] for c in comparisons) for k in keys}
    s["kp2d_per_kp_sum"] = np.sum([c._sums["kp2d_per_kp_sum"] for c in comparisons], axis=0).tolist()
    w = np.array([c.pairs for c in comparisons], dtype=np.float64)
    med = np.array([c.kp2d_px_median for c in comparisons])
    median = float(np.sum(w * np.nan_to_num(med)) / w.sum()) if w.sum() else float("nan")
    est_a = ",".join(sorted({c.estimator_a for c in comparisons}))
    est_b = ",".join(sorted({c.estimator_b for c in comparisons}))
    return _from_sums(s, sum(c.frames for c in comparisons), median, est_a, est_b)
