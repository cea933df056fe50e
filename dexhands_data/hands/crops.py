"""Hand boxes and square crops for crop-based hand networks (HaMeR), with exact inverse transforms.

Pixel convention: the one of the whole package and of ``cv2.warpAffine``: pixel (i, j) has its
centre at u = j, v = i (so ``u = x W - 0.5`` for a normalised x). A crop of side ``out_size`` maps
the box centre to crop pixel ``(out_size / 2, out_size / 2)`` and ``size`` image pixels to
``out_size`` crop pixels:

    right hand:  u_c = s (u - c_u) + S/2,     v_c = s (v - c_v) + S/2,   s = S / size
    left hand:   u_c = -s (u - c_u) + S/2     (mirrored about the box centre)

The mirrored crop is exactly what HaMeR's ``ViTDetDataset`` builds for ``is_right = 0`` (flip the whole
image about ``u -> W - 1 - u``, then crop around the flipped centre), written as one affine map.
HaMeR's normalised crop coordinates (``pred_keypoints_2d``) are ``n = u_c / S - 0.5``, hence
``u = c_u + size n_u`` (right) or ``u = c_u - size n_u`` (left), ``v = c_v + size n_v``.

Box size follows HaMeR: the tight keypoint box is scaled by ``rescale_factor`` (2.5 in the dataset
class, 2.0 in its demo), then grown to the network's input aspect (``BBOX_SHAPE`` width:height =
192:256 for the ViT backbone, which sees only the central 192 columns of the 256 crop), and the
crop is the square of the longer side.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..images import IMAGENET_MEAN, IMAGENET_STD  # HaMeR's MODEL.IMAGE_MEAN / IMAGE_STD over 255


def box_from_keypoints(keypoints_2d: np.ndarray, min_points: int = 4) -> np.ndarray:
    """Tight box ``[u0, v0, u1, v1]`` (px) of the finite keypoints (21, 2).

    Raises ValueError with fewer than ``min_points`` finite keypoints (HaMeR's demo uses > 3).
    """
    kp = np.asarray(keypoints_2d, dtype=np.float64).reshape(-1, 2)
    ok = np.isfinite(kp).all(axis=1)
    if int(ok.sum()) < min_points:
        raise ValueError(f"need at least {min_points} finite keypoints for a box, got {int(ok.sum())}")
    p = kp[ok]
    return np.array([p[:, 0].min(), p[:, 1].min(), p[:, 0].max(), p[:, 1].max()])


def square_crop_size(box: np.ndarray, rescale_factor: float = 2.5,
                     bbox_shape: tuple[int, int] | None = (192, 256)) -> float:
    """Side (px) of the square crop around ``box``: the box times ``rescale_factor``, grown to the
    aspect ``bbox_shape`` = (width, height) (None: no aspect constraint), longer side."""
    box = np.asarray(box, dtype=np.float64)
    w = rescale_factor * (box[2] - box[0])
    h = rescale_factor * (box[3] - box[1])
    if bbox_shape is None:
        return float(max(w, h))
    aw, ah = bbox_shape
    if h * aw < w * ah:  # wider than the target aspect: grow the height
        return float(max(w, w * ah / aw, h))
    return float(max(h, h * aw / ah, w))  # taller: grow the width


@dataclass(frozen=True)
class CropTransform:
    """The similarity (plus optional mirror) from image pixels to crop pixels; see the module doc.

    center (u, v) px and size (px, side of the square region) are in the full image; ``flip`` mirrors
    the crop horizontally (left hands); ``out_size`` is the crop side in pixels.
    """

    center: tuple[float, float]
    size: float
    flip: bool
    out_size: int = 256

    @classmethod
    def for_box(cls, box: np.ndarray, flip: bool, out_size: int = 256, rescale_factor: float = 2.5,
                bbox_shape: tuple[int, int] | None = (192, 256)) -> "CropTransform":
        box = np.asarray(box, dtype=np.float64)
        size = square_crop_size(box, rescale_factor, bbox_shape)
        if not np.isfinite(size) or size <= 0:
            raise ValueError(f"degenerate hand box {box.tolist()}")
        center = ((box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0)
        return cls((float(center[0]), float(center[1])), size, bool(flip), int(out_size))

    @property
    def scale(self) -> float:
        """Crop pixels per image pixel."""
        return self.out_size / self.size

    def matrix(self) -> np.ndarray:
        """2x3 affine A with crop = A @ [u, v, 1] (the matrix ``cv2.warpAffine`` takes)."""
        s = self.scale
        sx = -s if self.flip else s
        half = self.out_size / 2.0
        cu, cv_ = self.center
        return np.array([[sx, 0.0, half - sx * cu], [0.0, s, half - s * cv_]])

    def inverse_matrix(self) -> np.ndarray:
        """2x3 affine from crop pixels back to image pixels."""
        return cv2.invertAffineTransform(self.matrix())

    def to_crop(self, points: np.ndarray) -> np.ndarray:
        """Crop pixels (..., 2) of image pixels (..., 2)."""
        return _apply(self.matrix(), points)

    def to_image(self, points: np.ndarray) -> np.ndarray:
        """Image pixels (..., 2) of crop pixels (..., 2) (undoes the mirror of left hands)."""
        return _apply(self.inverse_matrix(), points)

    def normalized_to_image(self, normalized: np.ndarray) -> np.ndarray:
        """Image pixels of HaMeR-normalised crop coordinates n = u_c / S - 0.5 (..., 2)."""
        return self.to_image((np.asarray(normalized, dtype=np.float64) + 0.5) * self.out_size)

    def image_to_normalized(self, points: np.ndarray) -> np.ndarray:
        """HaMeR-normalised crop coordinates of image pixels (..., 2)."""
        return self.to_crop(points) / self.out_size - 0.5


def _apply(A: np.ndarray, points: np.ndarray) -> np.ndarray:
    p = np.asarray(points, dtype=np.float64)
    return p @ A[:, :2].T + A[:, 2]


def crop_image(image: np.ndarray, transform: CropTransform) -> np.ndarray:
    """The (S, S, C) crop of an image (H, W, C), bilinear, zero outside the image (as HaMeR)."""
    S = transform.out_size
    return cv2.warpAffine(np.ascontiguousarray(image), transform.matrix(), (S, S), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def normalize_crop(crop_rgb: np.ndarray, mean: tuple[float, ...] = IMAGENET_MEAN,
                   std: tuple[float, ...] = IMAGENET_STD) -> np.ndarray:
    """(3, S, S) float32 network input from an RGB uint8 crop: (x - 255 mean) / (255 std) per channel."""
    x = np.asarray(crop_rgb, dtype=np.float32)
    m = 255.0 * np.asarray(mean, dtype=np.float32)
    s = 255.0 * np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(((x - m) / s).transpose(2, 0, 1))


def denormalize_crop(tensor: np.ndarray, mean: tuple[float, ...] = IMAGENET_MEAN,
                     std: tuple[float, ...] = IMAGENET_STD) -> np.ndarray:
    """RGB float (S, S, 3) in 0..255 from a normalised (3, S, S) crop (inverse of :func:`normalize_crop`)."""
    x = np.asarray(tensor, dtype=np.float32).transpose(1, 2, 0)
    return x * 255.0 * np.asarray(std, dtype=np.float32) + 255.0 * np.asarray(mean, dtype=np.float32)


def mirror_points_3d(points: np.ndarray) -> np.ndarray:
    """Points (..., 3) mirrored through the camera's y-z plane (x -> -x): a left hand seen in a
    mirrored crop is a right hand with x negated, and back."""
    p = np.array(points, dtype=np.float64, copy=True)
    p[..., 0] = -p[..., 0]
    return p
