"""Rigid transforms, pinhole projection and the lift of hand-centred keypoints into the camera.

Conventions (the data contract): metres, radians; camera frame = OpenCV (x right, y down,
z forward); ``T_a_b`` is a 4x4 homogeneous matrix mapping frame-b coordinates into frame a.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from .distortion import Distortion, check_covers_frame, distort_pixels, undistort_pixels

# ----------------------------------------------------------------------------- SE(3)


def se3(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """4x4 transform from a 3x3 rotation and a 3-vector translation (batched over leading axes)."""
    rotation = np.asarray(rotation, dtype=np.float64)
    translation = np.asarray(translation, dtype=np.float64)
    out = np.zeros(rotation.shape[:-2] + (4, 4))
    out[..., :3, :3] = rotation
    out[..., :3, 3] = translation
    out[..., 3, 3] = 1.0
    return out


def se3_inverse(T: np.ndarray) -> np.ndarray:
    """Inverse of rigid transforms ``T`` (..., 4, 4): R^T and -R^T t."""
    T = np.asarray(T, dtype=np.float64)
    R_t = np.swapaxes(T[..., :3, :3], -1, -2)
    return se3(R_t, -np.einsum("...ij,...j->...i", R_t, T[..., :3, 3]))


def transform_points(T: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply rigid transforms to points; float64 points in T's target frame.

    ``T`` (4, 4) applies to points (..., 3) of any shape. Batched ``T`` (..., 4, 4) applies each
    transform to its own set of points (..., P, 3), the leading axes broadcast against each other
    (e.g. T (N, 4, 4) with points (N, 42, 3), or T (W, T, 4, 4) with points (W, T, 42, 3)).
    """
    T = np.asarray(T, dtype=np.float64)
    p = np.asarray(points, dtype=np.float64)
    if T.shape[-2:] != (4, 4):
        raise ValueError(f"transforms must be (..., 4, 4), got {T.shape}")
    if T.ndim == 2:
        return p @ T[:3, :3].T + T[:3, 3]
    if p.ndim < 2 or p.shape[-1] != 3:
        raise ValueError(f"batched transforms {T.shape} need points (..., P, 3), got {p.shape}")
    return p @ np.swapaxes(T[..., :3, :3], -1, -2) + T[..., None, :3, 3]


def relative_pose(T_world_a: np.ndarray, T_world_b: np.ndarray) -> np.ndarray:
    """``T_a_b``: pose of frame b expressed in frame a, from two world poses."""
    return se3_inverse(T_world_a) @ np.asarray(T_world_b, dtype=np.float64)


def is_rigid(T: np.ndarray, atol: float = 1e-5) -> bool:
    """True if ``T`` (4, 4) is finite with an orthonormal, right-handed rotation block."""
    T = np.asarray(T, dtype=np.float64)
    if T.shape != (4, 4) or not np.all(np.isfinite(T)):
        return False
    R = T[:3, :3]
    return (
        np.allclose(R @ R.T, np.eye(3), atol=atol)
        and abs(np.linalg.det(R) - 1.0) < atol
        and np.allclose(T[3], [0, 0, 0, 1], atol=atol)
    )


def rotvec_from_matrix(R: np.ndarray) -> np.ndarray:
    """Axis-angle vector (radians, |v| in [0, pi]) of rotation matrices (..., 3, 3)."""
    R = np.asarray(R, dtype=np.float64)
    return Rotation.from_matrix(R.reshape(-1, 3, 3)).as_rotvec().reshape(R.shape[:-2] + (3,))


def matrix_from_rotvec(v: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) from axis-angle vectors (..., 3) in radians."""
    v = np.asarray(v, dtype=np.float64)
    return Rotation.from_rotvec(v.reshape(-1, 3)).as_matrix().reshape(v.shape[:-1] + (3, 3))


def euler_xyz_from_matrix(R: np.ndarray) -> np.ndarray:
    """scipy ``as_euler('xyz')`` (extrinsic X-Y-Z, radians) of rotations (..., 3, 3)."""
    R = np.asarray(R, dtype=np.float64)
    return Rotation.from_matrix(R.reshape(-1, 3, 3)).as_euler("xyz").reshape(R.shape[:-2] + (3,))


def matrix_from_euler_xyz(angles: np.ndarray) -> np.ndarray:
    """Rotation matrices from extrinsic X-Y-Z Euler angles (radians), R = Rz @ Ry @ Rx."""
    angles = np.asarray(angles, dtype=np.float64)
    return Rotation.from_euler("xyz", angles.reshape(-1, 3)).as_matrix().reshape(angles.shape[:-1] + (3, 3))


# ----------------------------------------------------------------------------- pinhole camera


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics in pixels of the frame as a person sees it (rotation applied).

    ``source`` says where the numbers came from: ``"dataset"``, ``"sidecar"``, ``"fov_prior"``,
    ``"calibration"``, ``"default"``, ``"self_calibrated"`` (focal estimated from the video).
    ``distortion``: the lens's radial-tangential distortion (:mod:`.distortion`), None for a pinhole
    camera (or distortion not modelled). Pixels the frame shows are *image* pixels; geometry runs on
    *ideal* pixels (:meth:`ideal_pixels`), what a pinhole camera with the same K would see.
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    source: str = "dataset"
    distortion: Distortion | None = None

    @property
    def K(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @classmethod
    def from_fov(cls, width: int, height: int, horizontal_fov_deg: float) -> "Intrinsics":
        """Square pixels, principal point at the image centre ((W - 1) / 2, (H - 1) / 2 under the
        pixel-centre convention, pixel i covering [i - 0.5, i + 0.5]), fx = 0.5 W / tan(hfov / 2)."""
        if not 1.0 < horizontal_fov_deg < 179.0:
            raise ValueError(f"horizontal field of view must be in (1, 179) degrees, got {horizontal_fov_deg}")
        f = 0.5 * width / np.tan(np.deg2rad(horizontal_fov_deg) / 2.0)
        cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
        return cls(float(f), float(f), cx, cy, int(width), int(height), "fov_prior")

    @classmethod
    def from_K(cls, K: np.ndarray, width: int, height: int, source: str = "dataset",
               distortion: Distortion | None = None) -> "Intrinsics":
        """From a 3x3 K (skew ignored); with a ``distortion``, ValueError unless the lens model is
        one-to-one over the whole ``width`` x ``height`` frame."""
        K = np.asarray(K, dtype=np.float64)
        if K.shape != (3, 3) or not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0:
            raise ValueError(f"not a valid 3x3 intrinsic matrix: {K.tolist()}")
        intr = cls(float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]), int(width), int(height),
                   source, distortion)
        if distortion is not None:
            check_covers_frame(distortion, intr.K, intr.width, intr.height)
        return intr

    def scaled(self, width: int, height: int) -> "Intrinsics":
        """The same camera on a resized pixel grid (pixel-centre convention: u' = (u + 0.5) s - 0.5)."""
        sx, sy = width / self.width, height / self.height
        return Intrinsics(
            self.fx * sx, self.fy * sy, (self.cx + 0.5) * sx - 0.5, (self.cy + 0.5) * sy - 0.5,
            int(width), int(height), self.source, self.distortion,
        )

    def to_list(self) -> list[float]:
        return [self.fx, self.fy, self.cx, self.cy]

    @property
    def distorted(self) -> bool:
        """True when the lens model bends rays (a distortion with a non-zero coefficient)."""
        return self.distortion is not None and not self.distortion.is_zero

    def ideal_pixels(self, uv: np.ndarray) -> np.ndarray:
        """Ideal (pinhole, same K) pixels (..., 2) of image pixels (..., 2); a float64 copy without
        distortion; NaN stays NaN (and marks a pixel beyond the lens model's fold)."""
        return undistort_pixels(uv, self.K, self.distortion)

    def image_pixels(self, uv_ideal: np.ndarray) -> np.ndarray:
        """Image pixels (..., 2), as the frame shows them, of ideal pixels (..., 2)."""
        return distort_pixels(uv_ideal, self.K, self.distortion)

    def project(self, points_cam: np.ndarray) -> np.ndarray:
        """Image pixels (..., 2) of camera-frame points (..., 3), with the distortion; NaN for z <= 0."""
        return self.image_pixels(project(points_cam, self.K))


def project(points_cam: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Pixels (..., 2) of camera-frame points (..., 3). Points with z <= 0 give NaN."""
    p = np.asarray(points_cam, dtype=np.float64)
    K = np.asarray(K, dtype=np.float64)
    z = p[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = K[0, 0] * p[..., 0] / z + K[0, 1] * p[..., 1] / z + K[0, 2]
        v = K[1, 1] * p[..., 1] / z + K[1, 2]
    uv = np.stack([u, v], axis=-1)
    uv[z <= 0] = np.nan
    return uv


def unproject(pixels: np.ndarray, depth: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Camera-frame points (..., 3) of pixels (..., 2) at depths z (...)."""
    uv = np.asarray(pixels, dtype=np.float64)
    z = np.asarray(depth, dtype=np.float64)
    K = np.asarray(K, dtype=np.float64)
    y = (uv[..., 1] - K[1, 2]) / K[1, 1]
    x = (uv[..., 0] - K[0, 2] - K[0, 1] * y) / K[0, 0]
    return np.stack([x * z, y * z, z], axis=-1)


# ----------------------------------------------------------------------------- lifting


@dataclass(frozen=True)
class LiftResult:
    """Camera-frame keypoints from a metric hand-centred shape and its 2D detection.

    ``translation`` (m) places the hand-centred points into the camera frame;
    ``residual_px`` is the RMS reprojection error over the keypoints used, in pixels.
    """

    points_cam: np.ndarray  # (21, 3) float64, metres, OpenCV camera frame
    translation: np.ndarray  # (3,)
    residual_px: float
    per_point_error_px: np.ndarray  # (21,)


def _weighted_lstsq(A: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    """argmin_x sum w (A x - b)^2 for a tall (m, 3) A, by the 3x3 normal equations (10x faster than
    ``lstsq`` at this size; the systems here are well conditioned). Raises LinAlgError if singular."""
    Aw = A * w[:, None]
    return np.linalg.solve(Aw.T @ A, Aw.T @ b)


def lift_to_camera(
    points_local: np.ndarray,
    pixels: np.ndarray,
    K: np.ndarray,
    weights: np.ndarray | None = None,
    refine_iterations: int = 3,
) -> LiftResult:
    """Find t minimising the reprojection error of ``points_local + t`` against ``pixels``.

    ``points_local`` (N, 3) are metric points whose axes are taken as parallel to the camera's
    (MediaPipe's world landmarks are only roughly so, 12-31 deg off on real ground truth: the hand
    lift turns and refines them first, ``hands/track_lift.py``). The projection
    u = fx (X + tx) / (Z + tz) + cx is linear in t once multiplied out, which gives a closed-form
    linear least-squares estimate; a few Gauss-Newton steps then minimise the true pixel error.
    """
    X = np.asarray(points_local, dtype=np.float64)
    uv = np.asarray(pixels, dtype=np.float64)
    K = np.asarray(K, dtype=np.float64)
    n = X.shape[0]
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    du, dv = uv[:, 0] - cx, uv[:, 1] - cy
    # fx tx - du tz = du Z - fx X ;  fy ty - dv tz = dv Z - fy Y
    A = np.zeros((2 * n, 3))
    b = np.zeros(2 * n)
    A[0::2, 0] = fx
    A[0::2, 2] = -du
    b[0::2] = du * X[:, 2] - fx * X[:, 0]
    A[1::2, 1] = fy
    A[1::2, 2] = -dv
    b[1::2] = dv * X[:, 2] - fy * X[:, 1]
    ww = np.repeat(w, 2)
    t = _weighted_lstsq(A, b, ww)
    for _ in range(refine_iterations):
        P = X + t
        if np.any(P[:, 2] <= 1e-6):
            break
        z = P[:, 2]
        r = np.concatenate([fx * P[:, 0] / z + cx - uv[:, 0], fy * P[:, 1] / z + cy - uv[:, 1]])
        J = np.zeros((2 * n, 3))
        J[:n, 0] = fx / z
        J[:n, 2] = -fx * P[:, 0] / z**2
        J[n:, 1] = fy / z
        J[n:, 2] = -fy * P[:, 1] / z**2
        step = _weighted_lstsq(J, -r, np.concatenate([w, w]))
        t = t + step
        if np.linalg.norm(step) < 1e-10:
            break
    P = X + t
    err = np.linalg.norm(project(P, K) - uv, axis=-1)
    used = w > 0
    residual = float(np.sqrt(np.mean(err[used] ** 2))) if np.any(used) else float("nan")
    return LiftResult(P, t, residual, err)
