"""MediaPipe Hands (legacy ``mp.solutions.hands``, mediapipe==0.10.21): the default, CPU, offline estimator.

Per frame MediaPipe returns, for up to ``max_num_hands`` hands, 21 normalised image landmarks,
21 **world landmarks** (metres, origin near the hand's centre, axes roughly the camera's: x right,
y down, z away from the camera, but 12-31 deg off on real ground truth) and a handedness label
with a score.

What this backend makes of them:
- 2D keypoints in pixels of the frame: u = x W - 0.5, v = y H - 0.5 (pixel-centre convention, the
  one :meth:`Intrinsics.scaled` uses).
- 3D keypoints in the OpenCV camera frame, per track in ``finish(intrinsics)``
  (:mod:`.track_lift`): the world landmarks turned onto the viewing ray, scaled to one hand size
  per track, placed by translation + PnP, their depths smoothed over the track, and every keypoint
  back-projected from its 2D at that depth (the 3D reprojects onto the 2D). The rigid fit's RMS
  residual (px) is stored per hand. Depth still rests on MediaPipe's metric hand size (expect
  ~5-15 % depth error, see the spec). ``step()`` returns each frame's 2D and validity at once,
  with a provisional per-frame translation lift as its 3D.
- **Near a score of 0.5** (``chirality_below``) the shape's chirality decides the side.
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

from ..geometry import Intrinsics, lift_to_camera, project
from ..keypoints import LEFT, NUM_HANDS, NUM_KEYPOINTS, RIGHT
from ..records import HandTrack, VideoFrame
from .base import FrameHands
from .postprocess import (
    PostprocessConfig,
    assign_to_slots,
    fill_short_gaps,
    fix_handedness_swaps,
    hand_chirality,
)
from .smoothing import SmootherConfig
from .track_lift import LiftConfig, lift_hands, lift_slot

#: Below this handedness score MediaPipe's label is a coin toss and the shape's chirality decides the side.
CHIRALITY_BELOW = 0.55

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
    chirality: :func:`~.postprocess.hand_chirality` of the world landmarks; side_by_chirality: the
    side was decided by it (score near 0.5) against the label.
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
    side_by_chirality: bool = False

    @property
    def lifted(self) -> bool:
        """The lift placed every keypoint in front of the camera with a finite residual."""
        return bool(np.isfinite(self.lift_residual_px) and np.all(self.keypoints_cam[:, 2] > 0))

    @property
    def side_name(self) -> str:
        return "left" if self.side == LEFT else "right"


def to_detection(raw: RawHand, intrinsics: Intrinsics, mirrored_input: bool,
                 chirality_below: float = 0.0) -> HandDetection:
    """Pixels, camera-frame lift, corrected side and confidence of one raw hand.

    When the handedness score is below ``chirality_below`` (MediaPipe cannot tell: near 0.5), the
    side is the one the shape's chirality says (:func:`~.postprocess.hand_chirality`), if finite.
    """
    if raw.label not in _LABEL_SIDE:
        raise ValueError(f"unknown MediaPipe handedness label {raw.label!r}")
    w, h = intrinsics.width, intrinsics.height
    uv = np.stack([raw.landmarks[:, 0] * w - 0.5, raw.landmarks[:, 1] * h - 0.5], axis=-1)
    points_cam, residual = np.full((NUM_KEYPOINTS, 3), np.nan), float("nan")
    if np.all(np.isfinite(raw.world)) and np.all(np.isfinite(uv)):
        try:
            lift = lift_to_camera(raw.world, intrinsics.ideal_pixels(uv), intrinsics.K)
            points_cam, residual = lift.points_cam, lift.residual_px
        except np.linalg.LinAlgError:
            pass
    side = _LABEL_SIDE[raw.label]
    if not mirrored_input:
        side = 1 - side
    chirality = hand_chirality(raw.world)
    by_chirality = False
    if raw.score < chirality_below and np.isfinite(chirality) and chirality != 0:
        chiral_side = RIGHT if chirality > 0 else LEFT
        by_chirality = chiral_side != side
        side = chiral_side
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
        chirality=chirality,
        side_by_chirality=by_chirality,
    )


class MediaPipeSession:
    """Streams one episode: ``step(frame)`` per stored frame, then ``finish()`` for the HandTrack."""

    def __init__(self, detector: HandDetector, intrinsics: Intrinsics, mirrored_input: bool,
                 postprocess: PostprocessConfig, estimator: str, config: dict[str, Any],
                 lift: LiftConfig | None = None, chirality_below: float = 0.0):
        self._detector = detector
        self.intrinsics = intrinsics
        self.mirrored_input = mirrored_input
        self.postprocess = postprocess
        self.estimator = estimator
        self.config = config
        self.lift = lift if lift is not None else LiftConfig()
        self.chirality_below = chirality_below
        self._frames: list[FrameHands] = []
        self._world: list[np.ndarray] = []
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
        detections = [to_detection(r, self.intrinsics, self.mirrored_input, self.chirality_below)
                      for r in raw]
        lifted = [d for d in detections if d.lifted]
        self._events["lift_failed"] += len(detections) - len(lifted)
        prev = self._frames[-1].keypoints_2d[:, 0].astype(np.float64) if self._frames else None
        slots, events = assign_to_slots(lifted, prev)
        self._count(detections, events)
        hands = frame_hands(slots)
        self._frames.append(hands)
        self._world.append(slot_shapes(slots))
        return hands

    def _count(self, detections: list[HandDetection], events: Counter) -> None:
        ev = self._events
        ev["frames"] += 1
        ev["detections"] += len(detections)
        for d in detections:
            ev[f"raw_label_{d.raw_label.lower()}"] += 1
            if not self.mirrored_input:
                ev["labels_mirror_swapped"] += 1
            ev["side_by_chirality"] += int(d.side_by_chirality)
            sign = 1.0 if d.side == RIGHT else -1.0
            if np.isfinite(d.chirality) and sign * d.chirality < 0:
                ev["chirality_disagreements"] += 1
        ev.update(events)

    def finish(self, intrinsics: Intrinsics | None = None) -> HandTrack:
        """The episode's HandTrack, lifted per track with ``intrinsics`` (default: the session's; a
        pipeline that refines K, e.g. by self-calibration, passes the final one here)."""
        intr = intrinsics if intrinsics is not None else self.intrinsics
        if (intr.width, intr.height) != (self.intrinsics.width, self.intrinsics.height):
            raise ValueError(f"finish() intrinsics are for {intr.width}x{intr.height}, the frames are "
                             f"{self.intrinsics.width}x{self.intrinsics.height}")
        if not self._closed:
            self._detector.close()
            self._closed = True
        n = len(self._frames)
        track = HandTrack.empty(n, self.estimator)
        world = np.full((n, NUM_HANDS, NUM_KEYPOINTS, 3), np.nan)
        for i, (fh, w) in enumerate(zip(self._frames, self._world)):
            track.keypoints_2d[i] = fh.keypoints_2d
            track.valid[i] = fh.valid
            track.confidence[i] = fh.confidence
            track.score[i] = fh.score
            world[i] = w
        track.config = dict(self.config)
        cfg = self.postprocess
        swaps = fix_handedness_swaps(track, cfg, companions=[world]) if cfg.fix_swaps else 0
        beyond_fold = 0
        if intr.distorted:  # lift and fill on the ideal (pinhole) pixels; stored 2D stays as seen
            track.keypoints_2d[:] = intr.ideal_pixels(track.keypoints_2d)
            # a landmark outside the frame beyond the lens model's fold has no ray (NaN): the lift
            # fails for that hand, which is dropped below with the other unlifted ones
            beyond_fold = int((track.valid & ~np.isfinite(track.keypoints_2d).all(axis=(-1, -2))).sum())
        cam, residual, lifted, lift_info = lift_hands(track.keypoints_2d, world, track.valid, intr.K,
                                                      self.lift)
        track.keypoints_cam[:] = cam
        track.lift_residual_px[:] = residual
        lost = track.valid & ~lifted
        track.valid &= lifted
        track.keypoints_2d[lost] = np.nan
        track.confidence[lost] = 0.0
        track.score[lost] = 0.0
        fit = track.lift_residual_px[track.valid]
        filled = fill_short_gaps(track, cfg.max_gap_fill, intr.K)
        ev = self._events
        track.processing = {
            **{k: int(ev.get(k, 0)) for k in (
                "frames", "detections", "raw_label_left", "raw_label_right", "labels_mirror_swapped",
                "chirality_disagreements", "side_by_chirality", "duplicates_dropped", "same_side_conflicts",
                "resolved_by_continuity", "resolved_by_chirality", "dropped_same_side", "lift_failed")},
            "handedness_rule": "as_labelled" if self.mirrored_input else "swap_mirrored_label",
            "handedness_swaps_fixed": int(swaps),
            **lift_info,
            "lift_intrinsics_source": intr.source,
            "gap_frames_filled": int(filled),
            "gaps_not_filled_mirrored": int(track.processing.get("gaps_not_filled_mirrored", 0)),
            "postprocess": cfg.to_dict(),
            "frames_left_valid": int(track.valid[:, LEFT].sum()),
            "frames_right_valid": int(track.valid[:, RIGHT].sum()),
            "lift_residual_px_median": float(np.median(fit)) if fit.size else None,
            "reprojection_px_median": _reprojection_median(track, intr.K),
        }
        if intr.distorted:
            track.keypoints_2d[:] = intr.image_pixels(track.keypoints_2d)
            track.processing["lift_distortion"] = intr.distortion.to_list()
            track.processing["hands_beyond_lens_fold"] = beyond_fold
        return track


def _reprojection_median(track: HandTrack, K: np.ndarray) -> float | None:
    """Median distance (px) between the stored 3D projected with K and the stored 2D, over valid hands."""
    if not track.valid.any():
        return None
    uv = project(track.keypoints_cam[track.valid], K)
    return float(np.median(np.linalg.norm(uv - track.keypoints_2d[track.valid], axis=-1)))


def slot_shapes(slots: list[HandDetection | None]) -> np.ndarray:
    """(2, 21, 3) m hand-centred shapes (world landmarks) of the slots, NaN where missing."""
    out = np.full((NUM_HANDS, NUM_KEYPOINTS, 3), np.nan)
    for s, det in enumerate(slots):
        if det is not None:
            out[s] = det.keypoints_world
    return out


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
    (mirrored) footage, where MediaPipe's labels are already right. ``lift``: how tracks are lifted
    to 3D (:class:`~.track_lift.LiftConfig`); without it, the default with ``smoother`` ("rts" or
    "none") as the depth smoother. ``chirality_below``: below this handedness score the shape's
    chirality decides the side (0 disables).
    """

    name = "mediapipe"

    def __init__(self, model_complexity: int = 1, min_detection_confidence: float = 0.5,
                 min_tracking_confidence: float = 0.5, static_image_mode: bool = False,
                 max_num_hands: int = 2,
                 mirrored_input: bool = False, postprocess: PostprocessConfig | None = None,
                 detector_factory: Any = None, lift: LiftConfig | None = None,
                 chirality_below: float = CHIRALITY_BELOW, smoother: str = "rts"):
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
        self.lift = lift if lift is not None else LiftConfig(smoother=SmootherConfig(smoother))
        self.chirality_below = float(chirality_below)
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
            "lift": {"steps": "per track: hand size, translation least squares, smoothing, back-projection "
                              "(hands/track_lift.py)", **self.lift.to_dict()},
            "chirality_below": self.chirality_below,
            "postprocess": self.postprocess.to_dict(),
        }

    def _detector(self, static_image_mode: bool) -> HandDetector:
        return self._detector_factory(self.model_complexity, self.min_detection_confidence,
                                      self.min_tracking_confidence, static_image_mode, self.max_num_hands)

    def session(self, intrinsics: Intrinsics) -> MediaPipeSession:
        return MediaPipeSession(self._detector(self.static_image_mode), intrinsics, self.mirrored_input,
                                self.postprocess, f"{self.name}=={self.version}", self.config(),
                                self.lift, self.chirality_below)

    def detect_image(self, image: np.ndarray, intrinsics: Intrinsics) -> list[HandDetection]:
        """All hands in one still image (static mode), unassigned, with raw labels kept; each lifted
        as a one-frame track (same lift as a video's; its 3D lands on its 2D)."""
        detector = self._detector(True)
        try:
            detections = [to_detection(r, intrinsics, self.mirrored_input, self.chirality_below)
                          for r in detector.detect(image)]
        finally:
            detector.close()
        for d in detections:
            if d.lifted:
                res = lift_slot(intrinsics.ideal_pixels(d.keypoints_2d)[None], d.keypoints_world[None],
                                np.ones(1, bool), intrinsics.K, self.lift)
                if np.all(np.isfinite(res.keypoints_cam[0])):
                    d.keypoints_cam = res.keypoints_cam[0]
        return detections
