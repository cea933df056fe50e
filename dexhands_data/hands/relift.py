"""Lift a finished hand track again with other intrinsics (e.g. a self-calibrated focal).

For backends that place hands per frame (HaMeR); MediaPipe keeps its landmarks until
``finish(intrinsics)`` and lifts there with the final K (``hands/track_lift.py``).

The lift of a hand (:func:`~dexhands_data.geometry.lift_to_camera`) only translates its metric,
camera-aligned shape until it reprojects onto its 2D keypoints; so each hand's shape (its
keypoints minus their mean, metres) and 2D keypoints (px) are all a second lift needs; with lens
distortion the lift runs on the 2D keypoints' ideal (undistorted) pixels. Pixels,
validity and confidences stay (a hand the new lift would put behind the camera becomes invalid); ``keypoints_cam`` and ``lift_residual_px`` are recomputed.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..geometry import Intrinsics, lift_to_camera
from ..records import HandTrack


def relift_track(track: HandTrack, intrinsics: Intrinsics) -> HandTrack:
    """A copy of ``track`` whose valid hands are lifted with ``intrinsics`` (same pixel grid)."""
    kp_cam = track.keypoints_cam.copy()
    residual = track.lift_residual_px.copy()
    valid = track.valid.copy()
    kp_2d = track.keypoints_2d.copy()
    confidence = track.confidence.copy()
    failed = 0
    for i, s in zip(*np.nonzero(track.valid)):
        shape = track.keypoints_cam[i, s].astype(np.float64)
        shape -= shape.mean(axis=0)
        try:
            lift = lift_to_camera(shape, intrinsics.ideal_pixels(track.keypoints_2d[i, s]), intrinsics.K)
        except np.linalg.LinAlgError:
            lift = None
        if lift is None or not np.all(lift.points_cam[:, 2] > 0):
            failed += 1
            valid[i, s] = False
            kp_cam[i, s] = kp_2d[i, s] = np.nan
            residual[i, s] = np.nan
            confidence[i, s] = 0.0
            continue
        kp_cam[i, s] = lift.points_cam
        residual[i, s] = lift.residual_px
    processing = {**track.processing, "relifted_with_intrinsics": intrinsics.source, "relift_failed": failed}
    return replace(track, keypoints_cam=kp_cam, keypoints_2d=kp_2d, valid=valid, confidence=confidence,
                   lift_residual_px=residual, processing=processing)
