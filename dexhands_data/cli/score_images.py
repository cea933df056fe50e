"""``dexdata score-images HAND3D_GT``: a hand estimator's figures on still images with calibrated 3D
ground truth (DexYCB, hand-graph-cnn, InterHand2.6M), each image with its true K, through the same
estimator session ``extract`` uses. Exit codes: 0 scored; 2 bad input (no known sub-folder)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("score-images", help="score the hand estimator on still images with 3D ground truth")
    p.add_argument("root", help="folder holding dexycb_nc/, handgraphcnn_realworld_nc/, interhand26m_nc/ "
                                "(the layout of shared/data/hand3d_gt)")
    p.add_argument("--hands", default="mediapipe", help="hand estimator (as extract --hands)")
    p.add_argument("--model-complexity", type=int, choices=[0, 1], default=1,
                   help="MediaPipe model complexity")
    p.add_argument("--match-fraction", type=float, default=0.5)
    p.add_argument("--limit", type=int, default=None, help="score at most this many images per dataset")
    p.add_argument("--json", default=None, help="also write the figures here")
    p.set_defaults(func=run)


def first_per_dataset(samples: list, limit: int) -> list:
    """The first ``limit`` samples of each dataset, in order."""
    counts: Counter = Counter()
    out = []
    for s in samples:
        if counts[s.dataset] < limit:
            out.append(s)
            counts[s.dataset] += 1
    return out


def run(args) -> int:
    from rich.table import Table

    from ..fidelity.figures import hand_figures
    from ..fidelity.report import fmt, wide_console
    from ..fidelity.still_images import read_still_images
    from ..fidelity.still_score import score_still_images
    from ..hands.registry import create

    samples = read_still_images(args.root)
    if args.limit is not None:
        samples = first_per_dataset(samples, args.limit)
    options = {"model_complexity": args.model_complexity} if args.hands == "mediapipe" else {}
    result = score_still_images(create(args.hands, **options), samples, args.match_fraction)
    table = Table(title=f"hands on still images with 3D ground truth: {result.estimator}")
    for c in ("dataset", "images", "GT hands", "detected %", "side ok %", "2D px", "MPJPE mm", "root mm",
              "PA-MPJPE mm", "wrist depth err %", "depth bias %", "est 3D->2D px"):
        table.add_column(c, justify="left" if c == "dataset" else "right")
    for name, (n, h) in result.rows().items():
        f = hand_figures(h)
        table.add_row(name, str(n), str(f["gt_hands_in_view"]), fmt(f["detection"], 1, True),
                      fmt(f["side_correct"], 1, True), fmt(f["kp2d_px"]), fmt(f["mpjpe_cam_mm"]),
                      fmt(f["mpjpe_root_mm"]), fmt(f["pa_mpjpe_mm"]), fmt(f["wrist_depth_error_pct"]),
                      fmt(f["wrist_depth_bias_pct"]), fmt(f["est_reprojection_px"]))
    wide_console().print(table)
    if args.json:
        Path(args.json).write_text(json.dumps(result.to_dict(), indent=1))
    return 0
