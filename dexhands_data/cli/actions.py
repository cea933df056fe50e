"""``dexdata actions DATASET --episode ID --frames i,j,k --convention NAME [--json]``: the absolute
44x3 poses of those frames and the actions between consecutive ones, computed from stored state by
the same functions as the loader and ``meta/stats.json``, with the action mask (which dimensions are
data; non-metric translation follows the episode's ``translation_metric``)."""

from __future__ import annotations

import json
import sys

import numpy as np


def add_parser(sub) -> None:
    from ..actions import CONVENTIONS, WRAP_MODES

    p = sub.add_parser("actions", help="print the 44x3 poses and the actions of frames of one episode")
    p.add_argument("dataset", help="dataset folder (e.g. ./dexwm-actions) or Hub id org/name")
    p.add_argument("--episode", required=True, help="episode_id")
    p.add_argument("--frames", default=None, help="comma-separated stored frame indices (default: all)")
    p.add_argument("--convention", default="relative", choices=CONVENTIONS)
    p.add_argument("--wrap", default=None, choices=WRAP_MODES,
                   help="dexwm-official angle row (default mod2pi)")
    p.add_argument("--json", action="store_true", help="machine-readable output (NaN as null)")
    p.set_defaults(func=run)


def _parse_frames(text: str | None, n: int) -> np.ndarray:
    if text is None:
        return np.arange(n)
    try:
        idx = np.array([int(x) for x in text.split(",") if x.strip()], dtype=np.int64)
    except ValueError as exc:
        raise ValueError(f"--frames must be comma-separated integers, got {text!r}") from exc
    if idx.size == 0 or idx.min() < 0 or idx.max() >= n:
        raise ValueError(f"--frames must lie in [0, {n - 1}], got {text!r}")
    return idx


def _nested(a: np.ndarray) -> list:
    return np.where(np.isfinite(a), a, None).tolist()


def episode_actions(dataset: str, episode: str, frames: str | None, convention: str,
                    wrap: str | None) -> dict:
    from ..actions import action_mask, compute_actions, window_poses
    from ..dataset.reader import read_episode

    ep = read_episode(dataset, episode)
    idx = _parse_frames(frames, len(ep))
    metric = bool(ep.meta.translation_metric)
    args = (ep.keypoints_cam, ep.hand_valid, ep.T_world_cam, ep.camera_valid, idx)
    S = ep.meta.T_opencv_source
    poses = window_poses(convention, *args, T_opencv_source=S, translation_metric=metric)
    if len(idx) > 1:
        actions = compute_actions(convention, *args, T_opencv_source=S, wrap=wrap, translation_metric=metric)
        mask = action_mask(ep.hand_valid, ep.camera_valid, idx, metric)
    else:
        actions, mask = np.zeros((0, 44, 3), np.float32), np.zeros((0, 44, 3), bool)
    return {
        "episode_id": episode, "convention": convention,
        "wrap": (wrap or "mod2pi") if convention == "dexwm-official" else None,
        "translation_metric": metric,
        "frames": idx.tolist(), "timestamps": ep.timestamp[idx].tolist(),
        "hand_valid": ep.hand_valid[idx].tolist(), "camera_valid": ep.camera_valid[idx].tolist(),
        "poses": _nested(poses.astype(np.float64)), "actions": _nested(actions.astype(np.float64)),
        "action_mask": mask.tolist(),
    }


def _print_text(out: dict) -> None:
    np.set_printoptions(precision=5, suppress=True, linewidth=110)
    print(f"episode {out['episode_id']}  convention {out['convention']}"
          + (f" (wrap {out['wrap']})" if out["wrap"] else "")
          + ("" if out["translation_metric"] else "  (translation not metric: camera-position rows masked)"))
    rows = {"left wrist": 0, "right wrist": 21, "camera position": 42, "camera rotation": 43}
    poses = np.array(out["poses"], dtype=float)
    for k, f in enumerate(out["frames"]):
        print(f"\nframe {f}  t={out['timestamps'][k]:.4f}s  hands {out['hand_valid'][k]}  "
              f"camera {'known' if out['camera_valid'][k] else 'unknown'}")
        print("  pose (44x3):\n" + "\n".join("    " + line for line in str(poses[k]).splitlines()))
        if k + 1 < len(out["frames"]):
            a = np.array(out["actions"][k], dtype=float)
            m = np.array(out["action_mask"][k], dtype=bool)
            parts = ", ".join(f"{name} {a[r] if m[r].all() else 'masked'}" for name, r in rows.items())
            print(f"  action {f} -> {out['frames'][k + 1]}: {parts}")
    print("\n(full actions: --json)")


def run(args) -> int:
    from ..records import EpisodeError

    try:
        out = episode_actions(args.dataset, args.episode, args.frames, args.convention, args.wrap)
    except (EpisodeError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(out))
    else:
        _print_text(out)
    return 0
