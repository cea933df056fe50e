"""The parallel gripper as a 21-point pseudo-hand (pure geometry, robot-base frame, metres).

Row 0 is the end-effector point ``c`` (DROID ``cartesian_position[:3]``); rows ``1 + 4 i + j`` are
``c + r_j (cos t_i u + sin t_i v)`` with ``t_i = 2 pi i / 5`` (i = 0..4, angle-major) and radius index
j = 0..3. The two modes differ in the circle plane (u, v) and in how the radii follow the gripper
(``gripper`` = DROID ``gripper_position``: 0 open, 1 closed):

* ``dexwm-official`` — the released DexWM code: u, v = base x, y (the circles lie in the base XY plane
  at the end-effector height, whatever the gripper's orientation) and the radii switch at 0.5
  between :data:`RADII_OPEN` and :data:`RADII_CLOSED`.
* ``oriented`` — u, v = the end-effector's own x and y axes, i.e. the plane perpendicular to the
  approach axis (end-effector z) from ``cartesian_position[3:]`` (scipy ``from_euler("xyz")``), and
  the radii interpolate linearly between the open and closed values, so the pseudo-hand turns with
  the gripper and closes smoothly; it equals the official radii at gripper 0 and 1.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

MODES: tuple[str, str] = ("dexwm-official", "oriented")
NUM_ANGLES = 5
NUM_RADII = 4
ANGLES = 2.0 * np.pi * np.arange(NUM_ANGLES) / NUM_ANGLES
RADII_OPEN = np.array([0.03, 0.04, 0.05, 0.06])
RADII_CLOSED = np.array([0.03, 0.04, 0.035, 0.03])
GRIPPER_THRESHOLD = 0.5


def pseudo_hand_row(angle_index: int, radius_index: int) -> int:
    """Row (0..20) within the hand of the point at angle ``i`` and radius ``j``: ``1 + 4 i + j``."""
    return 1 + NUM_RADII * angle_index + radius_index


def official_radii(gripper: np.ndarray) -> np.ndarray:
    """(N, 4) radii of the released code: open radii below 0.5, closed radii at or above."""
    g = np.asarray(gripper, dtype=np.float64)
    return np.where((g >= GRIPPER_THRESHOLD)[:, None], RADII_CLOSED, RADII_OPEN)


def oriented_radii(gripper: np.ndarray) -> np.ndarray:
    """(N, 4) radii interpolated linearly in the gripper value clipped to [0, 1] (non-increasing)."""
    g = np.clip(np.asarray(gripper, dtype=np.float64), 0.0, 1.0)[:, None]
    return (1.0 - g) * RADII_OPEN + g * RADII_CLOSED


def circle_points(center: np.ndarray, u: np.ndarray, v: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """(N, 21, 3) pseudo-hand: row 0 = ``center`` (N, 3), rows 1 + 4i + j on circle j in plane (u, v).

    ``u``, ``v``: (N, 3) orthonormal in-plane axes; ``radii``: (N, 4).
    """
    c = np.asarray(center, dtype=np.float64)
    cos, sin = np.cos(ANGLES), np.sin(ANGLES)
    direction = cos[None, :, None] * u[:, None, :] + sin[None, :, None] * v[:, None, :]  # (N, 5, 3)
    ring = c[:, None, None, :] + radii[:, None, :, None] * direction[:, :, None, :]  # (N, 5, 4, 3)
    out = np.empty((c.shape[0], 1 + NUM_ANGLES * NUM_RADII, 3))
    out[:, 0] = c
    out[:, 1:] = ring.reshape(c.shape[0], NUM_ANGLES * NUM_RADII, 3)
    return out


def official_pseudo_hand(ee_position: np.ndarray, gripper: np.ndarray) -> np.ndarray:
    """(N, 21, 3) base-frame pseudo-hand of the released code from positions (N, 3) and gripper (N,)."""
    c = np.asarray(ee_position, dtype=np.float64)
    n = c.shape[0]
    u = np.tile([1.0, 0.0, 0.0], (n, 1))
    v = np.tile([0.0, 1.0, 0.0], (n, 1))
    return circle_points(c, u, v, official_radii(gripper))


def ee_rotation(euler_xyz: np.ndarray) -> np.ndarray:
    """(N, 3, 3) end-effector-to-base rotations from DROID ``cartesian_position[:, 3:]``.

    Built directly from the angles (no differences of Euler angles), so the roll wrap at +-pi is harmless.
    """
    return Rotation.from_euler("xyz", np.asarray(euler_xyz, dtype=np.float64).reshape(-1, 3)).as_matrix()


def oriented_pseudo_hand(cartesian: np.ndarray, gripper: np.ndarray) -> np.ndarray:
    """(N, 21, 3) base-frame pseudo-hand whose circles lie in the end-effector's xy plane.

    ``cartesian``: (N, 6) DROID ``cartesian_position`` (x, y, z, roll, pitch, yaw).
    """
    cart = np.asarray(cartesian, dtype=np.float64)
    R = ee_rotation(cart[:, 3:6])
    return circle_points(cart[:, :3], R[:, :, 0], R[:, :, 1], oriented_radii(gripper))


def pseudo_hand(mode: str, cartesian: np.ndarray, gripper: np.ndarray) -> np.ndarray:
    """(N, 21, 3) base-frame pseudo-hand of a named mode (see the module docstring)."""
    if mode == "dexwm-official":
        return official_pseudo_hand(np.asarray(cartesian)[:, :3], gripper)
    if mode == "oriented":
        return oriented_pseudo_hand(cartesian, gripper)
    raise ValueError(f"unknown pseudo-hand mode {mode!r}; expected one of {MODES}")
