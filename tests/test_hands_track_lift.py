"""The per-track hand lift (hands/track_lift.py), its smoother and the shape-keeping gap fill.

Real data: MediaPipe runs once on the real landmarker clip (``hand_video/``, one right hand lifted
towards the camera) and its raw outputs are replayed through sessions with different lift settings,
so every setting sees exactly the same detections. Geometry gets numbers (known rotations, ramps).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from dexhands_data.distortion import Distortion
from dexhands_data.geometry import Intrinsics, project
from dexhands_data.hands.mediapipe_backend import LegacyHandsDetector, MediaPipeHands, RawHand
from dexhands_data.hands.postprocess import PostprocessConfig, interpolate_hand
from dexhands_data.hands.relift import relift_track
from dexhands_data.hands.smoothing import SmootherConfig, rts_smooth
from dexhands_data.hands.track_lift import LiftConfig, lift_slot, ray_rotation, track_segments
from dexhands_data.keypoints import BONES, LEFT, MIDDLE_MCP, RIGHT, WRIST, bone_lengths
from dexhands_data.loader.crop import CropGeometry, project_hc_keypoints
from dexhands_data.records import HandTrack, VideoFrame
from dexhands_data.sources.videos import VideosSource
from test_hands_postprocess import right_hand_palm_to_camera


class Replay:
    """A HandDetector that gives back recorded raw hands in order (the real MediaPipe's outputs)."""

    def __init__(self, raws: list[list[RawHand]]):
        self.raws = list(raws)

    def __call__(self, *args):  # used as detector_factory
        return Replay(self.raws)

    def detect(self, image: np.ndarray) -> list[RawHand]:
        return self.raws.pop(0)

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def landmarker(shared_data):
    """(raw MediaPipe hands per frame, frames' intrinsics, frame shape) of the real landmarker clip."""
    src = VideosSource()
    ref = next(r for r in src.discover(str(shared_data / "hand_video")) if "landmarker" in r.relpath)
    ep = src.open(ref)
    det = LegacyHandsDetector(0, 0.5, 0.5, False, 2)
    raws = [det.detect(f.image) for f in ep.frames()]
    det.close()
    return raws, ep.intrinsics


def replay_track(landmarker, lift: LiftConfig | None = None, intrinsics: Intrinsics | None = None, **kw):
    raws, intr = landmarker
    est = MediaPipeHands(model_complexity=0, detector_factory=Replay(raws), lift=lift, **kw)
    session = est.session(intr)
    image = np.zeros((intr.height, intr.width, 3), np.uint8)
    for i in range(len(raws)):
        session.step(VideoFrame(i, i, i / 25.0, image))
    return session.finish(intrinsics)


RAW = LiftConfig(smoother=SmootherConfig("none"))
PER_FRAME = LiftConfig("rigid", False, "frame", pose="translation", smoother=SmootherConfig("none"))


def reprojection_px(track, mask: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Distances (px) between the stored 3D projected with K and the stored 2D, hands in ``mask``."""
    return np.linalg.norm(project(track.keypoints_cam[mask], K) - track.keypoints_2d[mask], axis=-1)


# ----------------------------------------------------------------------------- real track


def test_3d_lands_on_the_stored_2d_on_a_real_track(landmarker):
    track = replay_track(landmarker)
    v = track.valid
    assert v[:, RIGHT].mean() > 0.95
    err = reprojection_px(track, v, landmarker[1].K)
    assert np.median(err) < 1e-3 and err.max() < 0.01  # px; float32 storage rounding only
    assert track.processing["reprojection_px_median"] < 1e-3
    # the legacy translation-only lift misses its own 2D by pixels
    legacy = replay_track(landmarker, PER_FRAME)
    assert np.median(reprojection_px(legacy, v, landmarker[1].K)) > 2.0
    # what ran is recorded
    assert track.processing["lift"]["smoother"]["kind"] == "rts"
    assert track.config["lift"]["hand_size"] == "track"
    assert isinstance(track.processing["gap_frames_filled"], int)


def test_smoother_reduces_depth_jitter_without_lag_on_a_real_track(landmarker):
    raw = replay_track(landmarker, RAW)
    smooth = replay_track(landmarker, LiftConfig())
    v = raw.valid[:, RIGHT] & smooth.valid[:, RIGHT]
    assert v.mean() > 0.9
    first = int(np.argmax(v))
    last = len(v) - int(np.argmax(v[::-1]))
    z_raw = raw.keypoints_cam[first:last, RIGHT, WRIST, 2].astype(np.float64)
    z_smooth = smooth.keypoints_cam[first:last, RIGHT, WRIST, 2].astype(np.float64)

    def jitter(z):  # frame-to-frame acceleration, m / frame^2
        return np.nanmedian(np.abs(np.diff(z, 2)))

    assert jitter(z_smooth) < 0.3 * jitter(z_raw)
    # bounded lag: the smoothed depth follows the raw one (the hand comes ~2x closer) with no delay
    lags = range(-5, 6)
    ok = np.isfinite(z_raw) & np.isfinite(z_smooth)
    zr, zs = z_raw - np.nanmean(z_raw), z_smooth - np.nanmean(z_smooth)
    corr = [np.nansum(np.where(ok, zr, 0) * np.roll(np.where(ok, zs, 0), lag)) for lag in lags]
    assert abs(list(lags)[int(np.argmax(corr))]) <= 1
    assert abs(np.nanmedian(z_smooth - z_raw)) < 0.02 * np.nanmedian(z_raw)  # no bias
    assert np.nanmedian(z_raw[-30:]) < np.nanmedian(z_raw[:30])  # the hand does come closer


def test_one_hand_size_per_track_on_a_real_track(landmarker):
    """MediaPipe's own hand size drifts over the clip; with hand_size="track" the lifted shape keeps
    the track's bones, so the hand's 3D size (palm) varies much less from frame to frame."""
    per_frame = replay_track(landmarker, LiftConfig("rigid", True, "frame", smoother=SmootherConfig("none")))
    per_track = replay_track(landmarker, LiftConfig("rigid", True, "track", smoother=SmootherConfig("none")))
    v = per_frame.valid[:, RIGHT] & per_track.valid[:, RIGHT]
    bones_f = bone_lengths(per_frame.keypoints_cam[v, RIGHT].astype(np.float64))
    bones_t = bone_lengths(per_track.keypoints_cam[v, RIGHT].astype(np.float64))
    template = np.median(bones_f, axis=0)  # the track's hand: per-bone median (scale-free of the frames)
    ratio_f, ratio_t = np.median(bones_f / template, axis=1), np.median(bones_t / template, axis=1)
    assert np.std(ratio_f) > 0.05  # MediaPipe's hand size drifts by > 5 % over the clip
    np.testing.assert_allclose(ratio_t, 1.0, atol=2e-3)  # held: every frame has the track's size
    size_f, size_t = bones_f.sum(axis=1), bones_t.sum(axis=1)  # total bone length, any articulation
    assert np.std(size_t) / np.mean(size_t) < 0.5 * np.std(size_f) / np.mean(size_f)
    palm = [BONES.index((WRIST, MIDDLE_MCP))]
    wm_t = bone_lengths(per_track.keypoints_cam[v, RIGHT].astype(np.float64))[:, palm[0]]
    assert 0.06 < np.median(wm_t) < 0.12
    # a restart (a gap longer than restart_gap) estimates the size afresh: one track per run
    assert per_track.processing["tracks_right"] == len(track_segments(per_track.valid[:, RIGHT], 5))


def test_final_intrinsics_passed_to_finish_are_used(landmarker):
    """A pipeline that refines K (camera self-calibration) lifts with the final K: the 3D lands on
    the 2D with it."""
    raws, intr = landmarker
    wider = Intrinsics(intr.fx * 0.8, intr.fy * 0.8, intr.cx, intr.cy, intr.width, intr.height, "calibration")
    a, b = replay_track(landmarker), replay_track(landmarker, intrinsics=wider)
    v = a.valid & b.valid
    err = np.linalg.norm(project(b.keypoints_cam[v], wider.K) - b.keypoints_2d[v], axis=-1)
    assert np.median(err) < 1e-3 and b.processing["lift_intrinsics_source"] == "calibration"
    ratio = np.median(b.keypoints_cam[v][:, WRIST, 2] / a.keypoints_cam[v][:, WRIST, 2])
    assert ratio == pytest.approx(0.8, rel=0.1)  # depth shrinks ~ with the focal length
    with pytest.raises(ValueError, match="intrinsics"):
        replay_track(landmarker, intrinsics=intr.scaled(320, 180))


def test_heatmap_targets_land_on_the_stored_2d(landmarker):
    """The loader's HC targets (projection of keypoints_cam into the DexWM crop) are the stored 2D."""
    raws, intr = landmarker
    track = replay_track(landmarker)
    geom = CropGeometry.for_source(intr.width, intr.height)
    uv, visible = project_hc_keypoints(track.keypoints_cam, track.valid, intr.K, geom)
    hc_rows = [WRIST, 4, 8, 12, 16, 20]
    hc = np.concatenate([track.keypoints_2d[:, h][:, hc_rows] for h in (LEFT, RIGHT)], axis=1)
    expect = geom.source_to_crop(hc)
    assert visible.any()
    assert np.abs(uv[visible] - expect[visible]).max() < 0.01


# ----------------------------------------------------------------------------- handedness (real crops)


@pytest.mark.noncommercial
def test_chirality_decides_handedness_near_score_half_on_handgraphcnn(shared_data):
    """hand-graph-cnn real crops (always a left hand): MediaPipe's label is wrong on two crops, both with
    a score near 0.5, where the chirality test gives the right side."""
    import cv2
    from scipy.io import loadmat

    root = shared_data / "hand3d_gt" / "handgraphcnn_realworld_nc"
    params = loadmat(root / "params.mat")
    with_rule = MediaPipeHands(model_complexity=1)
    without = MediaPipeHands(model_complexity=1, chirality_below=0.0)
    for name in ("00200", "00450", "00000", "00350"):
        i = int(name)
        fx, fy, u0, v0 = params["cam_param"][i]
        x, y, w, _ = params["bbox"][i]
        r = 256.0 / w
        intr = Intrinsics(fx * r, fy * r, (u0 - x) * r, (v0 - y) * r, 256, 256, "dataset")
        img = cv2.cvtColor(cv2.imread(str(root / "images" / f"{name}.jpg")), cv2.COLOR_BGR2RGB)
        (d,) = with_rule.detect_image(img, intr)
        (raw,) = without.detect_image(img, intr)
        assert d.side == LEFT
        if name in ("00200", "00450"):
            assert raw.side == RIGHT and d.side_by_chirality and d.score < 0.55
        else:
            assert raw.side == LEFT and not d.side_by_chirality


# ----------------------------------------------------------------------------- bad input (fake runtime)


def _raw(hand_cam: np.ndarray, K: Intrinsics, label: str = "Left", score: float = 0.95) -> RawHand:
    uv = project(hand_cam, K.K)
    norm = np.column_stack([(uv[:, 0] + 0.5) / K.width, (uv[:, 1] + 0.5) / K.height, np.zeros(21)])
    return RawHand(label, score, norm, hand_cam - hand_cam.mean(axis=0))


def _session_track(raws, K):
    est = MediaPipeHands(detector_factory=Replay(raws))
    session = est.session(K)
    image = np.zeros((K.height, K.width, 3), np.uint8)
    for i in range(len(raws)):
        session.step(VideoFrame(i, i, i / 30.0, image))
    return session.finish()


K640 = Intrinsics(500.0, 500.0, 319.5, 239.5, 640, 480, "dataset")


def test_bad_input_keeps_validity_and_no_nan_in_valid_hands():
    hand = right_hand_palm_to_camera()
    # a track of one frame
    one = _session_track([[_raw(hand + [0.0, 0.0, 0.5], K640)]], K640)
    assert one.valid.tolist() == [[False, True]] and np.all(np.isfinite(one.keypoints_cam[0, RIGHT]))
    assert reprojection_px(one, one.valid, K640.K).max() < 1e-3
    # all-NaN landmarks: dropped at step, counted, never valid
    nan_raw = RawHand("Left", 0.9, np.full((21, 3), np.nan), np.full((21, 3), np.nan))
    frames = [[_raw(hand + [0.0, 0.0, 0.5], K640)], [nan_raw], [_raw(hand + [0.01, 0.0, 0.5], K640)]]
    tr = _session_track(frames, K640)
    assert tr.processing["lift_failed"] == 1
    assert tr.valid[:, RIGHT].tolist() == [True, True, True]  # the middle frame is a filled gap
    assert tr.processing["gap_frames_filled"] == 1 and tr.confidence[1, RIGHT].max() == 0
    # a hand that leaves the image (moving right until it is past the border)
    leaving = [[_raw(hand + [0.1 + 0.1 * t, 0.0, 0.5], K640)] for t in range(8)]
    tr = _session_track(leaving, K640)
    for t in range(8):
        if tr.valid[t, RIGHT]:
            assert np.all(np.isfinite(tr.keypoints_cam[t, RIGHT]))
            assert np.all(np.isfinite(tr.keypoints_2d[t, RIGHT]))
        else:
            assert np.all(np.isnan(tr.keypoints_cam[t, RIGHT]))
    outside = tr.keypoints_2d[:, RIGHT, :, 0] > 639.5
    assert outside.any() and np.all(tr.confidence[:, RIGHT][outside] == 0)
    assert not tr.valid[:, LEFT].any() and np.all(np.isnan(tr.keypoints_cam[:, LEFT]))


def test_lift_slot_with_nothing_valid_or_nan_frames():
    n = 4
    uv = np.full((n, 21, 2), np.nan)
    world = np.full((n, 21, 3), np.nan)
    res = lift_slot(uv, world, np.ones(n, bool), K640.K)
    assert res.tracks == 0 and np.all(np.isnan(res.keypoints_cam))


# ----------------------------------------------------------------------------- geometry with numbers


def test_ray_rotation_maps_the_optical_axis_onto_the_ray():
    K = np.array([[736.6, 0, 959.5], [0, 736.6, 539.5], [0, 0, 1.0]])
    for pixel in ([959.5, 539.5], [1800.0, 200.0], [10.0, 1000.0]):
        R = ray_rotation(np.array(pixel), K)
        np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(R) == pytest.approx(1.0)
        np.testing.assert_allclose(project(R @ [0, 0, 1.0], K), pixel, atol=1e-9)
    # at 105 deg FoV the image corner ray is ~57 deg off the axis
    R = ray_rotation(np.array([0.0, 0.0]), K)
    off_axis = np.degrees(np.arctan(np.hypot(959.5, 539.5) / 736.6))
    assert np.degrees(np.arccos(R[2, 2])) == pytest.approx(off_axis)


def test_rts_smoother_keeps_a_ramp_and_removes_noise():
    t = np.arange(120, dtype=np.float64)
    ramp = 0.5 + 0.002 * t
    np.testing.assert_allclose(rts_smooth(ramp), ramp, atol=1e-6)  # no lag on a steady motion
    rng = np.random.default_rng(0)
    truth = 0.4 + 0.05 * np.sin(t / 15)
    noisy = truth + rng.normal(0, 0.01, t.shape)
    noisy[40:43] = np.nan  # a bridged gap
    sm = rts_smooth(noisy, SmootherConfig("rts", 0.01, 0.0005))
    assert np.all(np.isfinite(sm))
    assert np.sqrt(np.nanmean((sm - truth) ** 2)) < 0.5 * np.sqrt(np.nanmean((noisy - truth) ** 2))
    np.testing.assert_array_equal(rts_smooth(noisy, SmootherConfig("none")), noisy)
    with pytest.raises(ValueError):
        SmootherConfig("kalman")


def test_interpolated_hand_keeps_its_shape_while_turning():
    """A hand turning 90 deg about the camera axis between two frames: the per-keypoint blend shrinks
    it (to ~71 % at mid-gap), the shape-keeping interpolation keeps every bone and turns it by 45 deg."""
    a = right_hand_palm_to_camera() + [0.0, 0.0, 0.5]
    c = a.mean(axis=0)
    Rz = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    b = (a - c) @ Rz.T + c + [0.02, 0.0, 0.0]
    mid = interpolate_hand(a, b, 0.5)
    np.testing.assert_allclose(bone_lengths(mid), bone_lengths(a), atol=1e-9)
    c45 = np.cos(np.pi / 4)
    R45 = np.array([[c45, -c45, 0], [c45, c45, 0], [0, 0, 1]])
    np.testing.assert_allclose(mid, (a - c) @ R45.T + c + [0.01, 0.0, 0.0], atol=1e-9)
    linear = 0.5 * (a + b)
    assert np.median(bone_lengths(linear) / bone_lengths(a)) < 0.8
    # 2D keeps its size too (the egocentric clip's filled hand collapsed to 36 px high from 95 px)
    def box(p):
        uv = project(p, K640.K)
        return np.ptp(uv, axis=0)
    assert np.all(box(mid) > 0.9 * np.minimum(box(a), box(b)))
    np.testing.assert_allclose(interpolate_hand(a, b, 0.0), a, atol=1e-12)
    np.testing.assert_allclose(interpolate_hand(a, b, 1.0), b, atol=1e-12)


@pytest.mark.noncommercial
def test_filled_hands_keep_their_size_on_the_real_egocentric_clip(shared_data):
    """The 1080p egocentric clip, both hands: every filled hand is about as large as its neighbours
    (a per-keypoint blend had collapsed the left hand at frame 111 to 133x36 px from 136x95 px),
    lands on its 2D, and a gap whose ends are mirror images (another hand took the slot) stays open."""
    src = VideosSource()
    ep = src.open(src.discover(str(shared_data / "egocentric_video_nc"))[0])
    session = MediaPipeHands(model_complexity=1).session(ep.intrinsics)
    for frame in ep.frames():
        session.step(frame)
    track = session.finish()
    filled = np.argwhere(track.valid & (track.confidence.max(axis=-1) == 0))
    assert track.processing["gap_frames_filled"] == len(filled) >= 1
    for t, h in filled:
        box = np.ptp(track.keypoints_2d[t, h], axis=0)
        ends = [np.ptp(track.keypoints_2d[u, h], axis=0) for u in (t - 1, t + 1) if track.valid[u, h]]
        assert np.all(box >= 0.8 * np.min(ends, axis=0))
        mask = np.zeros_like(track.valid)
        mask[t, h] = True
        assert reprojection_px(track, mask, ep.intrinsics.K).max() < 0.01
    assert track.processing["gaps_not_filled_mirrored"] >= 1 and not track.valid[111, LEFT]


def test_mirror_image_is_not_a_rotation():
    from dexhands_data.hands.postprocess import is_mirrored

    uv = project(right_hand_palm_to_camera() + [0.0, 0.0, 0.5], K640.K)
    turned = (uv - uv.mean(0)) @ np.array([[0.0, -1.0], [1.0, 0.0]]).T + uv.mean(0)
    mirror = uv * [-1.0, 1.0]
    assert not is_mirrored(uv, turned) and is_mirrored(uv, mirror)


def test_hand_smoother_flag_reaches_the_estimator_config():
    import argparse

    from dexhands_data.cli import extract as cli_extract

    parser = argparse.ArgumentParser()
    cli_extract.add_parser(parser.add_subparsers())
    args = parser.parse_args(["extract", "--input", "x", "--hand-smoother", "none"])
    raw = MediaPipeHands(**cli_extract._hands_options(args))
    default = MediaPipeHands(**cli_extract._hands_options(parser.parse_args(["extract", "--input", "x"])))
    assert raw.config()["lift"]["smoother"]["kind"] == "none"
    assert default.config()["lift"]["smoother"]["kind"] == "rts"


# ----------------------------------------------------------------------------- lens distortion

LENS = Distortion(-0.25, 0.05)
K640_LENS = replace(K640, source="sidecar", distortion=LENS)


def test_hands_seen_through_a_lens_are_lifted_on_ideal_pixels():
    """A hand at known places, its 2D seen through a barrel lens (the hand's keypoints move by up to
    43 px): the stored 2D stays the seen pixels, the 3D is the true hand, and it projects with the
    lens onto the stored 2D (so the loader's heatmaps land on the hand in the stored frames)."""
    hand = right_hand_palm_to_camera()
    places = [[-0.17 + 0.01 * t, -0.11, 0.45] for t in range(6)]  # towards the top-left corner
    truth = np.stack([hand + p for p in places])
    raws = [[_raw_seen(h, K640_LENS)] for h in truth]
    raws[3] = []  # a one-frame gap: filled on the ideal pixels, stored as seen
    tr = _session_track(raws, K640_LENS)
    assert tr.valid[:, RIGHT].all() and tr.processing["gap_frames_filled"] == 1
    seen = np.stack([K640_LENS.project(h) for h in truth])
    keep = [0, 1, 2, 4, 5]
    np.testing.assert_allclose(tr.keypoints_2d[keep, RIGHT], seen[keep], atol=1e-3)
    err_3d = np.linalg.norm(tr.keypoints_cam[keep, RIGHT] - truth[keep], axis=-1)
    assert np.median(err_3d) < 1e-4, np.median(err_3d)  # m (exact shape: exact lift)
    on_2d = np.linalg.norm(K640_LENS.project(tr.keypoints_cam[:, RIGHT]) - tr.keypoints_2d[:, RIGHT], axis=-1)
    assert on_2d.max() < 1e-3  # px, filled frame included
    assert tr.processing["lift_distortion"] == LENS.to_list()
    # the same pixels lifted as a pinhole: the hand lands centimetres off (6.4 cm)
    pinhole = _session_track(raws, K640)
    assert np.median(np.linalg.norm(pinhole.keypoints_cam[keep, RIGHT] - truth[keep], axis=-1)) > 0.03
    # heatmap targets (HC keypoints in the DexWM crop) with the lens are the stored 2D
    geom = CropGeometry.for_source(640, 480)
    uv, visible = project_hc_keypoints(tr.keypoints_cam, tr.valid, K640.K, geom, LENS)
    hc = np.concatenate([tr.keypoints_2d[:, h][:, [WRIST, 4, 8, 12, 16, 20]] for h in (LEFT, RIGHT)], axis=1)
    assert visible.any() and np.abs(uv[visible] - geom.source_to_crop(hc)[visible]).max() < 0.01
    uv_pinhole, _ = project_hc_keypoints(tr.keypoints_cam, tr.valid, K640.K, geom)
    assert np.abs(uv_pinhole[visible] - uv[visible]).max() > 3.0  # crop px: the lens matters


def test_relift_with_a_lens_places_the_shape_on_the_ideal_rays():
    hand = right_hand_palm_to_camera() + [0.15, 0.1, 0.4]
    track = HandTrack.empty(1, "hamer==test")
    track.keypoints_2d[0, RIGHT] = K640_LENS.project(hand)
    track.keypoints_cam[0, RIGHT] = hand + [0.03, -0.02, 0.05]  # placed as a pinhole would: wrong
    track.valid[0, RIGHT] = True
    out = relift_track(track, K640_LENS)
    np.testing.assert_allclose(out.keypoints_cam[0, RIGHT], hand, atol=1e-4)
    assert out.lift_residual_px[0, RIGHT] < 1e-3
    np.testing.assert_array_equal(out.keypoints_2d, track.keypoints_2d)  # pixels as seen


def _raw_seen(hand_cam: np.ndarray, K: Intrinsics) -> RawHand:
    """What MediaPipe reports for a hand seen through ``K``'s lens (normalised image landmarks)."""
    uv = K.project(hand_cam)
    norm = np.column_stack([(uv[:, 0] + 0.5) / K.width, (uv[:, 1] + 0.5) / K.height, np.zeros(21)])
    return RawHand("Left", 0.95, norm, hand_cam - hand_cam.mean(axis=0))


def test_a_hand_beyond_the_lens_fold_is_dropped_not_stored_with_nan():
    """Self-calibration can give finish() a lens the per-frame detections did not know: a hand whose
    landmarks lie outside the frame beyond that lens's fold (no ray) is dropped and counted."""
    lens = Distortion(-0.22)  # one-to-one up to 0.821 normalised: just past the frame's corners
    K_lens = replace(K640, source="self_calibrated", distortion=lens)
    hand = right_hand_palm_to_camera()
    inside = _raw(hand + [0.0, 0.0, 0.5], K640)
    far = RawHand("Left", 0.95, inside.landmarks + [0.62, 0.0, 0.0], inside.world)  # ~400 px right
    assert (far.landmarks[:, 0] * 640 - 0.5 - 319.5).max() / 500 > 0.83
    est = MediaPipeHands(detector_factory=Replay([[inside], [far], [inside]]), postprocess=PostprocessConfig(max_gap_fill=0))
    session = est.session(K640)
    for i in range(3):
        session.step(VideoFrame(i, i, i / 30.0, np.zeros((480, 640, 3), np.uint8)))
    tr = session.finish(K_lens)
    assert tr.valid[:, RIGHT].tolist() == [True, False, True]
    assert tr.processing["hands_beyond_lens_fold"] == 1
    assert np.isfinite(tr.keypoints_cam[tr.valid]).all() and np.isnan(tr.keypoints_2d[1]).all()
