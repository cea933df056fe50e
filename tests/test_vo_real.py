"""Visual odometry on real egocentric footage (non-commercial fixtures): validity, rotation rate,
hand masking with real MediaPipe hands, and agreement with an independent two-view estimate."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from dexhands_data.camera.vo import VisualOdometry
from dexhands_data.geometry import Intrinsics, rotvec_from_matrix
from dexhands_data.video_io import FrameReader

pytestmark = pytest.mark.noncommercial


def mediapipe_hands(frames: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """2D hands (N, 2, 21, 2) px and validity (N, 2) from MediaPipe on 640-px copies (slot by label)."""
    import mediapipe as mp

    h, w = frames[0].shape[:2]
    kp = np.full((len(frames), 2, 21, 2), np.nan)
    valid = np.zeros((len(frames), 2), bool)
    with mp.solutions.hands.Hands(max_num_hands=2, model_complexity=0) as hands:
        for i, f in enumerate(frames):
            res = hands.process(cv2.resize(f, (640, round(640 * h / w)), interpolation=cv2.INTER_AREA))
            for slot, lm in enumerate((res.multi_hand_landmarks or [])[:2]):
                kp[i, slot] = [[p.x * w - 0.5, p.y * h - 0.5] for p in lm.landmark]
                valid[i, slot] = True
    return kp, valid


def points_in_hulls(points: np.ndarray, kp: np.ndarray, valid: np.ndarray) -> int:
    n = 0
    for h in range(2):
        if valid[h]:
            hull = cv2.convexHull(kp[h].astype(np.float32))
            n += sum(cv2.pointPolygonTest(hull, (float(u), float(v)), False) >= 0 for u, v in points)
    return n


@pytest.fixture(scope="module")
def hawor(shared_data):
    path = shared_data / "egocentric_video_nc" / "hawor_example_video_0.mp4"
    frames = [f.image for f in FrameReader(str(path))]
    kp, valid = mediapipe_hands(frames)
    return frames, kp, valid


def test_egocentric_clip_valid_poses_rotation_rate_and_hand_mask(hawor):
    frames, kp, valid = hawor
    assert len(frames) == 121 and valid.any(axis=1).mean() > 0.5
    intr = Intrinsics.from_fov(1920, 1080, 90.0)
    on_hands = {}
    tracks = {}
    for use_mask in (True, False):
        session = VisualOdometry().session(intr)
        inside = 0
        for i, f in enumerate(frames):
            session.step(f, kp[i] if use_mask else None, valid[i] if use_mask else None)
            inside += points_in_hulls(session.tracked_points(), kp[i], valid[i])
        on_hands[use_mask] = inside
        tracks[use_mask] = session.finish()
    track = tracks[True]
    valid_fraction = track.valid.mean()
    R = track.T_world_cam[:, :3, :3]
    step_deg = np.rad2deg(np.linalg.norm(rotvec_from_matrix(np.transpose(R[:-1], (0, 2, 1)) @ R[1:]), axis=1))
    deg_per_s = step_deg.sum() / (len(frames) / 30.0)
    print(f"hawor: valid {valid_fraction:.3f}, rotation {deg_per_s:.1f} deg/s, "
          f"processing {track.processing}; "
          f"tracked points inside hand hulls: masked {on_hands[True]}, unmasked {on_hands[False]}")
    assert valid_fraction >= 0.95
    assert 20.0 < deg_per_s < 200.0  # strong head motion (measured ~70 deg/s)
    assert step_deg.max() < 15.0  # no jumps
    assert on_hands[True] == 0 and on_hands[False] > 100
    assert track.translation_metric is False


def test_epic_frames_agree_with_an_independent_two_view_estimate(shared_data):
    paths = sorted((shared_data / "epic_kitchens_frames_nc" / "P28_101").glob("*.jpg"))
    frames = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths]
    intr = Intrinsics.from_fov(456, 256, 90.0)
    session = VisualOdometry().session(intr)
    for f in frames:
        session.step(f, None, None)
    track = session.finish()
    assert track.valid.all()
    # Independent check: SIFT matches (ratio test) + essential matrix between consecutive full frames.
    sift = cv2.SIFT_create(2000)
    matcher = cv2.BFMatcher(cv2.NORM_L2)
    errors = []
    for i in range(len(frames) - 1):
        k1, d1 = sift.detectAndCompute(cv2.cvtColor(frames[i], cv2.COLOR_RGB2GRAY), None)
        k2, d2 = sift.detectAndCompute(cv2.cvtColor(frames[i + 1], cv2.COLOR_RGB2GRAY), None)
        m = [a for a, b in matcher.knnMatch(d1, d2, k=2) if a.distance < 0.75 * b.distance]
        p1 = np.float64([k1[x.queryIdx].pt for x in m])
        p2 = np.float64([k2[x.trainIdx].pt for x in m])
        E, inl = cv2.findEssentialMat(p1, p2, intr.K, cv2.USAC_ACCURATE, 0.999, 1.0)
        _, R21, _, _ = cv2.recoverPose(E, p1, p2, intr.K, mask=inl)
        R_vo = track.T_world_cam[i, :3, :3].T @ track.T_world_cam[i + 1, :3, :3]  # R_i_(i+1)
        errors.append(np.rad2deg(np.linalg.norm(rotvec_from_matrix(R_vo @ R21))))
    step = np.rad2deg(np.linalg.norm(rotvec_from_matrix(
        np.transpose(track.T_world_cam[:-1, :3, :3], (0, 2, 1)) @ track.T_world_cam[1:, :3, :3]), axis=1))
    print(f"epic: per-pair rotation {np.round(step, 2)} deg, "
          f"disagreement with SIFT two-view {np.round(errors, 2)}")
    assert np.all(step > 2.0)  # the camera really turns ~3-5 deg between these frames
    assert np.median(errors) < 0.5 and np.max(errors) < 1.5, errors
