"""``dexdata validate PATH``: check a dataset folder against the data contract; non-zero on any violation."""

from __future__ import annotations

import sys


def add_parser(sub) -> None:
    p = sub.add_parser("validate", help="check a dataset folder against the data contract (v1 or v2)")
    p.add_argument("path", help="dataset folder, e.g. ./dexwm-actions")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..dataset.validate import validate_dataset

    report = validate_dataset(args.path)
    for problem in report.problems:
        print(f"INVALID {problem}", file=sys.stderr)
    if report.ok:
        print(f"{args.path}: valid (schema {report.version}; {report.episodes} episodes, {report.rows} frame rows)")
        return 0
    print(f"{args.path}: {len(report.problems)} violation(s)", file=sys.stderr)
    return 1
