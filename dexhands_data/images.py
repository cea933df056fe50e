"""JPEG encoding of frames for the ``image`` column (HF Image feature)."""

from __future__ import annotations

import cv2
import numpy as np

#: ImageNet RGB statistics on the 0..1 scale (the one copy: DexWM's frame normalisation, HaMeR's crops).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def resize_short_side(rgb: np.ndarray, short_side: int) -> np.ndarray:
    """Resize so the shorter side is ``short_side`` px, keeping the aspect ratio (cv2 INTER_LINEAR,
    as DexWM's preprocessing does). The longer side is rounded to the nearest pixel."""
    h, w = rgb.shape[:2]
    scale = short_side / min(h, w)
    size = (int(round(w * scale)), int(round(h * scale)))
    if size == (w, h):
        return rgb
    return cv2.resize(rgb, size, interpolation=cv2.INTER_LINEAR)


def encode_jpeg(rgb: np.ndarray, short_side: int | None = 224, quality: int = 90) -> bytes:
    """JPEG bytes of an RGB uint8 image, first resized to ``short_side`` (None keeps the size)."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 image (H, W, 3), got {rgb.dtype} {rgb.shape}")
    if short_side is not None:
        rgb = resize_short_side(rgb, short_side)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def decode_jpeg(data: bytes) -> np.ndarray:
    """RGB uint8 (H, W, 3) from JPEG bytes."""
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError("not a decodable JPEG")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


class ImageSpool:
    """Append-only store of encoded frames in an anonymous temporary file.

    Holds JPEG bytes of a long episode on disk instead of in memory; indexable like a list
    (``len``, ``spool[i]``), which is all the shard writer needs.
    """

    def __init__(self) -> None:
        import tempfile

        self._file = tempfile.TemporaryFile(prefix="dexdata-frames-")
        self._offsets: list[tuple[int, int]] = []
        self._end = 0

    def append(self, data: bytes) -> None:
        self._file.seek(self._end)
        self._file.write(data)
        self._offsets.append((self._end, len(data)))
        self._end += len(data)

    def __len__(self) -> int:
        return len(self._offsets)

    def __getitem__(self, index: int) -> bytes:
        start, size = self._offsets[index]
        self._file.seek(start)
        return self._file.read(size)

    def close(self) -> None:
        self._file.close()
