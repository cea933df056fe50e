"""DROID camera geometry: extrinsic 6-vectors to ``T_base_cam`` and pinhole intrinsics.

Frames: ``base`` = the Franka robot base (metres); ``cam`` = the ZED **left** eye with OpenCV axes
(x right, y down, z forward), which is what DROID's extrinsics describe, so ``T_opencv_source`` is
the identity. A DROID extrinsic is ``[x, y, z, rx, ry, rz]``: translation in metres and scipy
``from_euler("xyz", [rx, ry, rz])`` (extrinsic X-Y-Z, radians), mapping camera coordinates into the
base frame, exactly as the released DexWM code builds it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from ...geometry import Intrinsics

#: ZED 2 left camera at HD720 (1280x720), the fallback used by public DROID tools when no
#: calibration is given (``formats.md`` §1.4).
ZED_DEFAULT_INTRINSICS = Intrinsics(733.37, 733.37, 625.26, 361.92, 1280, 720, "default")
#: Resolution of the raw release MP4s, to which the calibration release's intrinsics refer.
CALIBRATION_RESOLUTION = (1280, 720)


def T_base_cam_from_extrinsics(extrinsics: np.ndarray) -> np.ndarray:
    """4x4 camera-to-base transforms (..., 4, 4) from DROID 6-vectors (..., 6).

    Rotation = ``Rotation.from_euler("xyz", v[3:])`` (lower case: extrinsic X-Y-Z), translation = v[:3].
    """
    v = np.asarray(extrinsics, dtype=np.float64)
    if v.shape[-1] != 6:
        raise ValueError(f"a DROID extrinsic is a 6-vector, got shape {v.shape}")
    flat = v.reshape(-1, 6)
    out = np.zeros((flat.shape[0], 4, 4))
    out[:, :3, :3] = Rotation.from_euler("xyz", flat[:, 3:]).as_matrix()
    out[:, :3, 3] = flat[:, :3]
    out[:, 3, 3] = 1.0
    return out.reshape(v.shape[:-1] + (4, 4))


def default_intrinsics(width: int, height: int) -> Intrinsics:
    """The documented ZED defaults rescaled to a stored ``width`` x ``height`` frame (source "default")."""
    return ZED_DEFAULT_INTRINSICS.scaled(width, height)


def intrinsics_from_calibration_vector(values, width: int, height: int) -> Intrinsics:
    """Intrinsics from the calibration release's ``[fx, cx, fy, cy]`` (at 1280x720), rescaled to the frame."""
    fx, cx, fy, cy = (float(x) for x in values)
    if not all(np.isfinite([fx, cx, fy, cy])) or fx <= 0 or fy <= 0:
        raise ValueError(f"invalid [fx, cx, fy, cy] calibration {list(values)}")
    full = Intrinsics(fx, fy, cx, cy, *CALIBRATION_RESOLUTION, "calibration")
    return full.scaled(width, height)


class CalibrationTable:
    """Per-serial intrinsics from the calibration release's ``intrinsics.json``.

    Accepted layouts: ``{episode_id: {serial: [fx, cx, fy, cy]}}`` (the public release, keyed by the
    id of ``metadata_<id>.json``) or a flat ``{serial: [fx, cx, fy, cy]}``.
    """

    def __init__(self, path: str | Path):
        self.path = str(path)
        try:
            self._table = json.loads(Path(path).read_text())
        except (OSError, ValueError) as e:
            raise ValueError(f"{path}: cannot read the intrinsics calibration: {e}") from e
        if not isinstance(self._table, dict):
            raise ValueError(f"{path}: expected a JSON object")

    def lookup(self, episode_key: str | None, serial: str) -> list[float] | None:
        """``[fx, cx, fy, cy]`` for a camera serial, preferring the episode's own entry."""
        if episode_key is not None:
            entry = self._table.get(episode_key)
            if isinstance(entry, dict) and serial in entry:
                return _as_vector(entry[serial])
        value = self._table.get(serial)
        return _as_vector(value) if value is not None else None


def _as_vector(value) -> list[float] | None:
    if isinstance(value, dict):  # tolerate {"intrinsics": [...]}-style wrappers
        value = next((v for v in value.values() if isinstance(v, list)), None)
    if isinstance(value, list) and len(value) == 4:
        return [float(x) for x in value]
    return None
