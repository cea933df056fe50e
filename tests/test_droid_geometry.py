"""Pure geometry of the DROID pseudo-hand and camera conventions (real end-effector values)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from dexhands_data.sources.droid.cameras import (
    CalibrationTable,
    T_base_cam_from_extrinsics,
    default_intrinsics,
    intrinsics_from_calibration_vector,
)
from dexhands_data.sources.droid.pseudo_hand import (
    RADII_CLOSED,
    RADII_OPEN,
    official_pseudo_hand,
    oriented_pseudo_hand,
    oriented_radii,
    pseudo_hand,
    pseudo_hand_row,
)
from dexhands_data.geometry import project, se3_inverse, transform_points

from droid_fixtures import load_episode


@pytest.fixture(scope="module")
def episode(shared_data):
    return load_episode(shared_data)


def test_official_rows_radii_plane_and_order(episode):
    cart, grip = episode.cartesian, episode.gripper
    hand = official_pseudo_hand(cart[:, :3], grip)
    assert hand.shape == (166, 21, 3)
    for t in (0, 64, 65, 80, 150):  # open, the 0.493 step (still open), closed, closed, open
        c = cart[t, :3]
        radii = [0.03, 0.04, 0.035, 0.03] if grip[t] >= 0.5 else [0.03, 0.04, 0.05, 0.06]
        assert hand[t, 0].tolist() == c.tolist()
        for i in range(5):
            theta = 2 * np.pi * i / 5
            for j, r in enumerate(radii):
                expected = c + r * np.array([np.cos(theta), np.sin(theta), 0.0])
                np.testing.assert_allclose(hand[t, 1 + 4 * i + j], expected, atol=1e-15)
        # base XY plane at the end-effector height, whatever the orientation
        assert np.all(hand[t, :, 2] == c[2])
    assert grip[65] == pytest.approx(0.493, abs=1e-6) and grip[70] >= 0.5
    # closed: radius index 0 and 3 coincide (0.03 twice)
    closed = hand[80]
    np.testing.assert_allclose(closed[pseudo_hand_row(2, 0)], closed[pseudo_hand_row(2, 3)], atol=0)
    assert [pseudo_hand_row(i, j) + 21 for i, j in ((0, 0), (0, 3), (1, 0), (4, 3))] == [22, 25, 26, 41]


def test_oriented_plane_turns_with_the_end_effector(episode):
    cart = episode.cartesian[[0, 80, 165]].copy()
    grip = episode.gripper[[0, 80, 165]]
    hand = oriented_pseudo_hand(cart, grip)
    R = Rotation.from_euler("xyz", cart[:, 3:]).as_matrix()
    for t in range(3):
        offsets = hand[t, 1:] - hand[t, 0]
        # every circle point is perpendicular to the approach axis (end-effector z)
        np.testing.assert_allclose(offsets @ R[t][:, 2], 0.0, atol=1e-12)
    # rotate the end effector by 90 deg about base y: the circles rotate with it
    extra = Rotation.from_euler("y", 90, degrees=True)
    turned = cart.copy()
    turned[:, 3:] = (extra * Rotation.from_euler("xyz", cart[:, 3:])).as_euler("xyz")
    hand2 = oriented_pseudo_hand(turned, grip)
    turned_offsets = extra.apply((hand[:, 1:] - hand[:, :1]).reshape(-1, 3)).reshape(3, 20, 3)
    np.testing.assert_allclose(hand2[:, 1:] - hand2[:, :1], turned_offsets, atol=1e-12)
    # the official plane does not turn
    off1, off2 = pseudo_hand("dexwm-official", cart, grip), pseudo_hand("dexwm-official", turned, grip)
    np.testing.assert_array_equal(off1, off2)


def test_oriented_roll_wrap_is_continuous(episode):
    """The real roll jumps between -3.141 and +3.136 (the +-pi wrap); the pseudo-hand does not jump."""
    cart = episode.cartesian
    jumps = np.nonzero(np.abs(np.diff(cart[:, 3])) > np.pi)[0]
    assert jumps.size > 0
    hand = oriented_pseudo_hand(cart, episode.gripper)
    for k in jumps:
        step = np.abs(hand[k + 1, 1:] - hand[k + 1, 0] - (hand[k, 1:] - hand[k, 0])).max()
        assert step < 0.01  # less than a centimetre, not a flip of the circles


def test_oriented_radii_are_monotone_and_match_official_at_the_ends():
    g = np.linspace(-0.2, 1.2, 141)
    radii = oriented_radii(g)
    assert np.all(np.diff(radii, axis=0) <= 1e-15)
    np.testing.assert_allclose(oriented_radii(np.array([0.0, 1.0])), [RADII_OPEN, RADII_CLOSED], atol=1e-15)
    np.testing.assert_allclose(oriented_radii(np.array([0.5]))[0], [0.03, 0.04, 0.0425, 0.045], atol=1e-15)
    assert np.all(np.diff(radii[:, 3]) <= 0) and radii[0, 3] > radii[-1, 3]


def test_extrinsics_vector_matches_explicit_euler_matrix():
    v = np.array([0.31, -0.42, 0.55, 2.9, -0.3, 1.1])
    T = T_base_cam_from_extrinsics(v)
    rx, ry, rz = v[3:]
    Rx = np.array([[1, 0, 0], [0, np.cos(rx), -np.sin(rx)], [0, np.sin(rx), np.cos(rx)]])
    Ry = np.array([[np.cos(ry), 0, np.sin(ry)], [0, 1, 0], [-np.sin(ry), 0, np.cos(ry)]])
    Rz = np.array([[np.cos(rz), -np.sin(rz), 0], [np.sin(rz), np.cos(rz), 0], [0, 0, 1]])
    np.testing.assert_allclose(T[:3, :3], Rz @ Ry @ Rx, atol=1e-15)
    np.testing.assert_array_equal(T[:3, 3], v[:3])
    # camera -> base: the camera centre is the translation; base points come back through the inverse
    p_base = np.array([0.5, 0.1, 0.2])
    back = transform_points(T, transform_points(se3_inverse(T), p_base))
    np.testing.assert_allclose(back, p_base, atol=1e-15)
    assert T_base_cam_from_extrinsics(np.tile(v, (3, 1))).shape == (3, 4, 4)


def test_intrinsics_calibration_order_and_defaults(tmp_path):
    # the public release stores [fx, cx, fy, cy]
    k = intrinsics_from_calibration_vector([730.0, 640.5, 731.0, 355.25], 1280, 720)
    assert (k.fx, k.cx, k.fy, k.cy, k.source) == (730.0, 640.5, 731.0, 355.25, "calibration")
    quarter = intrinsics_from_calibration_vector([730.0, 640.5, 731.0, 355.25], 320, 180)
    assert quarter.fx == pytest.approx(182.5) and quarter.cy == pytest.approx((355.25 + 0.5) / 4 - 0.5)
    d = default_intrinsics(320, 180)
    assert d.source == "default" and d.fx == pytest.approx(733.37 / 4)
    assert d.cx == pytest.approx((625.26 + 0.5) / 4 - 0.5)
    path = tmp_path / "intrinsics.json"
    table = {"RAIL+x+1": {"22008760": [700.0, 640.0, 701.0, 360.0]}, "24400334": [1, 2, 3, 4]}
    path.write_text(json.dumps(table))
    table = CalibrationTable(path)
    assert table.lookup("RAIL+x+1", "22008760") == [700.0, 640.0, 701.0, 360.0]
    assert table.lookup("other", "24400334") == [1.0, 2.0, 3.0, 4.0]
    assert table.lookup("RAIL+x+1", "999") is None


def test_projected_pseudo_hand_lands_on_the_gripper(episode):
    """In the exterior camera the pseudo-hand surrounds the gripper's own projection at every step.

    Cross-checked against OpenCV's projectPoints (an independent camera model), and the oriented
    pseudo-hand's image footprint equals the physical radius over depth.
    """
    import cv2

    T = T_base_cam_from_extrinsics(episode.extrinsics["ext2"])
    K = default_intrinsics(1280, 720).K
    T_cam_base = se3_inverse(T)
    rvec, _ = cv2.Rodrigues(T_cam_base[:3, :3])
    ee = np.ascontiguousarray(episode.cartesian[:, :3])
    gripper_px = cv2.projectPoints(ee, rvec, T_cam_base[:3, 3], K, None)[0][:, 0]
    hand = oriented_pseudo_hand(episode.cartesian, episode.gripper)
    cam = np.einsum("ij,nkj->nki", T_cam_base[:3, :3], hand) + T_cam_base[:3, 3]
    px = project(cam, K)
    np.testing.assert_allclose(px[:, 0], gripper_px, atol=1e-6)
    assert np.all((gripper_px > 0) & (gripper_px < [1280, 720]))  # the gripper is in view throughout
    reach = np.linalg.norm(px[:, 1:] - px[:, :1], axis=-1).max(axis=1)
    depth = cam[:, 0, 2]
    bound = 0.06 * K[0, 0] / (depth - 0.06) + 1e-6
    assert np.all(reach <= bound) and np.all(reach > 0.03 * K[0, 0] / (depth + 0.06) * 0.2)


def test_mp4_sample_table_matches_pyav(shared_data, tmp_path):
    """The header-only frame count / size reader agrees with PyAV on real MP4s; non-MP4 gives None."""
    import av

    from dexhands_data.sources.droid.video import VideoSpan, mp4_video_info

    videos = [shared_data / "droid_crowndata_ep0" / "video.mp4",
              *sorted((shared_data / "hand_video").glob("*.mp4"))]
    for video in videos:
        with av.open(str(video)) as c:
            s = c.streams.video[0]
            expected = (s.frames, s.codec_context.width, s.codec_context.height)
        assert mp4_video_info(str(video)) == expected
    not_mp4 = tmp_path / "x.mp4"
    not_mp4.write_bytes(b"\x00\x00\x00\x10junkjunkjunkjunk")
    assert mp4_video_info(str(not_mp4)) is None
    assert VideoSpan(str(videos[0]), 15.0, 2.0, 4.0).probe() == (30, 88, 50)
