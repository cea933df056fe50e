"""Accuracy of a camera track against exact ground truth: rotation per pair and at the end, translation
direction, invented translation. Used by ``bench_vo.py``; poses are ``T_world_cam`` (N, 4, 4)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dexhands_data.geometry import relative_pose


def rotation_angle_deg(R: np.ndarray) -> np.ndarray:
    c = (np.trace(R, axis1=-2, axis2=-1) - 1) / 2
    return np.rad2deg(np.arccos(np.clip(c, -1, 1)))


@dataclass
class Accuracy:
    """pair_*: rotation error (deg) of the relative pose over ``step`` frames; end: of the last frame
    relative to the first; trans_dir_deg: median angle between estimated and true displacement
    from frame 0 (frames with a true displacement above 1/4 of the largest; None when the true
    camera does not translate); invented_translation: largest estimated |t| on a non-translating
    truth (in the estimate's unit, the median scene depth); valid: fraction of valid frames."""

    pair_median_deg: float
    pair_max_deg: float
    end_deg: float
    trans_dir_deg: float | None
    invented_translation: float | None
    valid: float


def accuracy(T_est: np.ndarray, T_true: np.ndarray, valid: np.ndarray, step: int = 1) -> Accuracy:
    n = len(T_true)
    pairs = [i for i in range(n - step) if valid[i] and valid[i + step]]
    errs = np.array([rotation_angle_deg(relative_pose(T_est[i], T_est[i + step])[:3, :3]
                                        @ relative_pose(T_true[i], T_true[i + step])[:3, :3].T)
                     for i in pairs]) if pairs else np.array([np.nan])
    end = float(rotation_angle_deg(relative_pose(T_est[0], T_est[-1])[:3, :3]
                                   @ relative_pose(T_true[0], T_true[-1])[:3, :3].T))
    p_true = np.array([relative_pose(T_true[0], T)[:3, 3] for T in T_true])
    p_est = np.array([relative_pose(T_est[0], T)[:3, 3] for T in T_est])
    moving = np.linalg.norm(p_true, axis=1)
    trans_dir = invented = None
    if moving.max() < 1e-9:
        invented = float(np.linalg.norm(p_est, axis=1).max())
    else:
        sel = (moving > 0.25 * moving.max()) & valid
        a, b = p_est[sel], p_true[sel]
        cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
        trans_dir = float(np.median(np.rad2deg(np.arccos(np.clip(cos, -1, 1))))) if sel.any() else None
    return Accuracy(float(np.nanmedian(errs)), float(np.nanmax(errs)), end, trans_dir, invented,
                    float(np.mean(valid)))
