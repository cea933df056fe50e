"""Exact-geometry image sequences for odometry tests, made from real photographs.

* ``rotation_sequence``: a real photo seen by a camera that only rotates: view i is the source
  warped by ``K_src R_0_i K_view^-1`` (the exact image of a rotating pinhole camera).
* ``textured_planes`` / ``render_planes``: a 3D scene of textured rectangles (real photos) at several
  depths, rendered per plane with its plane-induced homography and painted far to near: exact
  general motion. ``single_plane``: one large textured plane (fronto-parallel or tilted), the
  near-planar tabletop case where essential-matrix decompositions are ambiguous.
* ``distorted_views``: any of these seen through a lens with radial-tangential distortion: each
  frame pixel samples the pinhole rendering at its ideal (undistorted) position, exactly.
World = first camera (OpenCV axes); poses are ``T_world_cam`` (4, 4).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from dexhands_data.distortion import Distortion, undistort_pixels
from dexhands_data.geometry import matrix_from_rotvec, se3, se3_inverse


def load_rgb(path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None, path
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def view_K(width: int, height: int, f: float) -> np.ndarray:
    return np.array([[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1.0]])


def smooth_rotations(n: int, amplitude_deg=(6.0, 4.0, 3.0), periods=(40.0, 55.0, 70.0)) -> np.ndarray:
    """R_world_cam (n, 3, 3): smooth sinusoidal yaw/pitch/roll, identity at frame 0."""
    i = np.arange(n)[:, None]
    rv = np.deg2rad(np.asarray(amplitude_deg)) * np.sin(2 * np.pi * i / np.asarray(periods))
    return matrix_from_rotvec(rv[:, [1, 0, 2]])


def rotation_sequence(source: np.ndarray, rotations: np.ndarray, size=(640, 427), f: float = 560.0):
    """Views (n, H, W, 3) of ``source`` (its own focal = f, principal point at its centre)."""
    w, h = size
    K = view_K(w, h, f)
    Ks = view_K(source.shape[1], source.shape[0], f)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    frames = [cv2.warpPerspective(source, Ks @ R @ np.linalg.inv(K), (w, h), flags=flags) for R in rotations]
    return np.stack(frames), K


def rotation_render(source: np.ndarray, f: float):
    """``render(R, K, size)``: the view of ``source`` (its own focal = f, centred) by a camera turned by R."""
    Ks = view_K(source.shape[1], source.shape[0], f)

    def render(R: np.ndarray, K: np.ndarray, size) -> np.ndarray:
        return cv2.warpPerspective(source, Ks @ R @ np.linalg.inv(K), size,
                                   flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    return render


def distorted_views(render, poses, K: np.ndarray, size, distortion: Distortion) -> np.ndarray:
    """Frames (n, H, W, 3) of a camera with intrinsics K and lens ``distortion``: ``render(pose,
    K_canvas, canvas_size)`` draws the pinhole view on a canvas large enough for every ideal pixel the
    distorted frame shows (barrel distortion shows more than the pinhole frame), and frame pixel
    (u, v) samples it at the ideal pixel of (u, v) (bilinear)."""
    w, h = size
    u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    ideal = undistort_pixels(np.stack([u, v], axis=-1), K, distortion)
    assert np.isfinite(ideal).all(), "the lens folds inside the frame"
    lo = np.minimum(np.floor(ideal.reshape(-1, 2).min(axis=0)) - 2, 0)
    hi = np.maximum(np.ceil(ideal.reshape(-1, 2).max(axis=0)) + 2, [w - 1, h - 1])
    canvas = (int(hi[0] - lo[0]) + 1, int(hi[1] - lo[1]) + 1)
    K_canvas = np.array(K, dtype=np.float64)
    K_canvas[:2, 2] -= lo
    map_xy = (ideal - lo).astype(np.float32)
    return np.stack([cv2.remap(render(pose, K_canvas, canvas), map_xy[..., 0], map_xy[..., 1], cv2.INTER_LINEAR)
                     for pose in poses])


@dataclass
class Plane:
    texture: np.ndarray  # (h, w, 3) RGB
    corner: np.ndarray  # world position of the texture's top-left pixel (m)
    right: np.ndarray  # world step per texture pixel along u (m)
    down: np.ndarray  # world step per texture pixel along v (m)


def textured_planes(images: list[np.ndarray]) -> list[Plane]:
    """A back wall at 6 m and three fronto-parallel boards at 2.5-4 m, textured with real photos."""
    planes = []
    layout = [(-4.5, -3.0, 6.0, 9.0), (-1.6, -0.9, 4.0, 1.6), (0.4, -0.2, 3.2, 1.2), (-0.9, 0.3, 2.5, 0.8)]
    for k, (x, y, z, width) in enumerate(layout):
        tex = images[k % len(images)]
        step = width / tex.shape[1]
        planes.append(Plane(tex, np.array([x, y, z]), np.array([step, 0, 0]), np.array([0, step, 0.0])))
    return planes


def single_plane(texture: np.ndarray, tilt_deg: float = 0.0, depth_m: float = 2.0, width_m: float = 7.0,
                 centre_x_m: float = 0.5) -> list[Plane]:
    """One textured plane ``depth_m`` ahead, turned by ``tilt_deg`` about the camera's y axis
    (positive: its right side farther away), wide enough to fill a 65 deg view along ``general_motion``."""
    a = np.deg2rad(tilt_deg)
    step = width_m / texture.shape[1]
    right = step * np.array([np.cos(a), 0.0, np.sin(a)])
    down = np.array([0.0, step, 0.0])
    centre = np.array([centre_x_m, 0.0, depth_m])
    corner = centre - right * texture.shape[1] / 2 - down * texture.shape[0] / 2
    return [Plane(texture, corner, right, down)]


def render_planes(planes: list[Plane], T_world_cam: np.ndarray, K: np.ndarray, size=(640, 480)) -> np.ndarray:
    w, h = size
    T_cw = se3_inverse(T_world_cam)
    R, t = T_cw[:3, :3], T_cw[:3, 3]
    out = np.zeros((h, w, 3), np.uint8)
    for p in sorted(planes, key=lambda p: -p.corner[2]):
        H = K @ np.column_stack([R @ p.right, R @ p.down, R @ p.corner + t])
        img = cv2.warpPerspective(p.texture, H, (w, h), flags=cv2.INTER_LINEAR)
        ones = np.full(p.texture.shape[:2], 255, np.uint8)
        cover = cv2.warpPerspective(ones, H, (w, h), flags=cv2.INTER_NEAREST)
        out[cover > 0] = img[cover > 0]
    return out


def general_motion(n: int, step_m: float = 0.02) -> np.ndarray:
    """T_world_cam (n, 4, 4): sideways/forward translation with gentle rotation, identity at 0."""
    i = np.arange(n)
    t = np.stack([step_m * i, 0.3 * step_m * np.sin(i / 8.0), 0.5 * step_m * i], axis=1)
    rv = np.deg2rad(np.stack([1.5 * np.sin(i / 11.0), -0.15 * i, 1.0 * np.sin(i / 17.0)], axis=1))
    return se3(matrix_from_rotvec(rv), t)


def rotation_angle_deg(R: np.ndarray) -> np.ndarray:
    """Angle (deg) of rotation matrices (..., 3, 3)."""
    c = (np.trace(R, axis1=-2, axis2=-1) - 1) / 2
    return np.rad2deg(np.arccos(np.clip(c, -1, 1)))
