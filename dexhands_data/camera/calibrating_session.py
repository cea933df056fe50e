"""Odometry that first finds the focal length from the video when the intrinsics are only a prior.

The first ``self_calibration_frames`` frames are kept on the odometry's working grid (grey image +
feature mask, ~0.35 MB a frame at 480x360) and tracked with KLT to collect frame pairs;
:func:`~.self_calibration.estimate_focal` turns them into a focal. With a focal found the
intrinsics become ``source = "self_calibrated"`` (fx = fy, principal point kept; with the radial
distortion k1 when it is significant, ``processing.self_calibration.k1`` / ``k1_sigma`` /
``distortion_reason`` say what was found); otherwise the
prior stays and ``processing.self_calibration.reason`` says why. The odometry then runs over the
kept frames and every later one with the final intrinsics, so all poses share one K, which the
track carries (:attr:`CameraTrack.intrinsics`) for the hands to be lifted with.
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from ..distortion import Distortion, check_covers_frame
from ..geometry import Intrinsics
from ..records import CameraTrack
from .masks import points_allowed
from .self_calibration import FocalEstimate, estimate_focal

PRIOR_SOURCES = ("fov_prior", "default")


def collect_pairs(greys: list[np.ndarray], masks: list[np.ndarray], max_features: int = 300,
                  gap: int = 5, lk: dict | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Pixel correspondences (p_anchor, p_frame) between an anchor frame and every ``gap``-th frame after
    it, KLT-tracked frame to frame with a forward-backward check; a new anchor is taken when fewer
    than half of the anchor's corners survive."""
    lk = lk or dict(winSize=(11, 11), maxLevel=3,
                    criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01))
    pairs: list[tuple[np.ndarray, np.ndarray]] = []
    anchor = cur = None
    anchor_i = n_anchor = 0
    for i, (grey, mask) in enumerate(zip(greys, masks)):
        if anchor is not None:
            p1, st1, _ = cv2.calcOpticalFlowPyrLK(greys[i - 1], grey, cur.reshape(-1, 1, 2), None, **lk)
            p0r, st2, _ = cv2.calcOpticalFlowPyrLK(grey, greys[i - 1], p1, None, **lk)
            p1 = p1.reshape(-1, 2)
            ok = (st1.ravel() == 1) & (st2.ravel() == 1)
            ok &= np.linalg.norm(p0r.reshape(-1, 2) - cur, axis=1) < 1.0
            ok &= points_allowed(mask, p1)
            anchor, cur = anchor[ok], p1[ok]
            if (i - anchor_i) % gap == 0 and len(cur):
                pairs.append((anchor.copy(), cur.copy()))
        if anchor is None or len(cur) < 0.5 * n_anchor:
            corners = cv2.goodFeaturesToTrack(grey, max_features, 0.005, 10.0, mask=mask, blockSize=7)
            if corners is None:
                anchor = cur = None
                continue
            anchor = corners.reshape(-1, 2).astype(np.float32)
            cur, anchor_i, n_anchor = anchor.copy(), i, len(anchor)
    return pairs


def calibrated_intrinsics(prior: Intrinsics, estimate: FocalEstimate, scale: float) -> Intrinsics:
    """Source-grid intrinsics with the focal found on the working grid (``scale`` = working / source)
    and, when one was found, its radial distortion k1 (dimensionless: the same on both grids).
    ValueError when that lens would fold the image inside the frame."""
    f = estimate.focal_px / scale
    distortion = None if estimate.k1 is None else Distortion(estimate.k1)
    intr = replace(prior, fx=float(f), fy=float(f), source="self_calibrated", distortion=distortion)
    if distortion is not None:
        check_covers_frame(distortion, intr.K, intr.width, intr.height)
    return intr


class SelfCalibratingSession:
    """A :class:`~.vo.VOSession` preceded by focal self-calibration over its first frames.

    Same interface as the session it wraps (``check_frame``, ``step``, ``tracked_points``, ``finish``)."""

    def __init__(self, make_session, intrinsics: Intrinsics, window: int):
        self.make_session = make_session  # Intrinsics -> VOSession
        self.prior = intrinsics
        self.window = window
        self.session = make_session(intrinsics)  # prepares frames on the working grid meanwhile
        self.kept: list[tuple[np.ndarray, np.ndarray]] = []
        self.estimate: FocalEstimate | None = None
        self.calibration_frames = 0

    def check_frame(self, image: np.ndarray) -> None:
        self.session.check_frame(image)

    def step(self, image: np.ndarray, hand_keypoints_2d: np.ndarray | None = None,
             hand_valid: np.ndarray | None = None) -> None:
        self.step_prepared(*self.session.prepare(image, hand_keypoints_2d, hand_valid))

    def step_prepared(self, grey: np.ndarray, mask: np.ndarray) -> None:
        """One frame as :meth:`VOSession.prepare` returns it (working grid, the prior's scale)."""
        if self.estimate is not None:
            self.session.step_prepared(grey, mask)
            return
        self.kept.append((grey, mask))
        if len(self.kept) >= self.window:
            self._calibrate()

    def tracked_points(self) -> np.ndarray:
        return self.session.tracked_points() if self.estimate is not None else np.zeros((0, 2))

    def finish(self) -> CameraTrack:
        if self.estimate is None:
            self._calibrate()
        track = self.session.finish()
        track.processing["self_calibration"] = {
            **self.estimate.as_dict(), "frames": self.calibration_frames, "prior_focal_px": self.prior.fx,
            "focal_px_source_grid": track.intrinsics.fx if self.estimate.focal_px is not None else None}
        return track

    def _calibrate(self) -> None:
        s = self.session
        greys = [g for g, _ in self.kept]
        masks = [m for _, m in self.kept]
        pairs = collect_pairs(greys, masks, s.cfg.max_features)
        self.estimate = estimate_focal(pairs, s.size[0], s.intr.cx, s.intr.cy)
        if self.estimate.focal_px is not None:
            try:
                intr = calibrated_intrinsics(self.prior, self.estimate, s.scale)
            except ValueError as exc:  # a k1 that folds the frame is no lens: drop it (focal kept)
                self.estimate = replace(self.estimate, k1=None, distortion_reason=str(exc))
                intr = calibrated_intrinsics(self.prior, self.estimate, s.scale)
            self.session = self.make_session(intr)
        self.calibration_frames = len(self.kept)
        for prepared in self.kept:
            self.session.step_prepared(*prepared)
        self.kept = []
