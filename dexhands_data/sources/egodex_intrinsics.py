"""An EgoDex K on the video it is used with.

EgoDex stores one K per recording, for the 1920x1080 frames the Vision Pro recorded; people keep the
829 h at 960x540 or smaller. The K carries no frame size, so its native frame is inferred from the
principal point: the camera's principal point sits at the frame centre, so K belongs to a
``2 cx x 2 cy`` frame (pixels). A video of that size (within :data:`SIZE_TOLERANCE`) uses K as stored;
a uniform downscale of it uses K scaled to the video's pixel grid (``Intrinsics.scaled``: pixel-centre
convention, ``u' = (u + 0.5) s - 0.5``); any other size (another aspect ratio, or larger than K's frame)
is an error, since no K for it can be derived.

The tolerance is relative: it admits a principal point a few percent off the centre, and a downscaled
size rounded to whole (or even) pixels, e.g. 1920x1080 -> 854x480 (x 0.4448 / 0.4444). With a principal
point off-centre by a fraction e, the scaled focal length is off by about e as well.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..geometry import Intrinsics

#: relative tolerance on "same size" and on "same aspect ratio" (16:9 vs 16:10 differ by 11 %).
SIZE_TOLERANCE = 0.03


class IntrinsicsMismatch(ValueError):
    """The video's size is neither K's native frame nor a uniform downscale of it."""


@dataclass(frozen=True)
class FittedIntrinsics:
    """K on the video's pixel grid; ``native_size`` (W, H) px is the frame the stored K belongs to and
    ``scale`` = video width / native width (1.0: K used as stored)."""

    intrinsics: Intrinsics
    native_size: tuple[int, int]
    scale: float

    @property
    def rescaled(self) -> bool:
        return self.scale != 1.0

    def processing(self) -> dict[str, object]:
        """What the episode's ``processing`` column records about the fit."""
        return {"intrinsics_native_size": list(self.native_size), "intrinsics_scale": round(self.scale, 6)}


def native_frame(cx: float, cy: float) -> tuple[int, int]:
    """(W, H) px of the frame whose centre is the principal point (cx, cy)."""
    return int(round(2.0 * cx)), int(round(2.0 * cy))


def fit_intrinsics(fx: float, fy: float, cx: float, cy: float, width: int, height: int,
                   source: str) -> FittedIntrinsics:
    """K (fx, fy, cx, cy px, of its native frame) on a ``width`` x ``height`` video; raises
    :class:`IntrinsicsMismatch` (message without the file names) when the sizes cannot be reconciled."""
    if not (cx > 0 and cy > 0):
        raise IntrinsicsMismatch(f"principal point ({cx:.1f}, {cy:.1f}) is not inside any frame")
    nw, nh = native_frame(cx, cy)
    sx, sy = width / nw, height / nh
    what = (f"K with principal point ({cx:.1f}, {cy:.1f}) belongs to a {nw}x{nh} frame "
            f"(aspect {nw / nh:.3f}), the video is {width}x{height} (aspect {width / height:.3f})")
    if abs(sx / sy - 1.0) > SIZE_TOLERANCE:
        raise IntrinsicsMismatch(f"{what}: the aspect ratio differs, so the video is not a uniform "
                                 "downscale of K's frame")
    scale = (sx * sy) ** 0.5
    if abs(scale - 1.0) <= SIZE_TOLERANCE:
        return FittedIntrinsics(Intrinsics(fx, fy, cx, cy, int(width), int(height), source), (nw, nh), 1.0)
    if scale > 1.0:
        raise IntrinsicsMismatch(f"{what}: the video is larger than K's frame (x {scale:.3f}), "
                                 "not a downscale of it")
    native = Intrinsics(fx, fy, cx, cy, nw, nh, source)
    return FittedIntrinsics(native.scaled(width, height), (nw, nh), sx)
