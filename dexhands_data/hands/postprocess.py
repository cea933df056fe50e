"""Backend-independent hand post-processing: slot assignment per frame, then temporal clean-up per track.

Per frame, :func:`assign_to_slots` puts detections into the (left, right) slots and resolves two
detections claiming the same side. Per track, :func:`postprocess_track` fixes left/right swaps by
continuity of the 2D wrist and (optionally) fills short gaps. Values are never modified silently:
every step's count goes into ``HandTrack.processing``; frames that are not modified keep the
estimator's raw values.

Hand chirality: for a metric hand (MediaPipe world landmarks, OpenCV-like right-handed axes) the
normal n = (index_mcp - wrist) x (little_mcp - wrist) points out of the palm of a **right** hand and
out of the back of a left hand, and fingers flex towards the palm, so
``dot(n, mean(fingertips) - mean(wrist, index_mcp, little_mcp))`` is > 0 for a right hand's shape
and < 0 for a left hand's. It agreed with the (mirror-corrected) label on every detection in the
real photos of ``shared/data`` but on only ~70 % of the frames of a thumbs-up video (foreshortened
fist), so it is a last-resort tie-breaker and a QA count (``chirality_disagreements``), no more.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

import numpy as np

from ..geometry import matrix_from_rotvec, rotvec_from_matrix, unproject
from ..keypoints import FINGERTIPS, LEFT, NUM_HANDS, RIGHT, WRIST, keypoint_index
from ..records import HandTrack

_INDEX_MCP = keypoint_index("index_mcp")
_LITTLE_MCP = keypoint_index("little_mcp")


def hand_chirality(points: np.ndarray) -> float:
    """Signed chirality (metres) of a 21x3 hand in a right-handed frame: > 0 right hand, < 0 left."""
    p = np.asarray(points, dtype=np.float64)
    n = np.cross(p[_INDEX_MCP] - p[WRIST], p[_LITTLE_MCP] - p[WRIST])
    norm = np.linalg.norm(n)
    if not np.isfinite(norm) or norm == 0:
        return float("nan")
    base = (p[WRIST] + p[_INDEX_MCP] + p[_LITTLE_MCP]) / 3.0
    return float(np.dot(n / norm, p[list(FINGERTIPS)].mean(axis=0) - base))


class SlotCandidate(Protocol):
    """What :func:`assign_to_slots` needs from a backend's detection."""

    side: int  # LEFT or RIGHT after the backend's handedness rule
    score: float  # handedness score in [0, 1]
    chirality: float  # hand_chirality of the metric shape (NaN if unknown)
    keypoints_2d: np.ndarray  # (21, 2) px


def assign_to_slots(
    detections: Sequence[SlotCandidate], previous_wrists_2d: np.ndarray | None = None
) -> tuple[list[SlotCandidate | None], Counter]:
    """Place detections into [left, right] slots.

    A detection lying on a higher-scoring one (:func:`is_duplicate`) is dropped first (MediaPipe
    sometimes reports one hand twice as it enters the image).
    When two detections claim the same side, the conflict is resolved, in order, by
    1. continuity: if the previous frame had a hand, the pairing with the smaller total 2D wrist
       distance to the previous frame's slots wins;
    2. chirality: if exactly one detection's shape agrees with the claimed side, the other moves;
    3. otherwise the higher-scoring detection keeps the side and the other is dropped (two hands of
       the same side are two people, e.g. in a third-person photo).
    More than one extra detection per side is dropped the same way. Returns the slots and counts
    (``duplicates_dropped``, ``same_side_conflicts``, ``resolved_by_continuity``,
    ``resolved_by_chirality``, ``dropped_same_side``).
    """
    events: Counter = Counter()
    slots: list[SlotCandidate | None] = [None, None]
    by_side: dict[int, list[SlotCandidate]] = {LEFT: [], RIGHT: []}
    kept: list[SlotCandidate] = []
    for det in sorted(detections, key=lambda d: -d.score):
        if any(is_duplicate(det, k) for k in kept):
            events["duplicates_dropped"] += 1
            continue
        kept.append(det)
        by_side[det.side].append(det)
    for side in (LEFT, RIGHT):
        other = 1 - side
        claim = by_side[side]
        if len(claim) < 2 or by_side[other]:
            if claim:
                slots[side] = claim[0]
            events["dropped_same_side"] += max(0, len(claim) - 1)
            continue
        events["same_side_conflicts"] += 1
        a, b = claim[0], claim[1]
        events["dropped_same_side"] += len(claim) - 2
        pair = _by_continuity(a, b, side, previous_wrists_2d)
        if pair is not None:
            events["resolved_by_continuity"] += 1
        else:
            pair = _by_chirality(a, b, side)
            if pair is not None:
                events["resolved_by_chirality"] += 1
        if pair is None:
            slots[side] = a
            events["dropped_same_side"] += 1
        else:
            slots[side], slots[other] = pair
        break  # both slots are decided once a conflict was handled
    return slots, events


#: Two detections are one hand when their mean 2D keypoint distance is below this fraction of hand size.
DUPLICATE_FRACTION = 0.35


def is_duplicate(a: SlotCandidate, b: SlotCandidate) -> bool:
    """True when two detections cover the same hand (mean keypoint distance < 35 % of the hand's size).

    Measured on MediaPipe's double reports of one hand: 2-25 %.
    """
    size = max(_hand_size_2d(a.keypoints_2d), _hand_size_2d(b.keypoints_2d))
    dist = float(np.mean(np.linalg.norm(a.keypoints_2d - b.keypoints_2d, axis=-1)))
    return bool(np.isfinite(dist) and size > 0 and dist < DUPLICATE_FRACTION * size)


def _by_continuity(a, b, side: int, prev: np.ndarray | None):
    if prev is None:
        return None
    prev = np.asarray(prev, dtype=np.float64)
    known = np.all(np.isfinite(prev), axis=-1)
    if not known.any():
        return None
    other = 1 - side

    def cost(on_side, on_other) -> float:
        total = 0.0
        if known[side]:
            total += np.linalg.norm(on_side.keypoints_2d[WRIST] - prev[side])
        if known[other]:
            total += np.linalg.norm(on_other.keypoints_2d[WRIST] - prev[other])
        return total

    return (a, b) if cost(a, b) <= cost(b, a) else (b, a)


def _by_chirality(a, b, side: int):
    sign = 1.0 if side == RIGHT else -1.0
    agree_a, agree_b = sign * a.chirality > 0, sign * b.chirality > 0
    if agree_a and not agree_b:
        return a, b
    if agree_b and not agree_a:
        return b, a
    return None


# ----------------------------------------------------------------------------- temporal steps


@dataclass(frozen=True)
class PostprocessConfig:
    """Temporal post-processing settings (hashed into the estimator config).

    ``fix_swaps``: repair left/right swaps by wrist continuity. ``swap_ratio``: a swap is taken when
    its wrist-distance cost is below this fraction of keeping the labels. ``min_jump``: ... and the
    kept labels would make a wrist jump by more than this many hand sizes (2D keypoint box
    diagonals). ``lookback``: frames a slot's last wrist position stays a reference.
    ``max_gap_fill``: fill runs of at most this many missing frames between two valid frames of the
    same slot keeping the hand's shape (:func:`fill_short_gaps`; 0 disables); filled frames get
    ``valid`` True, confidence 0, score 0 and NaN lift residual, and are counted.
    """

    fix_swaps: bool = True
    swap_ratio: float = 0.5
    min_jump: float = 0.5
    lookback: int = 5
    max_gap_fill: int = 2

    def to_dict(self) -> dict:
        return asdict(self)


def _hand_size_2d(kp2d: np.ndarray) -> float:
    if not np.all(np.isfinite(kp2d)):
        kp2d = kp2d[np.all(np.isfinite(kp2d), axis=-1)]
    if len(kp2d) < 2:
        return float("nan")
    return float(np.linalg.norm(kp2d.max(axis=0) - kp2d.min(axis=0)))


def _swap_frame(track: HandTrack, t: int, companions: Sequence[np.ndarray] = ()) -> None:
    arrays = [getattr(track, name) for name in
              ("keypoints_cam", "keypoints_2d", "valid", "confidence", "score", "lift_residual_px")]
    for arr in (*arrays, *companions):
        arr[t] = arr[t][::-1].copy()


def fix_handedness_swaps(track: HandTrack, cfg: PostprocessConfig = PostprocessConfig(),
                         companions: Sequence[np.ndarray] = ()) -> int:
    """Swap the two slots of frames whose wrists continue the other slot's trajectory. In place.

    ``companions``: more per-frame arrays (N, 2, ...) to swap with the track's (e.g. the
    estimator's hand-centred shapes kept for the lift).

    Frames are visited in order and compared with the (already fixed) last wrist position of each
    slot within ``cfg.lookback`` frames. Returns the number of frames swapped. Labels of a track's
    first frames are trusted: a hand mislabelled from its first frame on is not changed here.
    """
    n = len(track)
    last_pos: list[np.ndarray | None] = [None, None]
    last_t = [-(10**9), -(10**9)]
    swaps = 0
    for t in range(n):
        valid = track.valid[t]
        if not valid.any():
            continue
        ref = [last_pos[s] if t - last_t[s] <= cfg.lookback else None for s in range(NUM_HANDS)]
        wr = track.keypoints_2d[t, :, WRIST].astype(np.float64)
        sizes = [_hand_size_2d(track.keypoints_2d[t, s]) for s in range(NUM_HANDS) if valid[s]]
        scale = float(np.nanmean(sizes)) if np.any(np.isfinite(sizes)) else float("nan")
        if np.isfinite(scale) and _should_swap(valid, wr, ref, scale, cfg):
            _swap_frame(track, t, companions)
            swaps += 1
            valid = track.valid[t]
            wr = track.keypoints_2d[t, :, WRIST].astype(np.float64)
        for s in range(NUM_HANDS):
            if valid[s]:
                last_pos[s], last_t[s] = wr[s], t
    return swaps


def _should_swap(valid: np.ndarray, wr: np.ndarray, ref: list, scale: float, cfg: PostprocessConfig) -> bool:
    def d(p, q) -> float:
        return float(np.linalg.norm(p - q)) if q is not None else float("inf")

    if ref[0] is not None and ref[1] is not None and d(ref[0], ref[1]) < cfg.min_jump * scale:
        return False  # the two slots were last seen at one place: continuity cannot tell them apart
    if valid.all():
        if ref[0] is not None and ref[1] is not None:
            keep = d(wr[0], ref[0]) + d(wr[1], ref[1])
            swap = d(wr[0], ref[1]) + d(wr[1], ref[0])
            return swap < cfg.swap_ratio * keep and keep > cfg.min_jump * scale
        s = 0 if ref[0] is not None else 1 if ref[1] is not None else None
        if s is None:
            return False
        keep, swap = d(wr[s], ref[s]), d(wr[1 - s], ref[s])
        return swap < cfg.swap_ratio * keep and keep > cfg.min_jump * scale
    s = int(np.argmax(valid))
    o = 1 - s
    if ref[o] is None:
        return False
    to_other, to_same = d(wr[s], ref[o]), d(wr[s], ref[s])
    return to_other < cfg.min_jump * scale and to_other < cfg.swap_ratio * to_same


def _rigid_fit(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Rotation R (d x d, no reflection) with ``(source - mean) @ R.T`` closest to ``target - mean``
    (Kabsch)."""
    X = source - source.mean(axis=0)
    Y = target - target.mean(axis=0)
    U, _, Vt = np.linalg.svd(X.T @ Y)
    D = np.eye(X.shape[1])
    D[-1, -1] = np.sign(np.linalg.det(U @ Vt)) or 1.0
    return (U @ D @ Vt).T


def is_mirrored(a: np.ndarray, b: np.ndarray) -> bool:
    """True when 2D keypoints ``b`` (21, 2) fit ``a`` better as a mirror image than as a rotation
    (the cross-covariance has a negative determinant)."""
    X = np.asarray(a, dtype=np.float64) - np.mean(a, axis=0)
    Y = np.asarray(b, dtype=np.float64) - np.mean(b, axis=0)
    return bool(np.linalg.det(X.T @ Y) < 0)


def _rotation_power(R: np.ndarray, w: float) -> np.ndarray:
    """R^w for a 2D or 3D rotation (the rotation by w times R's angle about its axis)."""
    if R.shape == (2, 2):
        a = w * np.arctan2(R[1, 0], R[0, 0])
        return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return matrix_from_rotvec(w * rotvec_from_matrix(R))


def interpolate_hand(a: np.ndarray, b: np.ndarray, w: float) -> np.ndarray:
    """A hand (21, d) between hands ``a`` and ``b`` (same unit) at fraction ``w`` in [0, 1], keeping
    its shape: the centroid moves linearly, the orientation turns by the fraction w of the rotation
    from a to b, and the articulation (b's shape turned back into a's orientation) is blended
    linearly. Unlike a per-keypoint blend, a hand that turns between a and b does not shrink."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    ca, cb = a.mean(axis=0), b.mean(axis=0)
    R = _rigid_fit(a, b)
    shape = (1 - w) * (a - ca) + w * ((b - cb) @ R)
    return shape @ _rotation_power(R, w).T + (1 - w) * ca + w * cb


def fill_short_gaps(track: HandTrack, max_gap: int, K: np.ndarray | None = None) -> int:
    """Fill runs of <= ``max_gap`` invalid frames between two valid frames of a slot. In place.

    Each filled hand keeps its shape (:func:`interpolate_hand`). With ``K`` (the track's 3D lies on
    its 2D rays) the 2D is interpolated so, each keypoint's depth linearly, and the 3D is the 2D
    back-projected at that depth: 3D and 2D agree, and the image-plane turn (well measured) is not
    replaced by a 3D turn through an ill-determined tilt. Without ``K`` the 3D and the 2D are each
    interpolated. A gap whose two ends are mirror images of each other in 2D (no rotation maps one
    onto the other: not one hand turning, e.g. the other hand taken over the slot) is left open and
    counted in ``processing["gaps_not_filled_mirrored"]``. Returns the number of hand-frames filled
    (marked: confidence 0, score 0, NaN lift residual).
    """
    if max_gap <= 0:
        return 0
    filled = mirrored = 0
    for s in range(NUM_HANDS):
        valid_idx = np.flatnonzero(track.valid[:, s])
        for a, b in zip(valid_idx[:-1], valid_idx[1:]):
            gap = int(b - a - 1)
            if gap < 1 or gap > max_gap:
                continue
            if is_mirrored(track.keypoints_2d[a, s], track.keypoints_2d[b, s]):
                mirrored += 1
                continue
            cam_ok = np.all(np.isfinite(track.keypoints_cam[[a, b], s]))
            for t in range(a + 1, b):
                w = (t - a) / (b - a)
                kp2d = track.keypoints_2d[:, s]
                kp2d[t] = interpolate_hand(kp2d[a], kp2d[b], w)
                if not cam_ok:
                    continue
                if K is not None:
                    z = (1 - w) * track.keypoints_cam[a, s, :, 2] + w * track.keypoints_cam[b, s, :, 2]
                    track.keypoints_cam[t, s] = unproject(track.keypoints_2d[t, s], z, K)
                else:
                    cam = track.keypoints_cam[:, s]
                    cam[t] = interpolate_hand(cam[a], cam[b], w)
            track.valid[a + 1:b, s] = True
            track.confidence[a + 1:b, s] = 0.0
            track.score[a + 1:b, s] = 0.0
            track.lift_residual_px[a + 1:b, s] = np.nan
            filled += gap
    key = "gaps_not_filled_mirrored"
    track.processing[key] = track.processing.get(key, 0) + mirrored
    return filled


def postprocess_track(track: HandTrack, cfg: PostprocessConfig = PostprocessConfig(),
                      K: np.ndarray | None = None) -> HandTrack:
    """A post-processed copy of ``track`` (swap repair, then gap filling, see :func:`fill_short_gaps`
    for ``K``) with counts in ``processing``."""
    out = copy.deepcopy(track)
    out.processing = dict(track.processing)
    out.processing["handedness_swaps_fixed"] = fix_handedness_swaps(out, cfg) if cfg.fix_swaps else 0
    out.processing["gap_frames_filled"] = int(fill_short_gaps(out, cfg.max_gap_fill, K))
    out.processing["postprocess"] = cfg.to_dict()
    return out
