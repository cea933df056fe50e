"""``dexdata score EST GT``: how close an estimated dataset's actions are to a ground-truth dataset of
the same recordings (hands, hand motion and camera motion at DexWM's strides).

Exit codes: 0 every paired recording scored; 1 some recordings failed (the others are scored and
the failures listed); 2 nothing scored (unreadable dataset, no recordings in common, every pair
failed, bad arguments).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("score", help="score an estimated dataset against ground truth of the same recordings")
    p.add_argument("est", help="estimated dataset folder (e.g. extract --source videos of EgoDex MP4s)")
    p.add_argument("gt", help="ground-truth dataset folder of the same recordings "
                              "(e.g. extract --source egodex)")
    p.add_argument("--stride", default="1,6",
                   help="frame strides in source frames, comma separated "
                        "(default 1,6: DexWM's 0.2 s at 30 Hz)")
    p.add_argument("--pairs", default=None,
                   help="file of 'EST GT' lines (episode ids or recording keys) "
                        "instead of pairing by source path")
    p.add_argument("--match-fraction", type=float, default=0.5,
                   help="an estimated hand matches a GT hand when their mean 2D distance is below this "
                        "fraction of the GT hand's 2D size")
    p.add_argument("--json", default=None, help="also write every figure (per episode and overall) here")
    p.set_defaults(func=run)


def parse_strides(text: str) -> tuple[int, ...]:
    try:
        strides = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise ValueError(f"--stride: expected comma-separated positive integers, got {text!r}") from None
    if not strides or min(strides) < 1:
        raise ValueError(f"--stride: expected comma-separated positive integers, got {text!r}")
    return strides


def run(args) -> int:
    from ..fidelity.datasets import score_datasets
    from ..fidelity.report import print_report
    from ..records import EpisodeError

    strides = parse_strides(args.stride)
    try:
        report = score_datasets(args.est, args.gt, strides, args.pairs, args.match_fraction)
    except EpisodeError as exc:
        print(f"dexdata score: error: {exc}", file=sys.stderr)
        return 2
    print_report(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_dict(), indent=1))
    if report.overall is None:
        return 2
    return 1 if report.failed else 0
