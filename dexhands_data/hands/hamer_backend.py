"""HaMeR (Pavlakos et al., CVPR 2024) hands: MediaPipe boxes -> batched crops -> HaMeR -> real-camera lift.

Needs the user's own install of the official ``hamer`` package, its checkpoint (``hamer.ckpt`` with
``model_config.yaml`` two folders up, as ``fetch_demo_data.sh`` lays them out) and the MANO right-hand
model ``MANO_RIGHT.pkl`` (licence-gated, mano.is.tue.mpg.de). Nothing is downloaded here;
:func:`locate_hamer` raises :class:`HamerUnavailable` naming every missing piece.

What differs from HaMeR's demo, and why:
- **Boxes** come from MediaPipe Hands in tracking mode (the estimator we already run; its palm
  detector only fires when the tracker loses a hand, otherwise the ROI follows the previous frame's
  landmarks), not from the ViTDet body detector + ViTPose whole-body keypoints (0.5-4 s per frame).
  Handedness is MediaPipe's label after our mirror rule (``mediapipe_backend``), and tells HaMeR which
  crops to mirror.
- **Batching across frames**: crops of many frames go to the GPU together (:mod:`.batching`).
- **Left hands**: HaMeR only models right hands; a left hand is cropped mirrored and the network's
  right-hand answer is mirrored back: 3D x negated, 2D through the mirrored crop's inverse, and
  ``pred_cam`` tx negated. (HaMeR's demo negates x of the vertices but saves ``pred_keypoints_3d``
  un-negated, which is where "mirrored left hands" come from.)
- **Camera**: HaMeR's ``cam_crop_to_full`` assumes a focal of 5000 / 256 * max(W, H) px and the
  principal point at the image centre. We place the hand with the video's real intrinsics: the
  translation minimising the reprojection error of ``pred_keypoints_3d`` against
  ``pred_keypoints_2d`` mapped to full-image pixels (:func:`~dexhands_data.geometry.lift_to_camera`);
  the RMS residual (px) is stored per hand. The weak-perspective translation under the real
  intrinsics (:func:`weak_perspective_to_camera`) is kept as a check (depth ratio in ``processing``).
- **Keypoint order**: HaMeR's MANO wrapper already returns the 21 joints in OpenPose order (= ours:
  MANO's 16 joints + 5 fingertip vertices, reordered by its ``joint_map``); a model whose MANO layer
  has no ``joint_map`` returns raw MANO order and is remapped with :data:`MANO_TO_OURS`.
"""

from __future__ import annotations

import importlib.util
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..geometry import Intrinsics, lift_to_camera
from ..keypoints import LEFT, RIGHT
from ..records import HandTrack, VideoFrame
from .base import FrameHands
from .batching import CropBatcher, CropItem
from .crops import CropTransform, box_from_keypoints, crop_image, mirror_points_3d, normalize_crop
from .mediapipe_backend import HandDetection, HandDetector, LegacyHandsDetector, frame_hands, to_detection
from .relift import relift_track
from .postprocess import PostprocessConfig, assign_to_slots, postprocess_track

#: Raw MANO joint order (smplx ``MANOLayer`` joints, then the five fingertip vertices HaMeR appends).
RAW_MANO_JOINTS: tuple[str, ...] = (
    "wrist", "index_mcp", "index_pip", "index_dip", "middle_mcp", "middle_pip", "middle_dip",
    "little_mcp", "little_pip", "little_dip", "ring_mcp", "ring_pip", "ring_dip",
    "thumb_cmc", "thumb_mcp", "thumb_ip",
    "thumb_tip", "index_tip", "middle_tip", "ring_tip", "little_tip",
)
#: ours[k] = raw_mano[MANO_TO_OURS[k]] (the same permutation as HaMeR's ``mano_to_openpose``).
MANO_TO_OURS: tuple[int, ...] = (0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20)

ENV_CHECKPOINT = "HAMER_CHECKPOINT"
ENV_MANO_DIR = "HAMER_MANO_DIR"
#: Where ``fetch_demo_data.sh`` puts the checkpoint, relative to the folder it runs in.
DEFAULT_CHECKPOINT_RELPATH = "_DATA/hamer_ckpts/checkpoints/hamer.ckpt"


class HamerUnavailable(RuntimeError):
    """HaMeR cannot run here; the message lists every missing piece and how to provide it."""


# ----------------------------------------------------------------------------- install check + loading


@dataclass(frozen=True)
class HamerFiles:
    """Resolved files of a HaMeR install; ``data_dir``: the ``_DATA`` folder 3 levels above the checkpoint."""

    checkpoint: Path
    model_config: Path
    mano_dir: Path

    @property
    def data_dir(self) -> Path:
        return self.checkpoint.parent.parent.parent


def locate_hamer(checkpoint: str | os.PathLike | None = None, mano_dir: str | os.PathLike | None = None,
                 check_package: bool = True) -> HamerFiles:
    """Resolve and check HaMeR's files; raise :class:`HamerUnavailable` listing everything missing.

    checkpoint: ``--hamer-checkpoint``, else env ``HAMER_CHECKPOINT``, else
    ``./_DATA/hamer_ckpts/checkpoints/hamer.ckpt``. mano_dir: ``--hamer-mano-dir``, else env
    ``HAMER_MANO_DIR``, else ``<_DATA>/data/mano`` next to the checkpoint.
    """
    missing: list[str] = []
    if check_package and importlib.util.find_spec("hamer") is None:
        missing.append("the Python package 'hamer' is not installed (git clone --recursive "
                       "https://github.com/geopavlakos/hamer && pip install -e hamer[all] && "
                       "pip install -v -e hamer/third-party/ViTPose)")
    ckpt = Path(checkpoint or os.environ.get(ENV_CHECKPOINT) or DEFAULT_CHECKPOINT_RELPATH)
    ckpt = ckpt.expanduser().resolve()
    cfg = ckpt.parent.parent / "model_config.yaml"
    if not ckpt.is_file():
        missing.append(f"the HaMeR checkpoint {ckpt} does not exist (pass --hamer-checkpoint PATH or set "
                       f"{ENV_CHECKPOINT}; fetch_demo_data.sh puts it at {DEFAULT_CHECKPOINT_RELPATH})")
    elif not cfg.is_file():
        missing.append(f"{cfg} (the model config that ships two folders above hamer.ckpt) does not exist")
    mano = Path(mano_dir or os.environ.get(ENV_MANO_DIR) or ckpt.parent.parent.parent / "data" / "mano")
    mano = mano.expanduser().resolve()
    if not (mano / "MANO_RIGHT.pkl").is_file():
        missing.append(f"MANO_RIGHT.pkl is not in {mano} (register at https://mano.is.tue.mpg.de, download "
                       f"the MANO model and pass --hamer-mano-dir DIR or set {ENV_MANO_DIR})")
    if missing:
        raise HamerUnavailable("HaMeR backend unavailable:\n  - " + "\n  - ".join(missing))
    return HamerFiles(ckpt, cfg, mano)


def load_hamer_model(files: HamerFiles, device: str) -> tuple[Any, Any]:
    """The official HAMER LightningModule (eval mode, on ``device``) and its config.

    Equivalent to ``hamer.models.load_hamer`` but with paths anchored to the checkpoint's ``_DATA``
    folder instead of the working directory, the MANO folder the user gave, and no renderer (no
    OpenGL needed on GPU servers).
    """
    from hamer.configs import get_config
    from hamer.models import HAMER

    cfg = get_config(str(files.model_config), update_cachedir=False)
    cfg.defrost()
    cfg.MANO.MODEL_PATH = str(files.mano_dir)
    for key in ("MEAN_PARAMS", "JOINT_REGRESSOR_EXTRA"):  # data files named relative to _DATA
        if cfg.MANO.get(key):
            path = Path(cfg.MANO[key])
            path = path if path.is_absolute() else files.data_dir / path
            if not path.exists():
                raise HamerUnavailable(f"HaMeR backend unavailable:\n  - {path} (MANO.{key} of "
                                       f"{files.model_config}) does not exist")
            cfg.MANO[key] = str(path)
    if cfg.MODEL.BACKBONE.TYPE == "vit" and "BBOX_SHAPE" not in cfg.MODEL:
        cfg.MODEL.BBOX_SHAPE = [192, 256]  # what load_hamer sets for ViT checkpoints
    cfg.freeze()
    model = HAMER.load_from_checkpoint(str(files.checkpoint), strict=False, cfg=cfg, init_renderer=False)
    return model.to(device).eval(), cfg


@dataclass(frozen=True)
class ModelSpec:
    """What the crop pipeline needs from a HaMeR config: ``MODEL.IMAGE_SIZE`` (crop side px),
    ``EXTRA.FOCAL_LENGTH`` (px of a crop of that side), ``MODEL.IMAGE_MEAN/STD`` (0..1 units),
    ``MODEL.BBOX_SHAPE`` (width, height) or None."""

    image_size: int
    focal_length: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    bbox_shape: tuple[int, int] | None

    @classmethod
    def from_config(cls, cfg: Any) -> "ModelSpec":
        shape = cfg.MODEL.get("BBOX_SHAPE", None)
        return cls(int(cfg.MODEL.IMAGE_SIZE), float(cfg.EXTRA.FOCAL_LENGTH),
                   tuple(map(float, cfg.MODEL.IMAGE_MEAN)), tuple(map(float, cfg.MODEL.IMAGE_STD)),
                   None if shape is None else (int(shape[0]), int(shape[1])))


def keypoint_permutation(model: Any) -> np.ndarray | None:
    """None if the model's ``pred_keypoints_3d`` are already in our order, else the index array to apply.

    HaMeR's MANO layer carries ``joint_map`` = :data:`MANO_TO_OURS` (output already reordered); a plain
    smplx MANO layer (no ``joint_map``) outputs raw MANO order + fingertips, remapped here.
    """
    joint_map = getattr(getattr(model, "mano", None), "joint_map", None)
    if joint_map is None:
        return np.asarray(MANO_TO_OURS)
    jm = np.asarray(joint_map.detach().cpu().numpy() if hasattr(joint_map, "detach") else joint_map).tolist()
    if jm != list(MANO_TO_OURS):
        raise ValueError(f"unexpected MANO joint_map {jm}; expected HaMeR's OpenPose order "
                         f"{list(MANO_TO_OURS)}")
    return None


class HamerPredictor:
    """The network stage as a callable class (one per GPU worker; also usable as a Ray Data
    ``map_batches`` UDF with ``num_gpus``): HaMeR batch dict (numpy) -> numpy outputs.

    Returns ``pred_keypoints_3d`` (B, 21, 3) m in OUR keypoint order, ``pred_keypoints_2d``
    (B, 21, 2) normalised crop coordinates, ``pred_cam`` (B, 3) weak-perspective (s, tx, ty), all for
    the (possibly mirrored) crop as the network saw it.
    """

    OUTPUT_KEYS = ("pred_keypoints_3d", "pred_keypoints_2d", "pred_cam")

    def __init__(self, model: Any, device: str, fp16: bool = False):
        self.model = model
        self.device = device
        self.fp16 = bool(fp16)
        self._perm = keypoint_permutation(model)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        tb = {k: torch.as_tensor(np.asarray(v)).to(self.device, non_blocking=True) for k, v in batch.items()}
        use_amp = self.fp16 and str(self.device).startswith("cuda")
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16, enabled=use_amp):
            out = self.model(tb)
        res = {k: out[k].detach().float().cpu().numpy() for k in self.OUTPUT_KEYS}
        if self._perm is not None:
            res["pred_keypoints_3d"] = res["pred_keypoints_3d"][:, self._perm]
            res["pred_keypoints_2d"] = res["pred_keypoints_2d"][:, self._perm]
        return res


# ----------------------------------------------------------------------------- geometry of one hand


def weak_perspective_to_camera(pred_cam: np.ndarray, transform: CropTransform, K: np.ndarray) -> np.ndarray:
    """Camera-frame translation (m) of the hand's origin from HaMeR's weak-perspective crop camera.

    ``pred_cam`` = (s, tx, ty) as the network output it for the crop it saw (mirrored for left hands;
    tx is negated here for those). With a crop of ``size`` px the hand appears ``size * s / 2`` px per
    metre at its origin, which at focal f puts it at depth ``t_z = 2 f / (size s)``; the origin
    projects to ``box_center + size * s * (tx, ty) / 2`` px. With HaMeR's own K (f = 5000 / 256 *
    max(W, H), principal point W/2, H/2) this equals HaMeR's ``cam_crop_to_full``; here K is the
    video's (f = mean of fx, fy for the depth).
    """
    s, tx, ty = (float(v) for v in np.asarray(pred_cam, dtype=np.float64))
    if transform.flip:
        tx = -tx
    K = np.asarray(K, dtype=np.float64)
    bs = transform.size * s
    tz = (K[0, 0] + K[1, 1]) / bs
    u0 = transform.center[0] + bs * tx / 2.0
    v0 = transform.center[1] + bs * ty / 2.0
    return np.array([(u0 - K[0, 2]) * tz / K[0, 0], (v0 - K[1, 2]) * tz / K[1, 1], tz])


@dataclass(frozen=True)
class DecodedHand:
    """One hand in the full frame: keypoints_cam (21, 3) m OpenCV camera; keypoints_2d (21, 2) px;
    lift_residual_px RMS; translation (3,) m of the lift; translation_weak (3,) m of the weak-perspective
    camera."""

    keypoints_cam: np.ndarray
    keypoints_2d: np.ndarray
    lift_residual_px: float
    translation: np.ndarray
    translation_weak: np.ndarray


def decode_hand(outputs: dict[str, np.ndarray], transform: CropTransform, K: np.ndarray) -> DecodedHand:
    """Un-mirror, un-crop and lift one hand's network outputs (our keypoint order) with the real K."""
    kp3d = np.asarray(outputs["pred_keypoints_3d"], dtype=np.float64)
    if transform.flip:
        kp3d = mirror_points_3d(kp3d)
    kp2d = transform.normalized_to_image(outputs["pred_keypoints_2d"])
    lift = lift_to_camera(kp3d, kp2d, K)
    weak = weak_perspective_to_camera(outputs["pred_cam"], transform, K)
    return DecodedHand(lift.points_cam, kp2d, lift.residual_px, lift.translation, weak)


# ----------------------------------------------------------------------------- estimator


class HamerSession:
    """Streams one episode. ``step`` runs the box detector and queues crops; the network runs in
    batches across frames, so ``step`` returns the detector's hands of the frame (MediaPipe 2D
    keypoints and lift, good enough for masking hands out of visual odometry) and ``finish`` returns
    the HaMeR track (after the shared temporal post-processing).

    With ``detect_every = k > 1`` the detector runs on every k-th frame (and on any frame after one
    without hands); the frames between reuse its boxes and handedness (the 2.5x padding absorbs the
    motion of a few frames) and ``step`` returns the last detection's hands for them.
    """

    def __init__(self, estimator: "HamerHands", detector: HandDetector, intrinsics: Intrinsics):
        self.est = estimator
        self._detector = detector
        self.intrinsics = intrinsics
        self._batcher = CropBatcher(estimator.predictor, estimator.batch_size, estimator.max_in_flight)
        self._n = 0
        self._prev_wrists: np.ndarray | None = None
        self._slots: list[HandDetection | None] = [None, None]
        self._frame_hands: FrameHands | None = None
        self._store: dict[tuple[int, int], DecodedHand] = {}
        self._score: dict[tuple[int, int], float] = {}
        self._events: Counter = Counter()
        self._depth_ratio: list[float] = []
        self._closed = False

    def step(self, frame: VideoFrame) -> FrameHands:
        if self._closed:
            raise RuntimeError("session already finished")
        h, w = frame.image.shape[:2]
        K = self.intrinsics
        if (w, h) != (K.width, K.height):
            raise ValueError(f"frame {frame.index} is {w}x{h} but the intrinsics are for "
                             f"{K.width}x{K.height}")
        i = self._n
        self._n += 1
        self._events["frames"] += 1
        if i % self.est.detect_every == 0 or not any(d is not None for d in self._slots):
            dets = [to_detection(r, K, self.est.mirrored_input) for r in self._detector.detect(frame.image)]
            self._slots, events = assign_to_slots(dets, self._prev_wrists)
            self._events.update(events)
            self._events["frames_detected"] += 1
            self._events["detections"] += len(dets)
            self._frame_hands = frame_hands(self._slots)
            self._prev_wrists = self._frame_hands.keypoints_2d[:, 0].astype(np.float64)
        else:
            self._events["frames_boxes_reused"] += 1
        slots, fh = self._slots, self._frame_hands
        spec = self.est.spec
        for side, det in enumerate(slots):
            if det is None:
                continue
            try:
                box = box_from_keypoints(det.keypoints_2d)
                tr = CropTransform.for_box(box, flip=side == LEFT, out_size=spec.image_size,
                                           rescale_factor=self.est.rescale_factor, bbox_shape=spec.bbox_shape)
            except ValueError:
                self._events["boxes_rejected"] += 1
                continue
            patch = normalize_crop(crop_image(frame.image, tr), spec.mean, spec.std)
            self._score[(i, side)] = det.score
            self._events["crops_mirrored" if tr.flip else "crops_right"] += 1
            self._take(self._batcher.add(CropItem(i, side, tr, patch, (w, h))))
        return fh

    def _take(self, results: list[tuple[CropItem, dict[str, np.ndarray]]]) -> None:
        K = self.intrinsics.K
        for item, out in results:
            hand = decode_hand(out, item.transform, K)
            if not (np.all(np.isfinite(hand.keypoints_cam)) and np.all(hand.keypoints_cam[:, 2] > 0)):
                self._events["lift_failed"] += 1
                continue
            self._store[(item.frame, item.side)] = hand
            if hand.translation_weak[2] > 0:
                self._depth_ratio.append(float(hand.translation_weak[2] / hand.translation[2]))

    def finish(self, intrinsics: Intrinsics | None = None) -> HandTrack:
        """The track. HaMeR's hands are placed per frame with the session's intrinsics; a different
        ``intrinsics`` here (e.g. a self-calibrated K, same pixel grid) re-places each hand's shape
        with it (:func:`~dexhands_data.hands.relift.relift_track`)."""
        if not self._closed:
            try:
                self._take(self._batcher.flush())
            finally:
                self._batcher.close()
                self._detector.close()
                self._closed = True
        track = HandTrack.empty(self._n, self.est.estimator_id)
        W, H = self.intrinsics.width, self.intrinsics.height
        for (i, side), hand in self._store.items():
            score = self._score[(i, side)]
            uv = hand.keypoints_2d
            inside = (uv[:, 0] >= -0.5) & (uv[:, 0] <= W - 0.5) & (uv[:, 1] >= -0.5) & (uv[:, 1] <= H - 0.5)
            track.keypoints_cam[i, side] = hand.keypoints_cam
            track.keypoints_2d[i, side] = uv
            track.valid[i, side] = True
            track.confidence[i, side] = np.where(inside, score, 0.0)
            track.score[i, side] = score
            track.lift_residual_px[i, side] = hand.lift_residual_px
        track.config = self.est.config()
        residual = track.lift_residual_px[track.valid]
        ev = self._events
        track.processing = {
            **{k: int(ev.get(k, 0)) for k in _COUNTS},
            **{f"network_{k}": v for k, v in self._batcher.stats.to_dict().items()},
            "handedness_rule": "as_labelled" if self.est.mirrored_input else "swap_mirrored_label",
            "frames_left_valid": int(track.valid[:, LEFT].sum()),
            "frames_right_valid": int(track.valid[:, RIGHT].sum()),
            "lift_residual_px_median": float(np.median(residual)) if residual.size else None,
            "weak_perspective_depth_ratio_median": (float(np.median(self._depth_ratio))
                                                    if self._depth_ratio else None),
        }
        track = postprocess_track(track, self.est.postprocess)
        final = intrinsics if intrinsics is not None else self.intrinsics
        # per frame the hands were placed on the image pixels with the session's K: place them again
        # when K changed or the lens distorts (the lift then runs on the ideal pixels)
        if final.K.tolist() != self.intrinsics.K.tolist() or final.distorted:
            track = relift_track(track, final)
        return track


#: Event counts of a session copied into ``HandTrack.processing``.
_COUNTS = ("frames", "frames_detected", "frames_boxes_reused", "detections", "crops_right", "crops_mirrored",
           "boxes_rejected", "lift_failed", "duplicates_dropped", "same_side_conflicts",
           "resolved_by_continuity", "resolved_by_chirality", "dropped_same_side")


#: ``model_factory(device) -> (model, cfg)``: builds the network (default: the official HaMeR).
ModelFactory = Callable[[str], tuple[Any, Any]]


class HamerHands:
    """HaMeR hand estimator (HandEstimator protocol). ``name = "hamer"``.

    checkpoint / mano_dir: see :func:`locate_hamer`. device: "cuda" if available, else "cpu" (slow).
    batch_size: crops per network call; max_in_flight: batches queued on the background thread
    (0 runs the network inline). rescale_factor: box padding (HaMeR's dataset default 2.5).
    detect_every: run the box detector on every k-th frame only (see :class:`HamerSession`).
    detector_model_complexity: MediaPipe model for the boxes (0 = lite, the cheap default).
    model_factory: replaces the official loader (tests, other checkpoints with HaMeR's interface).
    """

    name = "hamer"

    def __init__(self, checkpoint: str | None = None, mano_dir: str | None = None, device: str | None = None,
                 batch_size: int = 32, max_in_flight: int = 1, fp16: bool = False,
                 rescale_factor: float = 2.5, detect_every: int = 1, detector_model_complexity: int = 0,
                 min_detection_confidence: float = 0.5,
                 min_tracking_confidence: float = 0.5, static_image_mode: bool = False,
                 mirrored_input: bool = False, postprocess: PostprocessConfig | None = None,
                 model_factory: ModelFactory | None = None, detector_factory: Any = None):
        if detect_every < 1:
            raise ValueError(f"detect_every must be >= 1, got {detect_every}")
        if detector_model_complexity not in (0, 1):
            raise ValueError(f"detector_model_complexity must be 0 or 1, got {detector_model_complexity}")
        if device is None:
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device
        self.files: HamerFiles | None = None
        if model_factory is None:
            self.files = locate_hamer(checkpoint, mano_dir)
            model, cfg = load_hamer_model(self.files, device)
            self.version = _package_version("hamer")
        else:
            model, cfg = model_factory(device)
            self.version = f"custom:{type(model).__name__}"
        self.spec = ModelSpec.from_config(cfg)
        self.predictor = HamerPredictor(model, device, fp16)
        self.batch_size = int(batch_size)
        self.max_in_flight = int(max_in_flight)
        self.fp16 = bool(fp16)
        self.rescale_factor = float(rescale_factor)
        self.detect_every = int(detect_every)
        self.detector_model_complexity = int(detector_model_complexity)
        self.min_detection_confidence = float(min_detection_confidence)
        self.min_tracking_confidence = float(min_tracking_confidence)
        self.static_image_mode = bool(static_image_mode)
        self.mirrored_input = bool(mirrored_input)
        self.postprocess = postprocess if postprocess is not None else PostprocessConfig()
        self._detector_factory = detector_factory or LegacyHandsDetector

    @property
    def estimator_id(self) -> str:
        return f"{self.name}=={self.version}"

    def config(self) -> dict[str, Any]:
        return {
            "backend": "hamer",
            "checkpoint": None if self.files is None else self.files.checkpoint.name,
            "image_size": self.spec.image_size,
            "bbox_shape": None if self.spec.bbox_shape is None else list(self.spec.bbox_shape),
            "rescale_factor": self.rescale_factor,
            "fp16": self.fp16,
            "boxes": "mediapipe.solutions.hands landmarks",
            "detect_every": self.detect_every,
            "detector_model_complexity": self.detector_model_complexity,
            "min_detection_confidence": self.min_detection_confidence,
            "min_tracking_confidence": self.min_tracking_confidence,
            "static_image_mode": self.static_image_mode,
            "mirrored_input": self.mirrored_input,
            "left_hands": "mirrored crop, outputs mirrored back",
            "lift": "translation least squares with the video intrinsics (geometry.lift_to_camera)",
            "postprocess": self.postprocess.to_dict(),
        }

    def session(self, intrinsics: Intrinsics) -> HamerSession:
        detector = self._detector_factory(self.detector_model_complexity, self.min_detection_confidence,
                                          self.min_tracking_confidence, self.static_image_mode, 2)
        return HamerSession(self, detector, intrinsics)


def _package_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"
