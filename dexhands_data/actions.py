"""DexWM actions computed from stored absolute state: one implementation per convention.

Conventions (see ``docs/actions.md``). Every function takes the stored per-frame columns of ONE
episode (keypoints_cam (N, 2, 21, 3) m in each frame's OpenCV camera, hand_valid (N, 2),
T_world_cam (N, 4, 4), camera_valid (N,)) plus the window's frame indices: ``indices`` (T,) is one
window, (W, T) are W windows at once (a (P, 2) array of index pairs is P two-frame windows), None is
the whole episode as one window. Outputs carry the same leading axes: poses (..., T, 44, 3),
actions (..., T-1, 44, 3).

* ``relative`` (default; also the stored ``action`` column): the action of step (a, b) is, in
  camera a, ``T_a_b @ kp_b - kp_a`` (rows 0-41, m) with ``T_a_b = inv(T_world_cam[a]) @
  T_world_cam[b]``, the translation of ``T_a_b`` (row 42) and its rotation vector (row 43, rad).
* ``dexwm-official``: the released DexWM formula: per window, keypoints in the window's first
  camera (in the source's own camera axes), camera rows as world-frame differences of position and
  Euler 'xyz' angles, the angle row taken mod 2*pi (float32, as torch does); missing hands are zeros.

Units stay honest: with ``translation_metric=False`` (monocular VO: translation up to an unknown
scale) no translation enters a metric row. The keypoint rows then compensate the camera's rotation
only (``R_a_b @ kp_b - kp_a``; dexwm-official builds its world from rotation only, the
estimated-data variant) and the camera-position rows are NaN. :func:`action_mask` says which
dimensions of an action are data: the same for both conventions.
"""

from __future__ import annotations

import numpy as np

from .geometry import euler_xyz_from_matrix, rotvec_from_matrix, se3_inverse, transform_points
from .keypoints import CAMERA_POSITION_ROW, CAMERA_ROTATION_ROW, NUM_HANDS, NUM_KEYPOINTS, POSE_ROWS

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


def window_indices_of(num_frames: int, indices) -> np.ndarray:
    """``indices`` as an int64 array (..., T) with T >= 1 (None: every frame, one window)."""
    idx = np.arange(num_frames) if indices is None else np.asarray(indices, dtype=np.int64)
    if idx.ndim == 0 or idx.shape[-1] == 0:
        raise ValueError(f"indices must be (T,) or (W, T) frame indices with T >= 1, got shape {idx.shape}")
    return idx


def _window_inputs(keypoints_cam, hand_valid, T_world_cam, camera_valid, indices):
    idx = window_indices_of(np.shape(keypoints_cam)[0], indices)
    kp = np.asarray(keypoints_cam, dtype=np.float64)[idx].reshape(idx.shape + (_NUM_KP_ROWS, 3))
    hv = np.asarray(hand_valid, bool)[idx]
    T = np.asarray(T_world_cam, dtype=np.float64)[idx]
    cv = np.asarray(camera_valid, bool)[idx]
    return kp, hv, T, cv


def _hand_rows(h: int) -> slice:
    return slice(h * NUM_KEYPOINTS, (h + 1) * NUM_KEYPOINTS)


def _first_camera_poses(T: np.ndarray) -> np.ndarray:
    """``T_k0_k`` (..., T, 4, 4) of window poses ``T`` (..., T, 4, 4); exactly identity for k0 itself."""
    T_0k = se3_inverse(T[..., :1, :, :]) @ T
    T_0k[..., 0, :, :] = np.eye(4)
    return T_0k


def _keypoint_motion(T_0k: np.ndarray, known: np.ndarray, translation_metric: bool) -> np.ndarray:
    """The transforms that carry keypoints into the reference camera: ``T_0k`` itself, identity where
    a camera is unknown (``known`` False), its rotation only where translation is not metric."""
    M = T_0k.copy()
    M[~known] = np.eye(4)
    if not translation_metric:
        M[..., :3, 3] = 0.0
    return M


def _in_first_camera(kp: np.ndarray, T: np.ndarray, cv: np.ndarray, translation_metric: bool) -> np.ndarray:
    """Keypoints (..., T, 42, 3) of every window frame in the window's first camera (see
    :func:`_keypoint_motion` for unknown cameras and non-metric translation)."""
    known = cv & cv[..., :1]
    return transform_points(_keypoint_motion(_first_camera_poses(T), known, translation_metric), kp)


# ----------------------------------------------------------------------------- validity


def action_mask(hand_valid: np.ndarray, camera_valid: np.ndarray, indices=None,
                translation_metric: bool = True) -> np.ndarray:
    """Which dimensions of the actions (..., T-1, 44, 3) of window(s) ``indices`` are data (bool).

    The same for both conventions: the rows of hand h where that hand is valid at both ends of the
    step; the camera-rotation row where both cameras are known; the camera-position row where both
    are known and the translation is metric. Masked dimensions are NaN (``relative``), or the
    released code's zero-filled values (``dexwm-official`` missing hands); either way not data.
    """
    idx = window_indices_of(np.shape(hand_valid)[0], indices)
    hv = np.asarray(hand_valid, bool)[idx]
    cv = np.asarray(camera_valid, bool)[idx]
    steps = idx.shape[:-1] + (idx.shape[-1] - 1,)
    both_hands = hv[..., :-1, :] & hv[..., 1:, :]
    both_cams = cv[..., :-1] & cv[..., 1:]
    mask = np.zeros(steps + (POSE_ROWS, 3), bool)
    for h in range(NUM_HANDS):
        mask[..., _hand_rows(h), :] = both_hands[..., h, None, None]
    mask[..., CAMERA_ROTATION_ROW, :] = both_cams[..., None]
    mask[..., CAMERA_POSITION_ROW, :] = (both_cams & bool(translation_metric))[..., None]
    return mask


# ----------------------------------------------------------------------------- relative


def relative_actions(
    keypoints_cam: np.ndarray,
    hand_valid: np.ndarray,
    T_world_cam: np.ndarray,
    camera_valid: np.ndarray,
    indices=None,
    translation_metric: bool = True,
) -> np.ndarray:
    """``relative`` actions (..., T-1, 44, 3) float32 between consecutive frames of window(s) ``indices``.

    Step (a, b), in camera a: rows 0-41 ``T_a_b @ kp_b - kp_a`` (m; NaN for a hand missing at either
    end), row 42 the translation of ``T_a_b`` (m), row 43 its rotation vector (rad). Where a camera
    is unknown ``T_a_b`` is taken as identity for the keypoint rows and the camera rows are NaN;
    where the translation is not metric the keypoint rows use ``R_a_b`` only and row 42 is NaN.
    """
    kp, hv, T, cv = _window_inputs(keypoints_cam, hand_valid, T_world_cam, camera_valid, indices)
    Ta, Tb = T[..., :-1, :, :], T[..., 1:, :, :]
    known = cv[..., :-1] & cv[..., 1:]
    T_ab = se3_inverse(Ta) @ Tb
    # an unchanged pose (static camera) is exactly zero motion, not the ~1e-17 rounding of inv(T) @ T
    T_ab[np.all(Ta == Tb, axis=(-2, -1))] = np.eye(4)
    M = _keypoint_motion(T_ab, known, translation_metric)
    out = np.full(T_ab.shape[:-2] + (POSE_ROWS, 3), np.nan)
    out[..., :_NUM_KP_ROWS, :] = transform_points(M, kp[..., 1:, :, :]) - kp[..., :-1, :, :]
    both = hv[..., :-1, :] & hv[..., 1:, :]
    for h in range(NUM_HANDS):
        out[~both[..., h], _hand_rows(h)] = np.nan
    out[..., CAMERA_POSITION_ROW, :] = T_ab[..., :3, 3]
    out[..., CAMERA_ROTATION_ROW, :] = rotvec_from_matrix(T_ab[..., :3, :3])
    out[~known, CAMERA_POSITION_ROW:] = np.nan
    if not translation_metric:
        out[..., CAMERA_POSITION_ROW, :] = np.nan
    return out.astype(np.float32)


def relative_window_poses(
    keypoints_cam: np.ndarray,
    hand_valid: np.ndarray,
    T_world_cam: np.ndarray,
    camera_valid: np.ndarray,
    indices=None,
    translation_metric: bool = True,
) -> np.ndarray:
    """Absolute 44x3 poses (..., T, 44, 3) float64 of window frames in the ``relative`` convention.

    Everything is in the camera of the window's first frame k0: rows 0-41 ``T_k0_k @ kp_k`` (m; NaN
    for a missing hand), row 42 the translation of ``T_k0_k`` (m), row 43 its rotation vector (rad);
    so the first frame's camera rows are zero. Camera rows are NaN where camera k or k0 is unknown
    (the keypoint rows then assume an identity ``T_k0_k``); with non-metric translation the keypoint
    rows use the rotation only and row 42 is NaN.
    """
    kp, hv, T, cv = _window_inputs(keypoints_cam, hand_valid, T_world_cam, camera_valid, indices)
    out = np.full(kp.shape[:-2] + (POSE_ROWS, 3), np.nan)
    out[..., :_NUM_KP_ROWS, :] = _in_first_camera(kp, T, cv, translation_metric)
    for h in range(NUM_HANDS):
        out[~hv[..., h], _hand_rows(h)] = np.nan
    T_0k = _first_camera_poses(T)
    out[..., CAMERA_POSITION_ROW, :] = T_0k[..., :3, 3]
    out[..., CAMERA_ROTATION_ROW, :] = rotvec_from_matrix(T_0k[..., :3, :3])
    out[~(cv & cv[..., :1]), CAMERA_POSITION_ROW:] = np.nan
    if not translation_metric:
        out[..., CAMERA_POSITION_ROW, :] = np.nan
    return out


# ----------------------------------------------------------------------------- dexwm-official


def dexwm_official_poses(
    keypoints_cam: np.ndarray,
    hand_valid: np.ndarray,
    T_world_cam: np.ndarray,
    camera_valid: np.ndarray,
    indices=None,
    T_opencv_source: np.ndarray | None = None,
    translation_metric: bool = True,
) -> np.ndarray:
    """The released DexWM code's 44x3 poses (..., T, 44, 3) float64 of window frames ``indices``.

    With ``S = T_opencv_source`` (source camera axes -> OpenCV axes, identity by default) the source's
    own camera pose is ``T_world_src[k] = T_world_cam[k] @ S``, and for window frame k (k0 = first):

    * rows 0-41: ``inv(T_world_src[k0]) @ T_world_cam[k] @ kp_cam[k]`` = ``inv(S) @ T_k0_k @ kp_cam[k]``:
      the keypoints in the first frame's *source* camera (m); zeros for a missing hand (the released
      code has no missing-hand handling; DROID's left hand is zeros);
    * row 42: translation of ``T_world_src[k]`` (world, m);
    * row 43: ``Rotation.from_matrix(R_world_src[k]).as_euler('xyz')`` (extrinsic X-Y-Z, rad).

    Where a camera is unknown the camera rows are NaN and ``T_k0_k`` is taken as identity. Where the
    translation is not metric (the estimated-data variant) the world is built from rotation only:
    ``T_k0_k`` keeps its rotation, and row 42 is NaN.
    """
    kp, hv, T, cv = _window_inputs(keypoints_cam, hand_valid, T_world_cam, camera_valid, indices)
    S = np.eye(4) if T_opencv_source is None else np.asarray(T_opencv_source, dtype=np.float64)
    if S.shape != (4, 4) or not np.all(np.isfinite(S)):
        raise ValueError(f"T_opencv_source must be a finite 4x4 transform, got {S.shape}")
    out = np.zeros(kp.shape[:-2] + (POSE_ROWS, 3))
    kp0 = _in_first_camera(kp, T, cv, translation_metric)
    out[..., :_NUM_KP_ROWS, :] = transform_points(se3_inverse(S), kp0)
    for h in range(NUM_HANDS):
        out[~hv[..., h], _hand_rows(h)] = 0.0
    T_src = T @ S
    out[..., CAMERA_POSITION_ROW, :] = T_src[..., :3, 3]
    out[..., CAMERA_ROTATION_ROW, :] = euler_xyz_from_matrix(T_src[..., :3, :3])
    out[~cv, CAMERA_POSITION_ROW:] = np.nan
    if not translation_metric:
        out[..., CAMERA_POSITION_ROW, :] = np.nan
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
    """Actions (..., T-1, 44, 3) float32 from official poses (..., T, 44, 3), as the released code forms
    them: poses cast to float32, ``pose[i+1] - pose[i]`` in float32, then row 43 through
    :func:`wrap_angles`."""
    p = np.asarray(poses).astype(np.float32)
    out = p[..., 1:, :, :] - p[..., :-1, :, :]
    out[..., CAMERA_ROTATION_ROW, :] = wrap_angles(out[..., CAMERA_ROTATION_ROW, :], wrap)
    return out


def dexwm_official_actions(
    keypoints_cam: np.ndarray,
    hand_valid: np.ndarray,
    T_world_cam: np.ndarray,
    camera_valid: np.ndarray,
    indices=None,
    T_opencv_source: np.ndarray | None = None,
    wrap: str = "mod2pi",
    translation_metric: bool = True,
) -> np.ndarray:
    """``dexwm-official`` actions (..., T-1, 44, 3) float32 between consecutive window frames.

    Rows 0-41 are differences of keypoints all expressed in the window's first (source) camera,
    rows 42-43 world-frame differences of camera position and Euler 'xyz' angles, the angle row
    taken mod 2*pi by default (see :func:`dexwm_official_poses`)."""
    poses = dexwm_official_poses(keypoints_cam, hand_valid, T_world_cam, camera_valid, indices,
                                 T_opencv_source, translation_metric)
    return dexwm_official_actions_from_poses(poses, wrap)


# ----------------------------------------------------------------------------- conventions by name


def _check_wrap(convention: str, wrap: str | None) -> None:
    if convention == "relative" and wrap not in (None, "none"):
        raise ValueError(f"wrap={wrap!r} does not apply to the 'relative' convention (rotation vectors)")


def window_poses(
    convention: str,
    keypoints_cam: np.ndarray,
    hand_valid: np.ndarray,
    T_world_cam: np.ndarray,
    camera_valid: np.ndarray,
    indices=None,
    T_opencv_source: np.ndarray | None = None,
    translation_metric: bool = True,
) -> np.ndarray:
    """Absolute 44x3 poses (..., T, 44, 3) float64 of window frames ``indices`` in ``convention``."""
    _check_convention(convention)
    if convention == "relative":
        return relative_window_poses(keypoints_cam, hand_valid, T_world_cam, camera_valid, indices,
                                     translation_metric)
    return dexwm_official_poses(keypoints_cam, hand_valid, T_world_cam, camera_valid, indices,
                                T_opencv_source, translation_metric)


def actions_from_poses(convention: str, poses: np.ndarray, keypoints_cam, hand_valid, T_world_cam,
                       camera_valid, indices=None, wrap: str | None = None,
                       translation_metric: bool = True) -> np.ndarray:
    """The actions of a window whose ``window_poses`` are already computed (the loader needs both):
    ``dexwm-official`` actions are float32 differences of these very poses; ``relative`` ones are
    per-step motions, computed by :func:`relative_actions`."""
    _check_convention(convention)
    _check_wrap(convention, wrap)
    if convention == "dexwm-official":
        return dexwm_official_actions_from_poses(poses, wrap or "mod2pi")
    return relative_actions(keypoints_cam, hand_valid, T_world_cam, camera_valid, indices, translation_metric)


def compute_actions(
    convention: str,
    keypoints_cam: np.ndarray,
    hand_valid: np.ndarray,
    T_world_cam: np.ndarray,
    camera_valid: np.ndarray,
    indices=None,
    T_opencv_source: np.ndarray | None = None,
    wrap: str | None = None,
    translation_metric: bool = True,
) -> np.ndarray:
    """Actions (..., T-1, 44, 3) float32 between consecutive frames of window(s) ``indices``.

    ``convention`` is ``relative`` (per-step deltas in the step's earlier camera, NaN rows where a
    hand or camera is missing) or ``dexwm-official`` (the released code; ``wrap`` defaults to
    ``mod2pi``). ``wrap`` only applies to ``dexwm-official``: ``relative`` has no angle
    discontinuity to wrap. ``translation_metric=False`` keeps non-metric translation out (module doc).
    """
    _check_convention(convention)
    _check_wrap(convention, wrap)
    if convention == "relative":
        return relative_actions(keypoints_cam, hand_valid, T_world_cam, camera_valid, indices,
                                translation_metric)
    return dexwm_official_actions(keypoints_cam, hand_valid, T_world_cam, camera_valid, indices,
                                  T_opencv_source, wrap or "mod2pi", translation_metric)


def consecutive_pairs(num_frames: int) -> np.ndarray:
    """(N-1, 2) index pairs ``(i, i + 1)``: every stored step as its own two-frame window."""
    return np.stack([np.arange(num_frames - 1), np.arange(1, num_frames)], axis=1)
