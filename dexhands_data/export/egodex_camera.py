"""The camera the released DexWM code assumes for every EgoDex video, and re-rendering into it.

The released code never reads ``camera/intrinsic``: it projects HC targets with fx = fy = 736.6339,
cx = 960, cy = 540 and maps pixels to its 224x392 crop by ``u * 398 / 1920 - 3``, ``v * 224 / 1080``
(dexwm.md §5, §6.3). A video of any size whose K, rescaled to 1920x1080, equals that camera gets the
right targets; any other camera gets shifted / scaled ones.

:func:`match_egodex_camera` re-renders frames into that pinhole camera (a pure change of intrinsics,
the homography ``K_egodex @ inv(K_source)``, same optical centre and axes), so the 3D keypoints and the
camera poses stay exactly as they are and only ``camera/intrinsic`` and the pixels change.
"""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np

from ..geometry import Intrinsics
from ..sources.egodex import DEFAULT_K
from .frames import EpisodeFrames

#: Relative tolerance on the focal length and width; pixels (at 1080 rows) on the principal point.
FOCAL_RTOL = 5e-3
WIDTH_RTOL = 7e-3
PIXEL_ATOL = 1.0


def camera_mismatch(intr: Intrinsics) -> str | None:
    """Why ``intr`` is not the released code's EgoDex camera, or None. Compared at 1080 rows (the
    released code resizes by the short side), with a width tolerance of :data:`WIDTH_RTOL` (an
    even-cropped 16:9 frame still matches)."""
    f, cx, cy, w, h = DEFAULT_K
    s = h / intr.height
    fx, fy = intr.fx * s, intr.fy * s
    px, py = (intr.cx + 0.5) * s - 0.5, (intr.cy + 0.5) * s - 0.5
    problems = []
    if abs(fx - f) > FOCAL_RTOL * f or abs(fy - f) > FOCAL_RTOL * f:
        problems.append(f"fx, fy = {fx:.1f}, {fy:.1f} px at 1080 rows (EgoDex {f})")
    if abs(intr.width * s - w) > WIDTH_RTOL * w:
        problems.append(f"{intr.width}x{intr.height} is not 16:9")
    elif abs(px - cx) > PIXEL_ATOL * (1 + s) or abs(py - cy) > PIXEL_ATOL * (1 + s):  # 1 px at both scales
        problems.append(f"principal point ({px:.1f}, {py:.1f}) at 1080 rows (EgoDex ({cx:.0f}, {cy:.0f}))")
    if intr.distorted:
        problems.append(f"lens distortion {intr.distortion.to_list()} (EgoDex is a pinhole)")
    return "; ".join(problems) or None


def egodex_grid(height: int) -> tuple[int, int]:
    """An even 16:9 pixel grid (width, height) of about ``height`` rows."""
    h = max(2, height - height % 2)
    w = int(round(h * 16 / 9))
    return w - w % 2, h


def egodex_camera(width: int, height: int) -> Intrinsics:
    """The EgoDex camera on a ``width`` x ``height`` grid of about 16:9: scaled by the height (square
    pixels), the width centre-cropped or padded, as the released code's short-side resize sees it."""
    f, cx, cy, w, h = DEFAULT_K
    s = height / h
    shift = (w * s - width) / 2
    return Intrinsics(f * s, f * s, (cx + 0.5) * s - 0.5 - shift, (cy + 0.5) * s - 0.5, width, height,
                      "egodex_default")


def match_egodex_camera(frames: EpisodeFrames) -> EpisodeFrames:
    """``frames`` re-rendered into the EgoDex camera on a 16:9 grid of the same height.

    Pixel (u, v) of the output shows the ray ``inv(K_out) @ (u, v, 1)``, read from the input at
    ``K_in @ inv(K_out) @ (u, v, 1)`` (with the input's lens distortion applied when it has one: the
    output is an undistorted pinhole view); rays outside the source frame are black.
    """
    if frames.intrinsics is None:
        raise ValueError("the episode has no intrinsics: cannot re-render it into the EgoDex camera")
    w, h = egodex_grid(frames.height)
    k_out = egodex_camera(w, h)
    H = k_out.K @ np.linalg.inv(frames.intrinsics.K)
    inner = frames.iterate
    if frames.intrinsics.distorted:  # each output ray read at its distorted input pixel
        u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
        q = np.stack([u, v, np.ones_like(u)], axis=-1) @ np.linalg.inv(H).T
        src = frames.intrinsics.image_pixels(q[..., :2] / q[..., 2:3]).astype(np.float32)

        def warped() -> Iterator[np.ndarray]:
            for image in inner():
                yield cv2.remap(image, src[..., 0], src[..., 1], cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    else:
        def warped() -> Iterator[np.ndarray]:
            for image in inner():
                yield cv2.warpPerspective(image, H, (w, h), flags=cv2.INTER_LINEAR,
                                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)

    return EpisodeFrames(f"{frames.origin}, re-rendered into the EgoDex camera", w, h, k_out, warped)
