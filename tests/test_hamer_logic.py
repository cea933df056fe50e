"""The logic around HaMeR, tested with numbers: boxes, crops and their inverses, mirroring of left hands,
weak-perspective camera -> real camera, MANO -> our keypoint order, batching, and the whole session.

HaMeR itself is not installed here (no GPU, licence-gated MANO files). :class:`KnownHandsModel` stands
in for it: a ``torch.nn.Module`` with HAMER's interface (``model(batch)`` on the dict ViTDetDataset
builds -> ``pred_cam``, ``pred_keypoints_3d``, ``pred_keypoints_2d``, ``pred_vertices``, ...; a
``cfg`` with ``MODEL.IMAGE_SIZE``, ``EXTRA.FOCAL_LENGTH``, ...; ``mano.joint_map``) that answers
what a perfect network would for known camera-frame hands: the right-hand (mirrored for a left hand)
root-relative 3D joints, their normalised crop coordinates, and the least-squares weak-perspective
camera. The hands come from the real MediaPipe backend on real photos and video, so boxes and crops
are real; crop -> model -> un-crop -> lift must give those hands back.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from dexhands_data.geometry import Intrinsics, project
from dexhands_data.hands import registry
from dexhands_data.hands.batching import CropBatcher, CropItem, collate
from dexhands_data.hands.compare import compare_tracks
from dexhands_data.hands.crops import (
    CropTransform,
    box_from_keypoints,
    crop_image,
    denormalize_crop,
    normalize_crop,
    square_crop_size,
)
from dexhands_data.hands.hamer_backend import (
    MANO_TO_OURS,
    RAW_MANO_JOINTS,
    HamerHands,
    HamerPredictor,
    HamerUnavailable,
    decode_hand,
    locate_hamer,
    weak_perspective_to_camera,
)
from dexhands_data.hands.mediapipe_backend import MediaPipeHands
from dexhands_data.hands.postprocess import PostprocessConfig, postprocess_track
from dexhands_data.hands.smoothing import SmootherConfig
from dexhands_data.hands.track_lift import LiftConfig
from dexhands_data.keypoints import KEYPOINT_NAMES, LEFT, RIGHT
from dexhands_data.records import VideoFrame

IMAGES = "hand_images"


def load_rgb(path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


class Cfg(dict):
    """A yacs-like config node (attribute access and ``.get``)."""

    __getattr__ = dict.__getitem__


def standin_cfg() -> Cfg:
    return Cfg(MODEL=Cfg(IMAGE_SIZE=256, IMAGE_MEAN=[0.485, 0.456, 0.406], IMAGE_STD=[0.229, 0.224, 0.225],
                         BBOX_SHAPE=[192, 256]),
               EXTRA=Cfg(FOCAL_LENGTH=5000.0))


class KnownHandsModel(torch.nn.Module):
    """HAMER's forward interface, answering from known camera-frame hands (see the module doc).

    ``hands``: (keypoints_cam (21, 3) in OUR order, is_right) in the order the crops will arrive.
    ``crop_camera_2d``: False -> pred_keypoints_2d are where the keypoints really are in the crop
    (perspective-exact); True -> as HaMeR computes them, the projection of pred_keypoints_3d through
    its crop camera (focal FOCAL_LENGTH / IMAGE_SIZE, translation from pred_cam).
    ``raw_mano_order``: outputs in raw MANO order and no ``joint_map`` (a plain smplx MANO layer).
    """

    def __init__(self, hands: list[tuple[np.ndarray, bool]], K: np.ndarray, crop_camera_2d: bool = False,
                 raw_mano_order: bool = False):
        super().__init__()
        self.cfg = standin_cfg()
        self.mano = torch.nn.Module()
        if not raw_mano_order:
            self.mano.register_buffer("joint_map", torch.tensor(MANO_TO_OURS))
        self.hands = list(hands)
        self.K = np.asarray(K, dtype=np.float64)
        self.crop_camera_2d = crop_camera_2d
        self.raw_mano_order = raw_mano_order
        self.seen: list[dict] = []

    def forward(self, batch: dict) -> dict:
        B, S = batch["img"].shape[0], self.cfg.MODEL.IMAGE_SIZE
        assert tuple(batch["img"].shape) == (B, 3, S, S) and batch["img"].dtype == torch.float32
        f_n = self.cfg.EXTRA.FOCAL_LENGTH / S
        cams, kp3, kp2 = [], [], []
        for b in range(B):
            gt, is_right = self.hands.pop(0)
            assert bool(batch["right"][b] > 0.5) == is_right
            center = batch["box_center"][b].double().numpy()
            size = float(batch["box_size"][b])
            self.seen.append({"center": center, "size": size, "right": is_right})
            n = (project(gt, self.K) - center) / size  # HaMeR's normalised crop coordinates, unmirrored
            local = gt - gt[0]
            if not is_right:  # the network sees a mirrored crop: a right hand with x negated
                n[:, 0] = -n[:, 0]
                local = local * np.array([-1.0, 1.0, 1.0])
            A = np.zeros((42, 3))
            A[:21, 0], A[:21, 1], A[21:, 0], A[21:, 2] = local[:, 0], 1.0, local[:, 1], 1.0
            a, bx, by = np.linalg.lstsq(A, np.concatenate([n[:, 0], n[:, 1]]), rcond=None)[0]
            s, tx, ty = 2.0 * a, bx / a, by / a
            if self.crop_camera_2d:
                tz = 2.0 * f_n / s
                n = f_n * (local[:, :2] + [tx, ty]) / (local[:, 2:3] + tz)
            cams.append([s, tx, ty])
            kp3.append(local)
            kp2.append(n)
        kp3, kp2 = np.array(kp3), np.array(kp2)
        if self.raw_mano_order:
            inv = np.argsort(MANO_TO_OURS)
            kp3, kp2 = kp3[:, inv], kp2[:, inv]
        cam = torch.tensor(cams, dtype=torch.float32)
        return {
            "pred_cam": cam,
            "pred_cam_t": torch.stack([cam[:, 1], cam[:, 2], 2 * f_n / cam[:, 0]], dim=-1),
            "focal_length": torch.full((B, 2), self.cfg.EXTRA.FOCAL_LENGTH),
            "pred_keypoints_3d": torch.tensor(kp3, dtype=torch.float32),
            "pred_keypoints_2d": torch.tensor(kp2, dtype=torch.float32),
            "pred_vertices": torch.zeros((B, 778, 3)),
        }


def standin_factory(model: KnownHandsModel):
    return lambda device: (model, model.cfg)


@pytest.fixture(scope="module")
def mediapipe() -> MediaPipeHands:
    return MediaPipeHands(static_image_mode=True)


def detections(mp: MediaPipeHands, shared_data, name: str):
    img = load_rgb(shared_data / IMAGES / name)
    h, w = img.shape[:2]
    K = Intrinsics.from_fov(w, h, 60.0)
    return img, K, mp.detect_image(img, K)


# ----------------------------------------------------------------------------- boxes and crops


def test_boxes_from_real_mediapipe_keypoints(mediapipe, shared_data):
    img, K, dets = detections(mediapipe, shared_data, "hamer_test1.jpg")
    assert len(dets) == 2
    for det in dets:
        box = box_from_keypoints(det.keypoints_2d)
        kp = det.keypoints_2d
        assert np.allclose(box, [kp[:, 0].min(), kp[:, 1].min(), kp[:, 0].max(), kp[:, 1].max()])
        w, h = box[2] - box[0], box[3] - box[1]
        size = square_crop_size(box, 2.5, (192, 256))
        assert size == pytest.approx(2.5 * max(w * 256 / 192, h))
        for flip in (False, True):
            tr = CropTransform.for_box(box, flip)
            assert np.allclose(tr.to_crop([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2]), [128, 128])
            # every keypoint lands inside the 192-wide centre band the ViT actually sees
            c = tr.to_crop(kp)
            assert np.all((c[:, 0] > 32) & (c[:, 0] < 224) & (c[:, 1] > 0) & (c[:, 1] < 256))
    with pytest.raises(ValueError, match="at least 4"):
        box_from_keypoints(np.full((21, 2), np.nan))
    # wide boxes grow in height, tall boxes in width (then the square takes the longer side)
    assert square_crop_size(np.array([0, 0, 100, 10]), 1.0) == pytest.approx(100 * 256 / 192)
    assert square_crop_size(np.array([0, 0, 10, 100]), 1.0) == pytest.approx(100)
    assert square_crop_size(np.array([0, 0, 10, 100]), 2.0, None) == pytest.approx(200)


def test_crop_transform_round_trip_and_mirror():
    rng = np.random.default_rng(0)
    tr = CropTransform((812.3, 401.7), 371.2, flip=False)
    trf = CropTransform((812.3, 401.7), 371.2, flip=True)
    p = rng.uniform(0, 1500, size=(50, 2))
    for t in (tr, trf):
        assert np.allclose(t.to_image(t.to_crop(p)), p, atol=1e-9)
        assert np.allclose(t.normalized_to_image(t.image_to_normalized(p)), p, atol=1e-9)
    # the mirrored crop is the plain crop reflected about the crop centre column: u_c' = S - u_c
    assert np.allclose(trf.to_crop(p)[:, 0], 256 - tr.to_crop(p)[:, 0])
    assert np.allclose(trf.to_crop(p)[:, 1], tr.to_crop(p)[:, 1])
    # ... and it is HaMeR's construction: mirror the image (u -> W - 1 - u), crop around the mirrored centre
    W = 1920
    plain_of_mirrored = CropTransform((W - 1 - 812.3, 401.7), 371.2, flip=False)
    mirrored_p = np.stack([W - 1 - p[:, 0], p[:, 1]], axis=1)
    assert np.allclose(plain_of_mirrored.to_crop(mirrored_p), trf.to_crop(p), atol=1e-9)
    # HaMeR-normalised coordinates: u = c + size n (right), u = c - size n (left)
    n = np.array([[0.1, -0.2]])
    assert np.allclose(tr.normalized_to_image(n), [[812.3 + 37.12, 401.7 - 74.24]])
    assert np.allclose(trf.normalized_to_image(n), [[812.3 - 37.12, 401.7 - 74.24]])


def test_crop_pixels_sample_where_the_transform_says():
    """Bilinear sampling reproduces a linear image exactly, so every crop pixel must equal the image
    function at to_image(pixel): checks the warp, its pixel convention and the mirror together."""
    H, W = 1080, 1920
    v, u = np.mgrid[0:H, 0:W].astype(np.float32)
    image = np.stack([0.1 * u + 7, 0.2 * v + 3, 0.05 * u + 0.1 * v], axis=-1).astype(np.float32)
    for flip in (False, True):
        tr = CropTransform((900.4, 500.6), 300.0, flip)
        crop = crop_image(image, tr)
        ii, jj = np.mgrid[0:256, 0:256]
        uv = tr.to_image(np.stack([jj, ii], axis=-1).reshape(-1, 2).astype(np.float64))
        expect = np.stack([0.1 * uv[:, 0] + 7, 0.2 * uv[:, 1] + 3, 0.05 * uv[:, 0] + 0.1 * uv[:, 1]], axis=-1)
        assert np.abs(crop.reshape(-1, 3) - expect).max() < 0.05


def test_real_crops_mirror_and_normalise(mediapipe, shared_data):
    img, K, dets = detections(mediapipe, shared_data, "mediapipe_hand_thumb_up.jpg")
    (det,) = dets
    assert det.side == LEFT
    box = box_from_keypoints(det.keypoints_2d)
    plain = crop_image(img, CropTransform.for_box(box, False))
    mirrored = crop_image(img, CropTransform.for_box(box, True))
    assert plain.shape == (256, 256, 3) and plain.dtype == np.uint8
    # column j of the mirrored crop samples the image where column 256 - j of the plain crop does
    assert np.abs(mirrored[:, 1:].astype(int) - plain[:, :0:-1].astype(int)).max() <= 1
    x = normalize_crop(mirrored)
    assert x.shape == (3, 256, 256) and x.dtype == np.float32
    assert np.allclose(denormalize_crop(x), mirrored, atol=1e-3)
    assert np.allclose(x[0, 0, 0], (mirrored[0, 0, 0] - 0.485 * 255) / (0.229 * 255), atol=1e-5)


# ----------------------------------------------------------------------------- camera and keypoint order


def cam_crop_to_full_reference(pred_cam, center, size, W, H, focal):
    """HaMeR's published conversion (demo.py / renderer.cam_crop_to_full), re-derived independently."""
    s, tx, ty = pred_cam
    bs = size * s
    return np.array([2 * (center[0] - W / 2) / bs + tx, 2 * (center[1] - H / 2) / bs + ty, 2 * focal / bs])


def test_weak_perspective_equals_hamer_formula_with_hamer_default_camera():
    W, H = 1920, 1080
    focal = 5000 / 256 * max(W, H)  # HaMeR's scaled_focal_length
    K_default = np.array([[focal, 0, W / 2], [0, focal, H / 2], [0, 0, 1]])
    pred_cam = (0.9, 0.03, -0.05)
    tr = CropTransform((1400.0, 700.0), 420.0, flip=False)
    got = weak_perspective_to_camera(pred_cam, tr, K_default)
    assert np.allclose(got, cam_crop_to_full_reference(pred_cam, tr.center, tr.size, W, H, focal))
    # left hand: HaMeR negates tx (multiplier = 2 * right - 1) before the same conversion
    trf = CropTransform((1400.0, 700.0), 420.0, flip=True)
    got_left = weak_perspective_to_camera(pred_cam, trf, K_default)
    expect_left = cam_crop_to_full_reference((0.9, -0.03, -0.05), tr.center, tr.size, W, H, focal)
    assert np.allclose(got_left, expect_left)
    # with a real camera the depth scales with its focal, and the hand origin projects to the same pixel
    K = np.array([[1400.0, 0, 955.0], [0, 1400.0, 545.0], [0, 0, 1]])
    t_real = weak_perspective_to_camera(pred_cam, tr, K)
    assert t_real[2] == pytest.approx(got[2] * 1400.0 / focal)
    assert np.allclose(project(t_real, K), project(got, K_default))


def test_mano_to_our_keypoint_order():
    assert tuple(RAW_MANO_JOINTS[i] for i in MANO_TO_OURS) == KEYPOINT_NAMES
    assert sorted(MANO_TO_OURS) == list(range(21))


# ----------------------------------------------------------------------------- batching


def _items(n: int) -> list[CropItem]:
    tr = CropTransform((100.0, 100.0), 50.0, flip=False)
    trf = CropTransform((100.0, 100.0), 50.0, flip=True)
    return [CropItem(i // 2, i % 2, trf if i % 2 == LEFT else tr, np.full((3, 4, 4), i, np.float32),
                     (640, 480))
            for i in range(n)]


@pytest.mark.parametrize("in_flight", [0, 2])
def test_batcher_sizes_flush_and_mapping_back(in_flight):
    calls = []

    def predict(batch):
        calls.append(batch["img"].shape[0])
        ids = batch["img"][:, 0, 0, 0]
        return {"echo": ids * 10, "right": batch["right"]}

    batcher = CropBatcher(predict, max_batch=32, max_in_flight=in_flight)
    results = []
    for it in _items(70):
        results += batcher.add(it)
    results += batcher.flush()
    batcher.close()
    assert calls == [32, 32, 6]
    assert len(results) == 70
    for item, out in results:
        assert out["echo"] == 10 * (2 * item.frame + item.side)
        assert out["right"] == (1.0 if item.side == RIGHT else 0.0)
    assert batcher.stats.to_dict()["mean_batch_size"] == pytest.approx(70 / 3)
    b = collate(_items(3))
    assert b["img"].shape == (3, 3, 4, 4) and b["right"].tolist() == [0.0, 1.0, 0.0]
    assert b["img_size"].tolist() == [[640, 480]] * 3 and b["box_size"].tolist() == [50.0] * 3


def test_batcher_rejects_outputs_without_batch_axis():
    batcher = CropBatcher(lambda batch: {"bad": np.zeros(5)}, max_batch=2)
    batcher.add(_items(1)[0])
    with pytest.raises(ValueError, match="leading batch axis of 2"):
        batcher.add(_items(2)[1])


# ----------------------------------------------------------------------------- the whole path


def test_session_recovers_known_hands_on_real_photos(mediapipe, shared_data):
    """Right hands (hamer_test1) and a left hand (thumbs-up) through MediaPipe boxes, real crops,
    the stand-in network, un-mirroring and the lift with the photo's intrinsics: ~0 error."""
    for name, sides in (("hamer_test1.jpg", None), ("mediapipe_hand_thumb_up.jpg", [LEFT])):
        img, K, _ = detections(mediapipe, shared_data, name)
        ref_session = mediapipe.session(K)
        ref = ref_session.step(VideoFrame(0, 0, 0.0, img))
        ref_session.finish()
        known = [(ref.keypoints_cam[s].astype(np.float64), s == RIGHT) for s in (LEFT, RIGHT) if ref.valid[s]]
        if sides:
            assert [s for s in (LEFT, RIGHT) if ref.valid[s]] == sides
        model = KnownHandsModel(known, K.K)
        est = HamerHands(model_factory=standin_factory(model), static_image_mode=True, device="cpu",
                         batch_size=4,
                         detector_model_complexity=1)
        session = est.session(K)
        session.step(VideoFrame(0, 0, 0.0, img))
        track = session.finish()
        assert track.valid[0].tolist() == ref.valid.tolist()
        for s in np.flatnonzero(ref.valid):
            assert np.abs(track.keypoints_cam[0, s] - ref.keypoints_cam[s]).max() < 1e-5  # metres
            assert np.abs(track.keypoints_2d[0, s] - project(ref.keypoints_cam[s], K.K)).max() < 1e-3  # px
            assert track.lift_residual_px[0, s] < 1e-3
        p = track.processing
        assert p["crops_mirrored"] == int(ref.valid[LEFT]) and p["crops_right"] == int(ref.valid[RIGHT])
        assert p["network_batches"] == 1 and 0.8 < p["weak_perspective_depth_ratio_median"] < 1.25
        assert track.estimator == "hamer==custom:KnownHandsModel"
        # the boxes the network got are the MediaPipe-keypoint boxes, padded 2.5x to the 192:256 aspect
        for seen, s in zip(model.seen, np.flatnonzero(ref.valid)):
            box = box_from_keypoints(ref.keypoints_2d[s])
            assert np.allclose(seen["center"], [(box[0] + box[2]) / 2, (box[1] + box[3]) / 2], atol=1e-3)
            assert seen["size"] == pytest.approx(square_crop_size(box), rel=1e-6)


@pytest.fixture(scope="module")
def ego_frames(shared_data) -> list[VideoFrame]:
    import av

    frames = []
    with av.open(str(shared_data / "egocentric_video_nc" / "hawor_example_video_0.mp4")) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i >= 12:
                break
            frames.append(VideoFrame(i, i, i / 30.0, f.to_ndarray(format="rgb24")))
    return frames


@pytest.mark.noncommercial
@pytest.mark.parametrize("detect_every", [1, 3])
def test_session_on_real_egocentric_video_batches_across_frames(ego_frames, detect_every):
    """1080p egocentric clip, both hands: crops of 12 frames in batches of 5 (one in flight on the
    background thread) come back to the right (frame, hand) and give the known hands back. With
    detect_every=3 the detector runs on frames 0, 3, 6, 9 and the frames between reuse its boxes."""
    K = Intrinsics.from_fov(1920, 1080, 90.0)
    per_frame = LiftConfig(method="rigid", ray_rotation=False, hand_size="frame", pose="translation",
                           smoother=SmootherConfig("none"))  # finish() keeps step()'s 3D
    ref_session = MediaPipeHands(model_complexity=0, lift=per_frame).session(K)
    known, requested, last = [], [], None
    for i, fr in enumerate(ego_frames):  # the same detector calls the session will make
        if i % detect_every == 0 or last is None or not last.valid.any():
            last = ref_session.step(fr)
        for s in (LEFT, RIGHT):
            if last.valid[s]:
                known.append((last.keypoints_cam[s].astype(np.float64), s == RIGHT))
                requested.append((i, s, box_from_keypoints(last.keypoints_2d[s])))
    ref = ref_session.finish()
    assert sum(r for _, r in known) >= 6 and sum(not r for _, r in known) >= 6  # both hands, many frames
    model = KnownHandsModel(known, K.K)
    raw = PostprocessConfig(fix_swaps=False, max_gap_fill=0)  # compare the values the network produced
    est = HamerHands(model_factory=standin_factory(model), device="cpu", batch_size=5, max_in_flight=1,
                     detect_every=detect_every, postprocess=raw)
    session = est.session(K)
    for fr in ego_frames:
        fh = session.step(fr)
        assert fh.keypoints_2d.shape == (2, 21, 2)  # the detector's hands, at once
    track = session.finish()
    assert not model.hands  # every known hand was asked for, in order
    p = track.processing
    assert p["network_batches"] == -(-len(known) // 5) and p["network_crops"] == len(known)
    assert p["frames_detected"] == (12 if detect_every == 1 else 4) and p["frames"] == 12
    for (i, s, box), seen, (gt, _) in zip(requested, model.seen, known):
        assert np.allclose(seen["center"], [(box[0] + box[2]) / 2, (box[1] + box[3]) / 2], atol=1e-3)
        assert np.abs(track.keypoints_cam[i, s] - gt).max() < 1e-5
    if detect_every == 1:
        cmp = compare_tracks(ref, postprocess_track(track))  # both with the default temporal clean-up
        assert cmp.pairs == len(known) and cmp.handedness_agreement == 1.0 and cmp.detection_agreement == 1.0
        assert cmp.mpjpe_cam_mm < 1e-2 and cmp.pa_mpjpe_mm < 1e-2


def test_real_intrinsics_beat_hamer_default_focal_with_crop_camera_outputs(mediapipe, shared_data):
    """With HaMeR-consistent 2D (projections through its near-orthographic crop camera) our lift with
    the photo's intrinsics stays close to the true hand; HaMeR's default focal puts it far too deep."""
    img, K, dets = detections(mediapipe, shared_data, "mediapipe_hand_thumb_up.jpg")
    (det,) = dets
    gt = det.keypoints_cam
    tr = CropTransform.for_box(box_from_keypoints(det.keypoints_2d), flip=det.side == LEFT)
    model = KnownHandsModel([(gt, det.side == RIGHT)], K.K, crop_camera_2d=True)
    batch = collate([CropItem(0, det.side, tr, np.zeros((3, 256, 256), np.float32), (K.width, K.height))])
    out = HamerPredictor(model, "cpu")(batch)
    hand = decode_hand({k: v[0] for k, v in out.items()}, tr, K.K)
    ours = np.linalg.norm(hand.keypoints_cam - gt, axis=-1).mean()
    focal = 5000 / 256 * max(K.width, K.height)
    pred_cam = out["pred_cam"][0]
    t_default = cam_crop_to_full_reference((pred_cam[0], -pred_cam[1], pred_cam[2]), tr.center, tr.size,
                                           K.width, K.height, focal)
    local = hand.keypoints_cam - hand.translation  # un-mirrored network 3D
    default = np.linalg.norm(local + t_default - gt, axis=-1).mean()
    assert ours < 0.005 and default > 1.0  # metres: 1.7 mm vs 5.6 m off (measured)
    assert 1.0 < hand.lift_residual_px < 15.0  # the crop camera is near-orthographic: the residual shows it
    print(f"mean 3D error: ours {ours * 1000:.1f} mm, default focal {default:.2f} m, "
          f"residual {hand.lift_residual_px:.1f} px")


def test_raw_mano_order_models_are_remapped(mediapipe, shared_data):
    img, K, dets = detections(mediapipe, shared_data, "hamer_test1.jpg")
    det = dets[0]
    tr = CropTransform.for_box(box_from_keypoints(det.keypoints_2d), flip=det.side == LEFT)
    batch = collate([CropItem(0, det.side, tr, np.zeros((3, 256, 256), np.float32), (K.width, K.height))])
    model = KnownHandsModel([(det.keypoints_cam, det.side == RIGHT)], K.K, raw_mano_order=True)
    out = HamerPredictor(model, "cpu")(batch)
    hand = decode_hand({k: v[0] for k, v in out.items()}, tr, K.K)
    assert np.abs(hand.keypoints_cam - det.keypoints_cam).max() < 1e-5


# ----------------------------------------------------------------------------- install check


def test_missing_install_is_named_exactly(tmp_path, monkeypatch):
    monkeypatch.delenv("HAMER_CHECKPOINT", raising=False)
    monkeypatch.delenv("HAMER_MANO_DIR", raising=False)
    ckpt = tmp_path / "_DATA" / "hamer_ckpts" / "checkpoints" / "hamer.ckpt"
    with pytest.raises(HamerUnavailable) as exc:
        locate_hamer(ckpt)
    msg = str(exc.value)
    assert "'hamer' is not installed" in msg and str(ckpt) in msg and "MANO_RIGHT.pkl" in msg
    assert "--hamer-checkpoint" in msg and "HAMER_MANO_DIR" in msg
    with pytest.raises(HamerUnavailable, match="'hamer' is not installed"):
        registry.create("hamer", checkpoint=str(ckpt))
    model = KnownHandsModel([], np.eye(3))  # a model with HaMeR's interface plugs in through the registry
    est = registry.create("hamer", model_factory=standin_factory(model), device="cpu")
    assert isinstance(est, HamerHands) and est.config()["image_size"] == 256 and est.predictor.model is model
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"x")
    with pytest.raises(HamerUnavailable, match="model_config.yaml"):
        locate_hamer(ckpt, check_package=False)
    (ckpt.parent.parent / "model_config.yaml").write_text("MODEL: {}\n")
    mano = tmp_path / "_DATA" / "data" / "mano"
    mano.mkdir(parents=True)
    (mano / "MANO_RIGHT.pkl").write_bytes(b"x")
    monkeypatch.setenv("HAMER_CHECKPOINT", str(ckpt))  # the env var is honoured
    files = locate_hamer(check_package=False)
    assert files.checkpoint == ckpt and files.mano_dir == mano and files.data_dir == tmp_path / "_DATA"
    other = tmp_path / "mano_elsewhere"
    with pytest.raises(HamerUnavailable, match=f"MANO_RIGHT.pkl is not in {other}"):
        locate_hamer(ckpt, other, check_package=False)


def test_session_finished_with_a_refined_focal_replaces_hands_on_the_same_pixels(mediapipe, shared_data):
    """The pipeline passes a self-calibrated K to ``finish``: HaMeR's per-frame hands are re-placed
    with it (same 2D keypoints, 3D now reprojecting with the new K)."""
    img, K, _ = detections(mediapipe, shared_data, "mediapipe_hand_thumb_up.jpg")
    ref_session = mediapipe.session(K)
    ref = ref_session.step(VideoFrame(0, 0, 0.0, img))
    ref_session.finish()
    known = [(ref.keypoints_cam[s].astype(np.float64), s == RIGHT) for s in (LEFT, RIGHT) if ref.valid[s]]
    K2 = Intrinsics(K.fx * 1.3, K.fy * 1.3, K.cx, K.cy, K.width, K.height, "self_calibrated")
    tracks = []
    for final in (None, K2):
        est = HamerHands(model_factory=standin_factory(KnownHandsModel(known, K.K)), static_image_mode=True,
                         device="cpu", batch_size=4, detector_model_complexity=1)
        session = est.session(K)
        session.step(VideoFrame(0, 0, 0.0, img))
        tracks.append(session.finish(final))
    plain, refined = tracks
    assert refined.valid.tolist() == plain.valid.tolist() and plain.valid.any()
    for s in np.flatnonzero(plain.valid[0]):
        np.testing.assert_allclose(refined.keypoints_2d[0, s], plain.keypoints_2d[0, s], atol=1e-4)
        uv = project(refined.keypoints_cam[0, s].astype(np.float64), K2.K)
        rms = np.sqrt(np.mean(np.sum((uv - refined.keypoints_2d[0, s]) ** 2, axis=-1)))
        # one rigid shape moved by a translation: a few px off under the new perspective, as recorded
        assert rms < 2.0 and rms == pytest.approx(refined.lift_residual_px[0, s], abs=1e-3)
        # a longer focal sees the same pixels from further away
        assert refined.keypoints_cam[0, s, 0, 2] > 1.2 * plain.keypoints_cam[0, s, 0, 2]
    assert refined.processing["relifted_with_intrinsics"] == "self_calibrated"
