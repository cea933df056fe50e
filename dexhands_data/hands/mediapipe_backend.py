"""MediaPipe Hands (legacy ``mp.solutions.hands``, mediapipe==0.10.21): the default, CPU, offline estimator.

Per frame MediaPipe returns, for up to ``max_num_hands`` hands, 21 normalised image landmarks,
21 **world landmarks** (metres, origin near the hand's centre, axes parallel to the camera's:
x right, y down, z away from the camera) and a handedness label with a score.

What this backend makes of them:
- 2D keypoints in pixels of the frame: u = x W - 0.5, v = y H - 0.5 (pixel-centre convention, the
  one :meth:`Intrinsics.scaled` uses).
- 3D keypoints in the OpenCV camera frame: the world landmarks translated by the t that minimises
  their reprojection error against the 2D keypoints with the episode intrinsics
  (:func:`geometry.lift_to_camera`); the RMS residual (px) is stored per hand. Depth therefore
  rests on MediaPipe's metric hand size (expect ~5-15 % depth error, see the spec).
- **Handedness.** The legacy solution assumes a mirrored (selfie) image, so for ordinary,
  non-mirrored video its label names the opposite hand (measured: opposite of the true hand on
  1,280 of 1,318 detections). The label is swapped unless ``mirrored_input=True``. The raw labels,
  the swap and conflict counts are recorded in ``HandTrack.processing``.
- A detection whose lift puts a keypoint behind the camera (or fails) is dropped and counted
  (``lift_failed``): its 3D would be meaningless.
- Confidence: MediaPipe 0.10.21 reports visibility and presence as 0 for hand landmarks, so the
  per-keypoint confidence is the hand's handedness score for keypoints inside the image and 0 for
  keypoints MediaPipe extrapolated beyond the image border. ``score`` is the handedness score.

The model is created per session (its tracker state belongs to one episode) and closed by
``finish()``. The detector sits behind :class:`HandDetector` so another MediaPipe runtime (the Tasks
API with a user-supplied ``hand_landmarker.task``) can reuse all the logic here.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..geometry import Intrinsics, lift_to_camera
from ..keypoints import LEFT, NUM_HANDS, NUM_KEYPOINTS, RIGHT
from ..records import HandTrack, VideoFrame
from .base import FrameHands
from .postprocess import PostprocessConfig, assign_to_slots, hand_chirality, postprocess_track

_LABEL_SIDE = {"Left": LEFT, "Right": RIGHT}


@dataclass(frozen=True)
class RawHand:
    """One hand as a MediaPipe runtime reports it (before any correction).

    label: "Left" or "Right" as reported; score: its probability; landmarks: (21, 3) normalised
    x, y in [0, 1] of the image width/height and relative z; world: (21, 3) metres, hand-centred.
    """

    label: str
    score: float
    landmarks: np.ndarray
    world: np.ndarray


class HandDetector(Protocol):
    """A MediaPipe runtime: RGB uint8 (H, W, 3) frames in order -> raw hands. ``close()`` frees it."""

    def detect(self, image: np.ndarray) -> list[RawHand]: ...

    def close(self) -> None: ...


class LegacyHandsDetector:
    """``mediapipe.solutions.hands.Hands`` (bundled models; no download, works offline)."""

    def __init__(self, model_complexity: int, min_detection_confidence: float, min_tracking_confidence: float,
                 static_image_mode: bool, max_num_hands: int):
        import mediapipe as mp  # imported here: the package imports without mediapipe's start-up cost

        self._hands = mp.solutions.hands.Hands(
            static_image_mode=static_image_mode,
            max_num_hands=max_num_hands,
            model_complexity=model_complexity,
            min_detection_confidence=min_detection_confidence,
            min_tracking_confidence=min_tracking_confidence,
        )

    def detect(self, image: np.ndarray) -> list[RawHand]:
        image = np.ascontiguousarray(image)
        image.flags.writeable = False
        res = self._hands.process(image)
        if not res.multi_hand_landmarks:
            return []
        out = []
        per_hand = zip(res.multi_hand_landmarks, res.multi_hand_world_landmarks, res.multi_handedness)
        for lm, world, handed in per_hand:
            cls = handed.classification[0]
            out.append(RawHand(
                label=cls.label,
                score=float(cls.score),
                landmarks=np.array([[p.x, p.y, p.z] for p in lm.landmark], dtype=np.float64),
                world=np.array([[p.x, p.y, p.z] for p in world.landmark], dtype=np.float64),
            ))
        return out

    def close(self) -> None:
        self._hands.close()


@dataclass
class HandDetection:
    """One detected hand in the frame's pixel grid and camera frame (after the handedness rule).

    side: LEFT/RIGHT; raw_label: MediaPipe's label; keypoints_2d (21, 2) px; keypoints_world
    (21, 3) m hand-centred; keypoints_cam (21, 3) m OpenCV camera frame; confidence (21,);
    chirality: :func:`~.postprocess.hand_chirality` of the world landmarks.
    """

    side: int
    raw_label: str
    score: float
    keypoints_2d: np.ndarray
    keypoints_world: np.ndarray
    keypoints_cam: np.ndarray
    lift_residual_px: float
    confidence: np.ndarray
    chirality: float

    @property
    def lifted(self) -> bool:
        """The lift placed every keypoint in front of the camera with a finite residual."""
        return bool(np.isfinite(self.lift_residual_px) and np.all(self.keypoints_cam[:, 2] > 0))

    @property
    def side_name(self) -> str:
        return "left" if self.side == LEFT else "right"


def to_detection(raw: RawHand, intrinsics: Intrinsics, mirrored_input: bool) -> HandDetection:
    """Pixels, camera-frame lift, corrected side and confidence of one raw hand."""
    if raw.label not in _LABEL_SIDE:
        raise ValueError(f"unknown MediaPipe handedness label {raw.label!r}")
    w, h = intrinsics.width, intrinsics.height
    uv = np.stack([raw.landmarks[:, 0] * w - 0.5, raw.landmarks[:, 1] * h - 0.5], axis=-1)
    points_cam, residual = np.full((NUM_KEYPOINTS, 3), np.nan), float("nan")
    if np.all(np.isfinite(raw.world)) and np.all(np.isfinite(uv)):
        try:
            lift = lift_to_camera(raw.world, uv, intrinsics.K)
            points_cam, residual = lift.points_cam, lift.residual_px
        except np.linalg.LinAlgError:
            pass
    side = _LABEL_SIDE[raw.label]
    if not mirrored_input:
        side = 1 - side
    inside = (uv[:, 0] >= -0.5) & (uv[:, 0] <= w - 0.5) & (uv[:, 1] >= -0.5) & (uv[:, 1] <= h - 0.5)
    return HandDetection(
        side=side,
        raw_label=raw.label,
        score=raw.score,
        keypoints_2d=uv,
        keypoints_world=raw.world,
        keypoints_cam=points_cam,
        lift_residual_px=residual,
        confidence=np.where(inside, raw.score, 0.0),
        chirality=hand_chirality(raw.world),
    )


class MediaPipeSession:
    """Streams one episode: ``step(frame)`` per stored frame, then ``finish()`` for the HandTrack."""

    def __init__(self, detector: HandDetector, intrinsics: Intrinsics, mirrored_input: bool,
                 postprocess: PostprocessConfig, estimator: str, config: dict[str, Any]):
        self._detector = detector
        self.intrinsics = intrinsics
        self.mirrored_input = mirrored_input
        self.postprocess = postprocess
        self.estimator = estimator
        self.config = config
        self._frames: list[FrameHands] = []
        self._events: Counter = Counter()
        self._closed = False

    def step(self, frame: VideoFrame) -> FrameHands:
        if self._closed:
            raise RuntimeError("session already finished")
        h, w = frame.image.shape[:2]
        if (w, h) != (self.intrinsics.width, self.intrinsics.height):
            raise ValueError(
                f"frame {frame.index} is {w}x{h} but the intrinsics are for "
                f"{self.intrinsics.width}x{self.intrinsics.height}"
            )
        raw = self._detector.detect(frame.image)
        detections = [to_detection(r, self.intrinsics, self.mirrored_input) for r in raw]
        lifted = [d for d in detections if d.lifted]
        self._events["lift_failed"] += len(detections) - len(lifted)
        prev = self._frames[-1].keypoints_2d[:, 0].astype(np.float64) if self._frames else None
        slots, events = assign_to_slots(lifted, prev)
        self._count(detections, events)
        hands = frame_hands(slots)
        self._frames.append(hands)
        return hands

    def _count(self, detections: list[HandDetection], events: Counter) -> None:
        ev = self._events
        ev["frames"] += 1
        ev["detections"] += len(detections)
        for d in detections:
            ev[f"raw_label_{d.raw_label.lower()}"] += 1
            if not self.mirrored_input:
                ev["labels_mirror_swapped"] += 1
            sign = 1.0 if d.side == RIGHT else -1.0
            if np.isfinite(d.chirality) and sign * d.chirality < 0:
                ev["chirality_disagreements"] += 1
        ev.update(events)

    def finish(self) -> HandTrack:
        if not self._closed:
            self._detector.close()
            self._closed = True
        n = len(self._frames)
        track = HandTrack.empty(n, self.estimator)
        for i, fh in enumerate(self._frames):
            track.keypoints_cam[i] = fh.keypoints_cam
            track.keypoints_2d[i] = fh.keypoints_2d
            track.valid[i] = fh.valid
            track.confidence[i] = fh.confidence
            track.score[i] = fh.score
            track.lift_residual_px[i] = fh.lift_residual_px
        track.config = dict(self.config)
        ev = self._events
        residual = track.lift_residual_px[track.valid]
        track.processing = {
            **{k: int(ev.get(k, 0)) for k in (
                "frames", "detections", "raw_label_left", "raw_label_right", "labels_mirror_swapped",
                "chirality_disagreements", "duplicates_dropped", "same_side_conflicts",
                "resolved_by_continuity", "resolved_by_chirality", "dropped_same_side", "lift_failed")},
            "handedness_rule": "as_labelled" if self.mirrored_input else "swap_mirrored_label",
            "frames_left_valid": int(track.valid[:, LEFT].sum()),
            "frames_right_valid": int(track.valid[:, RIGHT].sum()),
            "lift_residual_px_median": float(np.median(residual)) if residual.size else None,
        }
        return postprocess_track(track, self.postprocess)


def frame_hands(slots: list[HandDetection | None]) -> FrameHands:
    """Per-frame arrays (left, right) from the detections assigned to the two hand slots (None = missing)."""
    kp_cam = np.full((NUM_HANDS, NUM_KEYPOINTS, 3), np.nan, np.float32)
    kp_2d = np.full((NUM_HANDS, NUM_KEYPOINTS, 2), np.nan, np.float32)
    valid = np.zeros(NUM_HANDS, bool)
    conf = np.zeros((NUM_HANDS, NUM_KEYPOINTS), np.float32)
    score = np.zeros(NUM_HANDS, np.float32)
    residual = np.full(NUM_HANDS, np.nan, np.float32)
    for s, det in enumerate(slots):
        if det is None:
            continue
        kp_cam[s], kp_2d[s], valid[s] = det.keypoints_cam, det.keypoints_2d, True
        conf[s], score[s], residual[s] = det.confidence, det.score, det.lift_residual_px
    return FrameHands(kp_cam, kp_2d, valid, conf, score, residual)


class MediaPipeHands:
    """The default hand estimator (HandEstimator protocol). ``name = "mediapipe"``.

    ``model_complexity`` 0 (lite, faster) or 1 (full); ``static_image_mode`` False tracks hands
    across frames (video mode), True detects on every frame; ``mirrored_input`` True for selfie
    (mirrored) footage, where MediaPipe's labels are already right.
    """

    name = "mediapipe"

    def __init__(self, model_complexity: int = 1, min_detection_confidence: float = 0.5,
                 min_tracking_confidence: float = 0.5, static_image_mode: bool = False,
                 max_num_hands: int = 2,
                 mirrored_input: bool = False, postprocess: PostprocessConfig | None = None,
                 detector_factory: Any = None):
        import mediapipe as mp

        if model_complexity not in (0, 1):
            raise ValueError(f"model_complexity must be 0 or 1, got {model_complexity}")
        if not 1 <= max_num_hands <= 4:
            raise ValueError(f"max_num_hands must be in 1..4, got {max_num_hands}")
        self.version = mp.__version__
        self.model_complexity = model_complexity
        self.min_detection_confidence = float(min_detection_confidence)
        self.min_tracking_confidence = float(min_tracking_confidence)
        self.static_image_mode = bool(static_image_mode)
        self.max_num_hands = int(max_num_hands)
        self.mirrored_input = bool(mirrored_input)
        self.postprocess = postprocess if postprocess is not None else PostprocessConfig()
        self._detector_factory = detector_factory or LegacyHandsDetector

    def config(self) -> dict[str, Any]:
        return {
            "backend": "mediapipe.solutions.hands",
            "model_complexity": self.model_complexity,
            "min_detection_confidence": self.min_detection_confidence,
            "min_tracking_confidence": self.min_tracking_confidence,
            "static_image_mode": self.static_image_mode,
            "max_num_hands": self.max_num_hands,
            "mirrored_input": self.mirrored_input,
            "pixel_convention": "u = x*W - 0.5",
            "lift": "translation least squares (geometry.lift_to_camera)",
            "postprocess": self.postprocess.to_dict(),
        }

    def _detector(self, static_image_mode: bool) -> HandDetector:
        return self._detector_factory(self.model_complexity, self.min_detection_confidence,
                                      self.min_tracking_confidence, static_image_mode, self.max_num_hands)

    def session(self, intrinsics: Intrinsics) -> MediaPipeSession:
        return MediaPipeSession(self._detector(self.static_image_mode), intrinsics, self.mirrored_input,
                                self.postprocess, f"{self.name}=={self.version}", self.config())

    def detect_image(self, image: np.ndarray, intrinsics: Intrinsics) -> list[HandDetection]:
        """All hands in one still image (static mode), unassigned, with raw labels kept."""
        detector = self._detector(True)
        try:
            return [to_detection(r, intrinsics, self.mirrored_input) for r in detector.detect(image)]
        finally:
            detector.close()
