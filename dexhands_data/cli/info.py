"""``dexdata info DATASET [--json]``: sources, episodes, hours, frames, hand/camera validity,
failures and disk size of a dataset folder."""

from __future__ import annotations

import sys


def add_parser(sub) -> None:
    p = sub.add_parser("info", help="summarise a dataset folder: sources, episodes, hours, validity, size")
    p.add_argument("dataset", help="dataset folder, e.g. ./dexwm-actions")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..dataset.summary import render, summarize, summary_json
    from ..records import EpisodeError

    try:
        summary = summarize(args.dataset)
    except EpisodeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(summary_json(summary))
    else:
        render(summary)
    return 0
