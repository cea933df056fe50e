"""Hand post-processing on constructed tracks: slot assignment, swap repair, gap filling, chirality."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from dexhands_data.hands.postprocess import (
    PostprocessConfig,
    assign_to_slots,
    fill_short_gaps,
    fix_handedness_swaps,
    hand_chirality,
    is_duplicate,
    postprocess_track,
)
from dexhands_data.keypoints import LEFT, RIGHT
from dexhands_data.records import HandTrack


def right_hand_palm_to_camera() -> np.ndarray:
    """A metric right hand (m), OpenCV axes, palm towards the camera, fingers up and slightly curled."""
    p = np.zeros((21, 3))
    # metacarpal heads: thumb side on image right (+x) for a right palm seen from the front
    mcp_x = {5: 0.03, 9: 0.01, 13: -0.01, 17: -0.03}
    for base, x in mcp_x.items():
        p[base] = [x, -0.08, 0.0]
        for j in range(1, 4):  # fingers go up (-y) and curl towards the camera (-z, palm side)
            p[base + j] = [x, -0.08 - 0.025 * j, -0.01 * j]
    p[1:5] = [[0.03, -0.02, -0.01], [0.05, -0.04, -0.02], [0.06, -0.06, -0.03], [0.07, -0.08, -0.04]]
    return p


@dataclass
class Det:
    side: int
    score: float
    keypoints_2d: np.ndarray
    chirality: float = float("nan")


def det_at(side: int, x: float, y: float, score: float = 0.9, chirality: float = float("nan")) -> Det:
    """A detection whose 21 keypoints sit on a 60 px box starting at its wrist (x, y)."""
    kp = np.array([x, y]) + np.linspace(0, 60, 21)[:, None] * np.array([[0.3, -1.0]])
    return Det(side, score, kp, chirality)


# ----------------------------------------------------------------------------- chirality


def test_chirality_sign_of_a_right_and_a_mirrored_hand():
    right = right_hand_palm_to_camera()
    assert hand_chirality(right) > 0.01
    mirrored = right * np.array([-1.0, 1.0, 1.0])  # a mirror image is a left hand
    assert hand_chirality(mirrored) == pytest.approx(-hand_chirality(right))
    # rotating the hand (turning it around) does not change its chirality
    c, s = np.cos(2.0), np.sin(2.0)
    R = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]) @ np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    assert hand_chirality(right @ R.T) == pytest.approx(hand_chirality(right))
    assert np.isnan(hand_chirality(np.zeros((21, 3))))


# ----------------------------------------------------------------------------- slot assignment


def test_distinct_sides_go_to_their_slots():
    a, b = det_at(RIGHT, 400, 300), det_at(LEFT, 100, 300)
    slots, ev = assign_to_slots([a, b])
    assert slots == [b, a] and sum(ev.values()) == 0


def test_same_side_resolved_by_continuity():
    near_left, near_right = det_at(RIGHT, 110, 300, 0.95), det_at(RIGHT, 410, 300, 0.90)
    prev = np.array([[100.0, 300.0], [400.0, 300.0]])
    slots, ev = assign_to_slots([near_left, near_right], prev)
    assert slots == [near_left, near_right]
    assert ev["same_side_conflicts"] == 1 and ev["resolved_by_continuity"] == 1
    # continuity with only one previous hand known
    slots, _ = assign_to_slots([near_left, near_right], np.array([[np.nan, np.nan], [400.0, 300.0]]))
    assert slots == [near_left, near_right]


def test_same_side_resolved_by_chirality_then_by_score():
    a = det_at(LEFT, 100, 300, 0.95, chirality=+0.02)  # shape of a right hand
    b = det_at(LEFT, 400, 300, 0.80, chirality=-0.02)
    slots, ev = assign_to_slots([a, b])
    assert slots == [b, a] and ev["resolved_by_chirality"] == 1
    # both shapes agree with the claim (two people's left hands): the better one stays, one is dropped
    a.chirality = -0.02
    slots, ev = assign_to_slots([a, b])
    assert slots == [a, None] and ev["dropped_same_side"] == 1


def test_duplicates_are_dropped():
    a = det_at(RIGHT, 200, 300, 0.95)
    dup = Det(RIGHT, 0.9, a.keypoints_2d + 5.0)
    assert is_duplicate(a, dup) and not is_duplicate(a, det_at(RIGHT, 300, 300))
    slots, ev = assign_to_slots([dup, a])
    assert slots == [None, a] and ev["duplicates_dropped"] == 1 and ev["same_side_conflicts"] == 0


def test_three_detections_keep_the_best_per_side():
    a, b, c = det_at(LEFT, 100, 300, 0.9), det_at(LEFT, 250, 300, 0.7), det_at(RIGHT, 450, 300, 0.8)
    slots, ev = assign_to_slots([b, c, a])
    assert slots == [a, c] and ev["dropped_same_side"] == 1


# ----------------------------------------------------------------------------- temporal steps


def two_hand_track(n: int = 40) -> HandTrack:
    """Left hand moving right along y=300 from x=100, right hand moving left from x=500 (2D and 3D)."""
    tr = HandTrack.empty(n, "test")
    t = np.arange(n)
    for s, (x0, vx) in enumerate([(100.0, 2.0), (500.0, -2.0)]):
        wrist = np.column_stack([x0 + vx * t, np.full(n, 300.0)])
        offsets = np.linspace(0, 60, 21)[:, None] * np.array([[0.3, -1.0]])
        tr.keypoints_2d[:, s] = wrist[:, None, :] + offsets[None]
        depth = np.full((n, 21, 1), 0.5)
        tr.keypoints_cam[:, s] = np.concatenate([tr.keypoints_2d[:, s] / 1000.0, depth], -1)
        tr.valid[:, s] = True
        tr.confidence[:, s] = 0.9
        tr.score[:, s] = 0.9 + 0.001 * s
        tr.lift_residual_px[:, s] = 3.0 + s
    return tr


def swap(tr: HandTrack, frames) -> None:
    for name in ("keypoints_cam", "keypoints_2d", "valid", "confidence", "score", "lift_residual_px"):
        arr = getattr(tr, name)
        arr[frames] = arr[frames][:, ::-1].copy()


def test_swaps_are_repaired_exactly():
    clean = two_hand_track()
    noisy = two_hand_track()
    swap(noisy, [5, 6, 7, 20])
    assert fix_handedness_swaps(noisy) == 4
    for name in ("keypoints_cam", "keypoints_2d", "valid", "score", "lift_residual_px"):
        np.testing.assert_array_equal(getattr(noisy, name), getattr(clean, name))


def test_single_hand_label_flip_is_repaired():
    tr = two_hand_track()
    tr.valid[:, RIGHT] = False
    tr.keypoints_2d[:, RIGHT] = np.nan
    swap(tr, [10, 11, 12])  # the lone left hand is reported as right for three frames
    assert tr.valid[10:13, RIGHT].all()
    assert fix_handedness_swaps(tr) == 3
    assert tr.valid[:, LEFT].all() and not tr.valid[:, RIGHT].any()


def test_clean_tracks_and_crossing_hands_are_not_swapped():
    tr = two_hand_track(60)  # the hands cross at frame 100 / 4 = 25 (x = 300)
    before = tr.keypoints_2d.copy()
    assert fix_handedness_swaps(tr) == 0
    np.testing.assert_array_equal(tr.keypoints_2d, before)


def test_gap_fill_interpolates_short_gaps_only():
    tr = two_hand_track()
    ref = two_hand_track()
    tr.valid[10:12, LEFT] = False  # gap of 2: filled
    tr.keypoints_2d[10:12, LEFT] = np.nan
    tr.keypoints_cam[10:12, LEFT] = np.nan
    tr.valid[20:23, RIGHT] = False  # gap of 3: left alone
    tr.keypoints_2d[20:23, RIGHT] = np.nan
    assert fill_short_gaps(tr, max_gap=2) == 2
    # the motion is linear, so interpolation restores it
    np.testing.assert_allclose(tr.keypoints_2d[10:12, LEFT], ref.keypoints_2d[10:12, LEFT], atol=1e-4)
    np.testing.assert_allclose(tr.keypoints_cam[10:12, LEFT], ref.keypoints_cam[10:12, LEFT], atol=1e-6)
    assert tr.valid[10:12, LEFT].all() and (tr.confidence[10:12, LEFT] == 0).all()
    assert (tr.score[10:12, LEFT] == 0).all() and np.isnan(tr.lift_residual_px[10:12, LEFT]).all()
    assert not tr.valid[20:23, RIGHT].any() and np.isnan(tr.keypoints_2d[20:23, RIGHT]).all()
    # the start of a track is never extrapolated
    tr.valid[:3, LEFT] = False
    assert fill_short_gaps(tr, max_gap=2) == 0
    assert fill_short_gaps(tr, max_gap=0) == 0


def test_postprocess_track_records_counts_and_keeps_input():
    tr = two_hand_track()
    swap(tr, [8])
    tr.valid[30, RIGHT] = False
    tr.processing = {"detections": 79}
    out = postprocess_track(tr, PostprocessConfig(max_gap_fill=1))
    assert out.processing["handedness_swaps_fixed"] == 1 and out.processing["gap_frames_filled"] == 1
    assert out.processing["detections"] == 79 and out.processing["postprocess"]["max_gap_fill"] == 1
    assert tr.keypoints_2d[8, LEFT, 0, 0] > 400 and not tr.valid[30, RIGHT]  # input untouched
    off = postprocess_track(tr, PostprocessConfig(fix_swaps=False, max_gap_fill=0))
    assert off.processing["handedness_swaps_fixed"] == 0 and off.processing["gap_frames_filled"] == 0
    np.testing.assert_array_equal(off.keypoints_2d, tr.keypoints_2d)
