"""Entry point of ``dexdata``. Each subcommand module exposes ``add_parser(subparsers)``, which
registers the subcommand and sets ``func(args) -> int`` (the exit code)."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

SUBCOMMANDS = (
    "extract",
    "convert_droid",
    "validate",
    "info",
    "viz",
    "actions",
    "publish",
    "compare_hands",
    "score",
    "score_images",
    "train_reference",
)


VERBOSE_HELP = ("debug logging, and Ray / MediaPipe / TFLite output on the terminal "
                "(by default it goes to the dataset's meta/logs/)")


def build_parser() -> argparse.ArgumentParser:
    from .._version import __version__

    parser = argparse.ArgumentParser(prog="dexdata", description="Data preparation for dexterous world models.")
    parser.add_argument("--version", action="version", version=f"dexhands-data {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help=VERBOSE_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"{__package__}.{name}").add_parser(sub)
    for subparser in sub.choices.values():  # `dexdata extract ... --verbose` works too, out of habit
        subparser.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                               help=VERBOSE_HELP)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.verbose:
        os.environ.setdefault("GLOG_minloglevel", "2")  # MediaPipe's C++ warnings drown the progress bar
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        if getattr(args, "recipe", None):
            from .recipe import apply_recipe

            args = apply_recipe(parser, args, argv)
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, NotADirectoryError, RuntimeError) as exc:
        # User-facing problems (bad input root, missing model files, unknown layout): one clear line.
        if args.verbose:
            raise
        print(f"dexdata {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
