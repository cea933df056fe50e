"""DexWM's crop geometry (dexwm.md §5): how a source frame becomes the 392 x 224 model input, and
where the HC keypoints land in that crop.

Pixel convention: the released code's, ``u' = u * sx - crop_x`` with pixel (0, 0) at the top-left
corner of the first pixel (no half-pixel shift), so that EgoDex 1920x1080 gives exactly
``u' = u * 398 / 1920 - 3`` and ``v' = v * 224 / 1080``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..distortion import Distortion, distort_pixels
from ..geometry import project
from ..keypoints import HC_POSE_ROWS, NUM_KEYPOINTS

OUT_HEIGHT, OUT_WIDTH = 224, 392


@dataclass(frozen=True)
class CropGeometry:
    """How a source frame of ``src_width`` x ``src_height`` becomes the ``out_width`` x ``out_height`` input.

    The frame is resized with cv2 INTER_LINEAR to ``resized_width`` x ``resized_height`` (shorter side
    to ``out_height`` as the released code does, ``int(out_height * W / H)``; for frames narrower than
    the output aspect, width to ``out_width`` instead) and centre-cropped at (``crop_x``, ``crop_y``).
    """

    src_width: int
    src_height: int
    resized_width: int
    resized_height: int
    crop_x: int
    crop_y: int
    out_width: int = OUT_WIDTH
    out_height: int = OUT_HEIGHT

    @classmethod
    def for_source(cls, width: int, height: int, out_width: int = OUT_WIDTH, out_height: int = OUT_HEIGHT):
        if width <= 0 or height <= 0:
            raise ValueError(f"invalid source frame size {width}x{height}")
        rw, rh = int(out_height * width / height), out_height
        if rw < out_width:
            rw, rh = out_width, int(out_width * height / width)
        return cls(int(width), int(height), rw, rh, (rw - out_width) // 2, (rh - out_height) // 2,
                   out_width, out_height)

    @property
    def scale_x(self) -> float:
        return self.resized_width / self.src_width

    @property
    def scale_y(self) -> float:
        return self.resized_height / self.src_height

    def source_to_crop(self, uv: np.ndarray) -> np.ndarray:
        """Crop pixels (..., 2) of source-frame pixels (..., 2)."""
        uv = np.asarray(uv, dtype=np.float64)  # u / W * W' - crop_x: the released expression, same rounding
        u = uv[..., 0] / self.src_width * self.resized_width - self.crop_x
        v = uv[..., 1] / self.src_height * self.resized_height - self.crop_y
        return np.stack([u, v], axis=-1)

    def crop_image(self, rgb: np.ndarray) -> np.ndarray:
        """The ``out_height`` x ``out_width`` crop of an RGB image of the source frame at any resolution
        with the source's aspect (e.g. the stored short-side-224 JPEG); resized only if needed."""
        h, w = rgb.shape[:2]
        if (w, h) != (self.resized_width, self.resized_height):
            rgb = cv2.resize(rgb, (self.resized_width, self.resized_height), interpolation=cv2.INTER_LINEAR)
        return rgb[self.crop_y : self.crop_y + self.out_height, self.crop_x : self.crop_x + self.out_width]


def visible_in_crop(uv: np.ndarray, width: int = OUT_WIDTH, height: int = OUT_HEIGHT) -> np.ndarray:
    """The released validity rule ``0 < u' < width and 0 < v' < height`` (NaN -> False)."""
    u, v = uv[..., 0], uv[..., 1]
    with np.errstate(invalid="ignore"):
        return (u > 0) & (u < width) & (v > 0) & (v < height)


def hc_keypoints_cam(keypoints_cam: np.ndarray) -> np.ndarray:
    """The 12 HC keypoints (..., 12, 3) (left wrist + 5 tips, then right) of keypoints (..., 2, 21, 3)."""
    flat = np.asarray(keypoints_cam).reshape(keypoints_cam.shape[:-3] + (2 * NUM_KEYPOINTS, 3))
    return flat[..., list(HC_POSE_ROWS), :]


def project_hc_keypoints(
    keypoints_cam: np.ndarray,
    hand_valid: np.ndarray,
    K: np.ndarray,
    geometry: CropGeometry,
    distortion: Distortion | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Crop pixels (T, 12, 2) float32 and visibility (T, 12) bool of the HC keypoints.

    keypoints_cam (T, 2, 21, 3) m in each frame's own OpenCV camera; K the intrinsics of the source
    frame grid, ``distortion`` its lens (the episode's; None: pinhole): keypoints are projected with
    it, so they land where the stored (distorted) frames show the hands. A keypoint is visible when
    its hand is valid, it lies in front of the camera (z > 0) and ``0 < u' < 392 and 0 < v' < 224``.
    Invisible keypoints keep their coordinates where finite (NaN behind the camera or for a missing
    hand).
    """
    pts = hc_keypoints_cam(np.asarray(keypoints_cam, dtype=np.float64))
    uv = geometry.source_to_crop(distort_pixels(project(pts, K), K, distortion))
    hand_of = np.repeat(np.asarray(hand_valid, bool), len(HC_POSE_ROWS) // 2, axis=-1)
    visible = visible_in_crop(uv, geometry.out_width, geometry.out_height) & hand_of
    uv[~hand_of] = np.nan
    return uv.astype(np.float32), visible
