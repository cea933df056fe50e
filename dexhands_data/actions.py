"""DexWM actions computed from stored absolute state.

Conventions (see ``docs/actions.md``):

* ``relative`` (default, stored in the ``action`` column): for a pair of frames (a, b), rows 0-41
  are keypoint deltas expressed in camera a: ``T_a_b @ kp_b - kp_a`` with ``T_a_b =
  inv(T_world_cam[a]) @ T_world_cam[b]``; row 42 is the translation of ``T_a_b`` (camera b's
  position in camera a) and row 43 its rotation vector (rad). No angle wrapping anywhere.
  Where the camera is unknown in either frame, ``T_a_b`` is taken as identity for the keypoint
  rows and the camera rows are NaN. Rows of a hand missing in either frame are NaN.
* ``dexwm-official``: the formula of the released DexWM code: per window, keypoints in the window's
  first camera (in the source's own camera axes), camera rows as world-frame differences of
  position and Euler 'xyz' angles, the angle row taken mod 2*pi (float32, as torch does); missing
  hands are zeros.

Every function takes the stored per-frame columns of ONE episode plus the window's frame indices.
"""

from __future__ import annotations

import numpy as np

from .geometry import euler_xyz_from_matrix, rotvec_from_matrix, se3_inverse
from .keypoints import CAMERA_POSITION_ROW, CAMERA_ROTATION_ROW, NUM_HANDS, NUM_KEYPOINTS, POSE_ROWS


def relative_actions(
    keypoints_cam: np.ndarray,
    hand_valid: np.ndarray,
    T_world_cam: np.ndarray,
    camera_valid: np.ndarray,
    pairs: np.ndarray | None = None,
) -> np.ndarray:
    """``relative`` actions (P, 44, 3) float32 for index pairs (P, 2), default consecutive frames.

    keypoints_cam (N, 2, 21, 3) m in each frame's camera; hand_valid (N, 2); T_world_cam (N, 4, 4);
    camera_valid (N,).
    """
    n = keypoints_cam.shape[0]
    if pairs is None:
        pairs = np.stack([np.arange(n - 1), np.arange(1, n)], axis=1)
    a, b = pairs[:, 0], pairs[:, 1]
    cam_ok = np.asarray(camera_valid, bool)[a] & np.asarray(camera_valid, bool)[b]
    T_ab = se3_inverse(T_world_cam[a]) @ np.asarray(T_world_cam[b], dtype=np.float64)
    # unknown motion -> identity for the keypoint rows; an unchanged pose (static camera) -> exactly zero
    # motion rather than the ~1e-17 rounding of inv(T) @ T
    same = np.all(np.asarray(T_world_cam)[a] == np.asarray(T_world_cam)[b], axis=(1, 2))
    T_ab[~cam_ok | same] = np.eye(4)
    kp_a = keypoints_cam[a].reshape(len(a), -1, 3).astype(np.float64)
    kp_b = keypoints_cam[b].reshape(len(b), -1, 3).astype(np.float64)
    kp_b_in_a = np.einsum("pij,pkj->pki", T_ab[:, :3, :3], kp_b) + T_ab[:, None, :3, 3]
    out = np.full((len(a), POSE_ROWS, 3), np.nan)
    out[:, : NUM_HANDS * NUM_KEYPOINTS] = kp_b_in_a - kp_a
    both = np.asarray(hand_valid, bool)[a] & np.asarray(hand_valid, bool)[b]
    for h in range(NUM_HANDS):
        out[~both[:, h], h * NUM_KEYPOINTS : (h + 1) * NUM_KEYPOINTS] = np.nan
    out[:, CAMERA_POSITION_ROW] = T_ab[:, :3, 3]
    out[:, CAMERA_ROTATION_ROW] = rotvec_from_matrix(T_ab[:, :3, :3])
    out[~cam_ok, CAMERA_POSITION_ROW:] = np.nan
    return out.astype(np.float32)


# ----------------------------------------------------------------------------- conventions by name

#: Action conventions the loader computes from the stored absolute state.
CONVENTIONS: tuple[str, ...] = ("relative", "dexwm-official")
DEFAULT_CONVENTION = "relative"
#: Treatments of the Euler-angle row of ``dexwm-official`` actions: the released code's ``mod2pi``
#: (deltas in [0, 2*pi)), ``pi`` (wrapped to (-pi, pi], for training from scratch) or ``none``.
WRAP_MODES: tuple[str, ...] = ("mod2pi", "pi", "none")

_NUM_KP_ROWS = NUM_HANDS * NUM_KEYPOINTS


def _check_convention(convention: str) -> None:
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown action convention {convention!r}; choose one of {', '.join(CONVENTIONS)}")


def _window_inputs(keypoints_cam, hand_valid, T_world_cam, camera_valid, indices):
    idx = np.arange(keypoints_cam.shape[0]) if indices is None else np.asarray(indices, dtype=np.int64)
    if idx.ndim != 1 or idx.size == 0:
        raise ValueError(f"indices must be a non-empty 1-D array of frame indices, got shape {idx.shape}")
    kp = np.asarray(keypoints_cam, dtype=np.float64)[idx].reshape(len(idx), _NUM_KP_ROWS, 3)
    hv = np.asarray(hand_valid, bool)[idx]
    T = np.asarray(T_world_cam, dtype=np.float64)[idx]
    cv = np.asarray(camera_valid, bool)[idx]
    return kp, hv, T, cv


def _first_camera_poses(T: np.ndarray) -> np.ndarray:
    """``T_k0_k`` (T, 4, 4) of window poses ``T`` (T, 4, 4); exactly identity for k0 itself."""
    T_0k = se3_inverse(T[0]) @ T
    T_0k[0] = np.eye(4)
    return T_0k


def _in_first_camera(kp: np.ndarray, T: np.ndarray, cv: np.ndarray) -> np.ndarray:
    """Keypoints (T, 42, 3) of every window frame expressed in the window's first camera.

    ``T_k0_k = inv(T_world_cam[k0]) @ T_world_cam[k]``, identity where either camera is unknown.
    """
    T_0k = _first_camera_poses(T)
    T_0k[~(cv & cv[0])] = np.eye(4)
    return np.einsum("tij,tkj->tki", T_0k[:, :3, :3], kp) + T_0k[:, None, :3, 3]


def relative_window_poses(
    keypoints_cam: np.ndarray,
    hand_valid: np.ndarray,
    T_world_cam: np.ndarray,
    camera_valid: np.ndarray,
    indices: np.ndarray | None = None,
) -> np.ndarray:
    """Absolute 44x3 poses (T, 44, 3) float64 of window frames ``indices`` in the ``relative`` convention.

    Everything is in the camera of the window's first frame k0: rows 0-41 ``T_k0_k @ kp_k`` (m; NaN
    for a missing hand), row 42 the translation of ``T_k0_k`` (m), row 43 its rotation vector (rad);
    so the first frame's camera rows are zero. Camera rows are NaN where camera k or k0 is unknown
    (the keypoint rows then assume an identity ``T_k0_k``).
    """
    kp, hv, T, cv = _window_inputs(keypoints_cam, hand_valid, T_world_cam, camera_valid, indices)
    out = np.full((len(kp), POSE_ROWS, 3), np.nan)
    out[:, :_NUM_KP_ROWS] = _in_first_camera(kp, T, cv)
    for h in range(NUM_HANDS):
        out[~hv[:, h], h * NUM_KEYPOINTS : (h + 1) * NUM_KEYPOINTS] = np.nan
    T_0k = _first_camera_poses(T)
    out[:, CAMERA_POSITION_ROW] = T_0k[:, :3, 3]
    out[:, CAMERA_ROTATION_ROW] = rotvec_from_matrix(T_0k[:, :3, :3])
    out[~(cv & cv[0]), CAMERA_POSITION_ROW:] = np.nan
    return out


def dexwm_official_poses(
    keypoints_cam: np.ndarray,
    hand_valid: np.ndarray,
    T_world_cam: np.ndarray,
    camera_valid: np.ndarray,
    indices: np.ndarray | None = None,
    T_opencv_source: np.ndarray | None = None,
) -> np.ndarray:
    """The released DexWM code's 44x3 poses (T, 44, 3) float64 of window frames ``indices``.

    With ``S = T_opencv_source`` (source camera axes -> OpenCV axes, identity by default) the source's
    own camera pose is ``T_world_src[k] = T_world_cam[k] @ S``, and for window frame k (k0 = first):

    * rows 0-41: ``inv(T_world_src[k0]) @ T_world_cam[k] @ kp_cam[k]`` = ``inv(S) @ T_k0_k @ kp_cam[k]``:
      the keypoints in the first frame's *source* camera (m); zeros for a missing hand (the released
      code has no missing-hand handling; DROID's left hand is zeros);
    * row 42: translation of ``T_world_src[k]`` (world, m);
    * row 43: ``Rotation.from_matrix(R_world_src[k]).as_euler('xyz')`` (extrinsic X-Y-Z, rad).

    Where a camera is unknown the camera rows are NaN and ``T_k0_k`` is taken as identity.
    """
    kp, hv, T, cv = _window_inputs(keypoints_cam, hand_valid, T_world_cam, camera_valid, indices)
    S = np.eye(4) if T_opencv_source is None else np.asarray(T_opencv_source, dtype=np.float64)
    if S.shape != (4, 4) or not np.all(np.isfinite(S)):
        raise ValueError(f"T_opencv_source must be a finite 4x4 transform, got {S.shape}")
    S_inv = se3_inverse(S)
    out = np.zeros((len(kp), POSE_ROWS, 3))
    kp0 = _in_first_camera(kp, T, cv)
    out[:, :_NUM_KP_ROWS] = kp0 @ S_inv[:3, :3].T + S_inv[:3, 3]
    for h in range(NUM_HANDS):
        out[~hv[:, h], h * NUM_KEYPOINTS : (h + 1) * NUM_KEYPOINTS] = 0.0
    T_src = T @ S
    out[:, CAMERA_POSITION_ROW] = T_src[:, :3, 3]
    out[:, CAMERA_ROTATION_ROW] = euler_xyz_from_matrix(T_src[:, :3, :3])
    out[~cv, CAMERA_POSITION_ROW:] = np.nan
    return out


def wrap_angles(delta: np.ndarray, wrap: str) -> np.ndarray:
    """Angle deltas (float32) treated as ``wrap`` says: ``mod2pi`` is exactly the released code's
    ``torch`` ``delta % (2*pi)`` in float32 (in [0, 2*pi)); ``pi`` maps into (-pi, pi]; ``none`` keeps
    them."""
    if wrap not in WRAP_MODES:
        raise ValueError(f"unknown wrap mode {wrap!r}; choose one of {', '.join(WRAP_MODES)}")
    delta = np.asarray(delta, dtype=np.float32)
    if wrap == "none":
        return delta.copy()
    if wrap == "pi":
        d = delta.astype(np.float64)
        w = np.pi - np.remainder(np.pi - d, 2 * np.pi)  # in (-pi, pi]
        return w.astype(np.float32)
    import torch

    return torch.remainder(torch.from_numpy(np.ascontiguousarray(delta)), 2 * np.pi).numpy()


def dexwm_official_actions_from_poses(poses: np.ndarray, wrap: str = "mod2pi") -> np.ndarray:
    """Actions (T-1, 44, 3) float32 from official poses (T, 44, 3), as the released code forms them:
    poses cast to float32, ``pose[i+1] - pose[i]`` in float32, then row 43 through :func:`wrap_angles`."""
    p = np.asarray(poses).astype(np.float32)
    out = p[1:] - p[:-1]
    out[:, CAMERA_ROTATION_ROW] = wrap_angles(out[:, CAMERA_ROTATION_ROW], wrap)
    return out


def dexwm_official_actions(
    keypoints_cam: np.ndarray,
    hand_valid: np.ndarray,
    T_world_cam: np.ndarray,
    camera_valid: np.ndarray,
    indices: np.ndarray | None = None,
    T_opencv_source: np.ndarray | None = None,
    wrap: str = "mod2pi",
) -> np.ndarray:
    """``dexwm-official`` actions (T-1, 44, 3) float32 between consecutive window frames ``indices``.

    Rows 0-41 are differences of keypoints all expressed in the window's first (source) camera,
    rows 42-43 world-frame differences of camera position and Euler 'xyz' angles, the angle row
    taken mod 2*pi by default (see :func:`dexwm_official_poses`)."""
    poses = dexwm_official_poses(keypoints_cam, hand_valid, T_world_cam, camera_valid, indices,
                                 T_opencv_source)
    return dexwm_official_actions_from_poses(poses, wrap)


def window_poses(
    convention: str,
    keypoints_cam: np.ndarray,
    hand_valid: np.ndarray,
    T_world_cam: np.ndarray,
    camera_valid: np.ndarray,
    indices: np.ndarray | None = None,
    T_opencv_source: np.ndarray | None = None,
) -> np.ndarray:
    """Absolute 44x3 poses (T, 44, 3) float64 of window frames ``indices`` in ``convention``."""
    _check_convention(convention)
    if convention == "relative":
        return relative_window_poses(keypoints_cam, hand_valid, T_world_cam, camera_valid, indices)
    return dexwm_official_poses(keypoints_cam, hand_valid, T_world_cam, camera_valid, indices,
                                T_opencv_source)


def compute_actions(
    convention: str,
    keypoints_cam: np.ndarray,
    hand_valid: np.ndarray,
    T_world_cam: np.ndarray,
    camera_valid: np.ndarray,
    indices: np.ndarray | None = None,
    T_opencv_source: np.ndarray | None = None,
    wrap: str | None = None,
) -> np.ndarray:
    """Actions (T-1, 44, 3) float32 between consecutive frames of ``indices`` (default: all frames).

    ``convention`` is ``relative`` (per-pair deltas in the pair's earlier camera, NaN rows where a hand
    or camera is missing) or ``dexwm-official`` (the released code; ``wrap`` defaults to ``mod2pi``).
    ``wrap`` only applies to ``dexwm-official``: ``relative`` has no angle discontinuity to wrap.
    Inputs are the stored per-frame columns of one episode: keypoints_cam (N, 2, 21, 3) m in each
    frame's camera, hand_valid (N, 2), T_world_cam (N, 4, 4), camera_valid (N,).
    """
    _check_convention(convention)
    if convention == "relative":
        if wrap not in (None, "none"):
            raise ValueError(f"wrap={wrap!r} does not apply to the 'relative' convention (rotation vectors)")
        idx = np.arange(keypoints_cam.shape[0]) if indices is None else np.asarray(indices, dtype=np.int64)
        pairs = np.stack([idx[:-1], idx[1:]], axis=1)
        return relative_actions(keypoints_cam, hand_valid, T_world_cam, camera_valid, pairs)
    return dexwm_official_actions(
        keypoints_cam, hand_valid, T_world_cam, camera_valid, indices, T_opencv_source, wrap or "mod2pi"
    )


def pairwise_actions(
    convention: str,
    keypoints_cam: np.ndarray,
    hand_valid: np.ndarray,
    T_world_cam: np.ndarray,
    camera_valid: np.ndarray,
    T_opencv_source: np.ndarray | None = None,
    wrap: str | None = None,
) -> np.ndarray:
    """Actions (N-1, 44, 3) float32 of every consecutive stored pair, each pair its own 2-frame window
    (vectorised; for per-shard action statistics under every convention).

    Row ``i`` equals ``compute_actions(convention, ..., indices=[i, i + 1])[0]``.
    """
    _check_convention(convention)
    if convention == "relative":
        return compute_actions("relative", keypoints_cam, hand_valid, T_world_cam, camera_valid, wrap=wrap)
    n = keypoints_cam.shape[0]
    a, b = np.arange(n - 1), np.arange(1, n)
    S = np.eye(4) if T_opencv_source is None else np.asarray(T_opencv_source, dtype=np.float64)
    S_inv = se3_inverse(S)
    T = np.asarray(T_world_cam, dtype=np.float64)
    cv = np.asarray(camera_valid, bool)
    hv = np.asarray(hand_valid, bool)
    T_ab = se3_inverse(T[a]) @ T[b]
    T_ab[~(cv[a] & cv[b])] = np.eye(4)
    kp = np.asarray(keypoints_cam, dtype=np.float64).reshape(n, _NUM_KP_ROWS, 3)
    kb = np.einsum("pij,pkj->pki", T_ab[:, :3, :3], kp[b]) + T_ab[:, None, :3, 3]
    pose_a = np.zeros((n - 1, POSE_ROWS, 3))
    pose_b = np.zeros((n - 1, POSE_ROWS, 3))
    pose_a[:, :_NUM_KP_ROWS] = kp[a] @ S_inv[:3, :3].T + S_inv[:3, 3]
    pose_b[:, :_NUM_KP_ROWS] = kb @ S_inv[:3, :3].T + S_inv[:3, 3]
    for h in range(NUM_HANDS):
        rows = slice(h * NUM_KEYPOINTS, (h + 1) * NUM_KEYPOINTS)
        pose_a[~hv[a, h], rows] = 0.0
        pose_b[~hv[b, h], rows] = 0.0
    T_src = T @ S
    cam = np.stack([T_src[:, :3, 3], euler_xyz_from_matrix(T_src[:, :3, :3])], axis=1)
    cam[~cv] = np.nan
    pose_a[:, CAMERA_POSITION_ROW:] = cam[a]
    pose_b[:, CAMERA_POSITION_ROW:] = cam[b]
    out = pose_b.astype(np.float32) - pose_a.astype(np.float32)
    out[:, CAMERA_ROTATION_ROW] = wrap_angles(out[:, CAMERA_ROTATION_ROW], wrap or "mod2pi")
    return out
