"""The reported numbers of a score (JSON-ready dicts; None where undefined), from the raw samples of
:class:`~.score.EpisodeScore` / :class:`~.score.HandSamples`. Definitions in docs/fidelity.md."""

from __future__ import annotations

import math

import numpy as np

from . import camera_metrics as cm
from .motion_metrics import MotionResult
from .score import EpisodeScore, HandSamples


def _num(x) -> float | None:
    x = float(x)
    return None if math.isnan(x) or math.isinf(x) else x


def _median(a: np.ndarray, scale: float = 1.0) -> float | None:
    a = np.asarray(a, np.float64)
    a = a[np.isfinite(a)]
    return _num(np.median(a) * scale) if a.size else None


def _mean(a: np.ndarray, scale: float = 1.0) -> float | None:
    a = np.asarray(a, np.float64)
    a = a[np.isfinite(a)]
    return _num(np.mean(a) * scale) if a.size else None


def _share(num: int, den: int) -> float | None:
    return num / den if den else None


def hand_figures(h: HandSamples) -> dict:
    """Reported hand figures (None where undefined). Distances are medians over matched hands
    (2D: over keypoints of matched hands) unless named ``_mean``."""
    e = h.errors
    return {
        "gt_hands_in_view": h.gt_in_view,
        "matched": h.matched,
        "detection": _share(h.matched, h.gt_in_view),
        "side_correct": _share(int(e.same_side.sum()), len(e.same_side)),
        "est_hands": h.est_hands,
        "est_unmatched": h.est_unmatched,
        "kp2d_px": _median(e.kp2d_px),
        "kp2d_px_mean": _mean(e.kp2d_px),
        "mpjpe_cam_mm": _median(e.mpjpe_cam_m, 1000.0),
        "mpjpe_cam_mm_mean": _mean(e.mpjpe_cam_m, 1000.0),
        "mpjpe_root_mm": _median(e.mpjpe_root_m, 1000.0),
        "pa_mpjpe_mm": _median(e.pa_mpjpe_m, 1000.0),
        "wrist_depth_error_pct": _median(np.abs(e.wrist_depth_ratio - 1.0), 100.0),
        "wrist_depth_bias_pct": _median(e.wrist_depth_ratio - 1.0, 100.0),
        "est_reprojection_px": _median(h.consistency_px),
    }


def motion_figures(r: MotionResult) -> dict:
    return {
        "samples": len(r.error_m),
        "error_mm": _median(r.error_m, 1000.0),
        "error_mm_mean": _mean(r.error_m, 1000.0),
        "true_mm": _median(r.true_m, 1000.0),
        "scale": _median(np.asarray(r.scales)),
        "scale_aligned_error_mm": _median(r.aligned_error_m, 1000.0),
    }


def camera_figures(c: cm.CameraSamples, metric: bool) -> dict:
    return {
        "pairs": len(c.rotation_deg),
        "rotation_error_deg": _median(c.rotation_deg),
        "rotation_error_deg_mean": _mean(c.rotation_deg),
        "true_rotation_deg": _median(c.true_rotation_deg),
        "translated_pairs": len(c.direction_deg),
        "direction_error_deg": _median(c.direction_deg),
        "true_translation_mm": _median(c.true_translation_m, 1000.0),
        "scale_error_pct": _median(np.abs(c.scale_ratio - 1.0), 100.0) if metric else None,
    }


def figures(score: EpisodeScore, metric_translation: bool = False) -> dict:
    """The reported numbers of a score, JSON-ready (None where undefined)."""
    out: dict = {"name": score.name, "est_episode": score.est_episode, "gt_episode": score.gt_episode,
                 "frames": score.frames, "hands": hand_figures(score.hands),
                 "motion": {str(s): {v: motion_figures(r) for v, r in vs.items()}
                            for s, vs in score.motion.items()},
                 "camera": None, "notes": score.notes}
    if score.camera is not None:
        ends = np.array([e for e, _ in score.camera_end], np.float64)
        trues = np.array([t for _, t in score.camera_end], np.float64)
        out["camera"] = {
            "strides": {str(s): camera_figures(c, metric_translation) for s, c in score.camera.items()},
            "end_rotation_error_deg": _median(ends),
            "end_true_rotation_deg": _median(trues),
        }
    return out
