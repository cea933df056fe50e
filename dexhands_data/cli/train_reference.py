"""``dexdata train-reference``: train (or with ``--eval``, evaluate) the reference DexWM model.

Every ``TrainConfig`` field is an option (``--batch-size``, ``--hc-weight``, ...); ``--config FILE`` starts
from a JSON config (e.g. a run's ``config.json``) and explicit options override it. Multi-GPU:
``torchrun --nproc_per_node=N -m dexhands_data.cli.main train-reference ...``.
``--report RUN`` draws a run's loss curves (and its evaluation, if any) to ``RUN/report.png``; the same
curves are in TensorBoard event files in the run folder (``tensorboard --logdir RUN``).
"""

from __future__ import annotations

import argparse
import json
import sys
import types
import typing
from dataclasses import MISSING, asdict, fields

HELP = {
    "data": "dataset folder (e.g. ./dexwm-actions) or Hub repo org/name",
    "out": "run folder: config.json, metrics.jsonl, checkpoints/, eval/",
    "model": "predictor size: tiny | S | B | L | XL",
    "encoder": "frozen encoder: random (NOT DINOv2, offline smoke runs) | dinov2_vits14 | dinov2_vitb14 "
               "| dinov2_vitl14",
    "encoder_weights": "local DINOv2 weights: torch-hub dinov2_vit?14_pretrain.pth or a transformers folder",
    "steps": "optimiser steps",
    "batch_size": "samples per process and step",
    "multistep": "rollout fine-tuning: back-propagate through the open-loop rollout",
    "resume": "continue from the run folder's latest checkpoint",
    "eval_rollout": "open-loop rollout steps for --eval",
}


def _option_type(hint) -> type:
    """int/float/str/bool of a field annotation (``X | None`` -> X)."""
    if isinstance(hint, types.UnionType):
        return next(a for a in typing.get_args(hint) if a is not type(None))
    return hint


def _config_cls():
    from ..train.config import TrainConfig

    return TrainConfig


def add_parser(sub) -> None:
    p = sub.add_parser("train-reference", help="train / evaluate the reference DexWM world model",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="JSON file with TrainConfig fields (options given here override it)")
    p.add_argument("--eval", action="store_true", help="evaluate the run's latest checkpoint (open-loop)")
    p.add_argument("--checkpoint", help="with --eval: checkpoint file to evaluate instead of the latest")
    p.add_argument("--report", metavar="RUN", help="draw RUN's loss curves and evaluation to RUN/report.png")
    hints = typing.get_type_hints(_config_cls())
    for f in fields(_config_cls()):
        t = _option_type(hints[f.name])
        opt = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not MISSING else None
        helptext = HELP.get(f.name, "") + f" (default: {default})"
        if t is bool:
            p.add_argument(opt, action=argparse.BooleanOptionalAction, default=None, help=helptext)
        else:
            p.add_argument(opt, type=t, default=None, help=helptext)
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace):
    cls = _config_cls()
    base = json.loads(open(args.config).read()) if args.config else {}
    over = {f.name: getattr(args, f.name) for f in fields(cls) if getattr(args, f.name, None) is not None}
    return cls.from_dict({**asdict(cls()), **base, **over})


def run(args: argparse.Namespace) -> int:
    from ..train.evaluation import evaluate
    from ..train.trainer import train

    if args.report:
        return report(args.report)
    cfg = config_from_args(args)
    if not cfg.data:
        print("train-reference: --data DATASET is required", file=sys.stderr)
        return 2
    try:
        if args.eval:
            evaluate(cfg, checkpoint=args.checkpoint)
        else:
            train(cfg)
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        print(f"train-reference: {e}", file=sys.stderr)
        return 1
    return 0


def report(run_dir: str) -> int:
    from ..train.report import write_report

    try:
        path = write_report(run_dir)
    except (FileNotFoundError, ValueError) as e:
        print(f"train-reference --report: {e}", file=sys.stderr)
        return 1
    print(f"[train-reference] report: {path}")
    return 0
