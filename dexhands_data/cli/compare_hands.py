"""``dexdata compare-hands A B``: hand agreement on the episodes two datasets share (MediaPipe vs HaMeR)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("compare-hands", help="compare the hand keypoints of two datasets episode by episode")
    p.add_argument("a", help="reference dataset folder (e.g. extracted with --hands mediapipe)")
    p.add_argument("b", help="dataset folder to compare (e.g. extracted with --hands hamer)")
    p.add_argument("--ids", default=None, help="file with one episode id per line (default: all shared)")
    p.add_argument("--match-fraction", type=float, default=0.5,
                   help="pair hands whose mean 2D distance is below this fraction of the hand's 2D size")
    p.add_argument("--json", default=None, help="also write the full comparison (per keypoint, episode) here")
    p.set_defaults(func=run)


def _fmt(x: float, digits: int = 1) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def run(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from ..dataset.compare_hands import compare_datasets
    from ..records import EpisodeError

    ids = set(Path(args.ids).read_text().split()) if args.ids else None
    try:
        result = compare_datasets(args.a, args.b, ids, args.match_fraction)
    except EpisodeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if result.overall is None:
        print(f"error: {args.a} and {args.b} share no ok episodes", file=sys.stderr)
        return 1
    table = Table(title=f"hands: {args.b} vs {args.a}")
    for col in ("episode", "frames", "pairs", "det. agree", "L/R agree", "2D px mean", "2D px median",
                "MPJPE cam mm", "MPJPE root mm", "PA-MPJPE mm"):
        table.add_column(col, justify="right" if col != "episode" else "left")
    rows = sorted(result.episodes.items()) + [("ALL", result.overall)]
    for eid, c in rows:
        table.add_row(eid, str(c.frames), str(c.pairs), _fmt(c.detection_agreement, 3),
                      _fmt(c.handedness_agreement, 3), _fmt(c.kp2d_px_mean, 2), _fmt(c.kp2d_px_median, 2),
                      _fmt(c.mpjpe_cam_mm), _fmt(c.mpjpe_root_mm), _fmt(c.pa_mpjpe_mm))
    Console().print(table)
    if result.only_a or result.only_b:
        print(f"episodes only in {args.a}: {len(result.only_a)}; only in {args.b}: {len(result.only_b)}",
              file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps(result.to_dict(), indent=1))
    return 0
