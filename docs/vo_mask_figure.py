"""Make ``docs/img/vo_hand_mask.png``: where the odometry may and may not track features.

A frame of the Apache-2.0 ``hand_video/mediapipe_hand_landmarker_test_video.mp4`` with MediaPipe's
hand keypoints: the dilated hull and border band of :func:`dexhands_data.camera.masks.feature_mask`
are shaded, corners the odometry keeps are green, corners the mask removes are red.
Run: ``python docs/vo_mask_figure.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from dexhands_data.camera.masks import feature_mask
from dexhands_data.video_io import read_frames_at

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DEXDATA_SHARED_DATA", ROOT.parent / "shared" / "data"))
VIDEO = SHARED / "hand_video" / "mediapipe_hand_landmarker_test_video.mp4"


def main(frame_index: int = 120) -> None:
    import mediapipe as mp

    rgb = read_frames_at(str(VIDEO), [frame_index])[0]
    h, w = rgb.shape[:2]
    kp = np.full((2, 21, 2), np.nan)
    valid = np.zeros(2, bool)
    with mp.solutions.hands.Hands(static_image_mode=True, max_num_hands=2) as hands:
        res = hands.process(rgb)
    for slot, lm in enumerate((res.multi_hand_landmarks or [])[:2]):
        kp[slot] = [[p.x * w - 0.5, p.y * h - 0.5] for p in lm.landmark]
        valid[slot] = True
    mask = feature_mask(h, w, kp, valid)
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    corners = cv2.goodFeaturesToTrack(grey, 400, 0.005, 8, blockSize=7).reshape(-1, 2)
    kept = mask[corners[:, 1].astype(int), corners[:, 0].astype(int)] > 0
    out = rgb.copy()
    out[mask == 0] = (0.5 * out[mask == 0] + [60, 0, 60]).astype(np.uint8)
    for (u, v), ok in zip(corners, kept):
        cv2.circle(out, (int(u), int(v)), 3, (40, 220, 60) if ok else (255, 40, 40), -1, cv2.LINE_AA)
    text = f"kept {int(kept.sum())}, removed on hands/border {int((~kept).sum())}"
    cv2.putText(out, text, (8, h - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    path = ROOT / "docs" / "img" / "vo_hand_mask.png"
    cv2.imwrite(str(path), cv2.cvtColor(out, cv2.COLOR_RGB2BGR))
    print(f"{path}: {text}")


if __name__ == "__main__":
    main()
