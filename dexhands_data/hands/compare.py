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

from ..fidelity.hand_metrics import match_hands, pair_errors, procrustes_align  # noqa: F401 (re-exported)
from ..keypoints import NUM_KEYPOINTS
from ..records import HandTrack


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


def compare_tracks(a: HandTrack, b: HandTrack, match_fraction: float = 0.5) -> HandComparison:
    """Agreement of track ``b`` with track ``a`` over their frames (they must have the same length).
    Matching and errors are those of ``dexdata score`` (:mod:`..fidelity.hand_metrics`), A as reference."""
    n = len(a)
    if len(b) != n:
        raise ValueError(f"tracks cover different frame counts: {n} vs {len(b)}")
    va, vb = np.asarray(a.valid, bool), np.asarray(b.valid, bool)
    pairs = match_hands(a.keypoints_2d, va, b.keypoints_2d, vb, match_fraction)
    e = pair_errors(pairs, a.keypoints_2d, a.keypoints_cam, b.keypoints_2d, b.keypoints_cam)
    p = len(pairs)
    sums = {"pairs": p, "hands_a": int(va.sum()), "hands_b": int(vb.sum()), "same": int(e.same_side.sum()),
            "kp2d_sum": float(e.kp2d_px.sum()),
            "kp2d_per_kp_sum": (e.kp2d_px.sum(axis=0) if p else np.zeros(NUM_KEYPOINTS)).tolist(),
            "cam_sum": float(e.mpjpe_cam_m.sum()), "root_sum": float(e.mpjpe_root_m.sum()),
            "pa_sum": float(e.pa_mpjpe_m.sum())}
    median = float(np.median(e.kp2d_px)) if p else float("nan")
    return _from_sums(sums, n, median, a.estimator, b.estimator)


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
