"""``--recipe FILE``: the options of a run as data (the top-level ``pipelines/*.toml``, one per source).

A recipe is TOML: ``command`` (``extract`` or ``convert-droid``) and an ``[options]`` table whose keys
are the command's long options without the dashes (``frame-size = 224``, ``hands = "mediapipe"``).
Its values become the parser's defaults, so an option given on the command line wins. Unknown
options, a recipe for another command and values outside an option's choices are errors naming
the file. The recipe used is recorded in ``meta/info.json`` (``recipes.<source>.recipe``); it is not
part of the ``config_hash`` (the settings it produces are, as for the same flags typed by hand).
"""

from __future__ import annotations

import argparse
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Recipe:
    """A parsed recipe file: ``options`` maps long option names (no dashes) to values."""

    path: str
    command: str
    options: dict[str, Any]

    def to_dict(self) -> dict:
        return {"path": self.path, "command": self.command, "options": dict(self.options)}


def add_recipe_argument(parser: argparse.ArgumentParser) -> None:
    """``--recipe FILE`` on a subcommand's parser (``apply_recipe`` reads it after parsing)."""
    parser.add_argument("--recipe", default=None,
                        help="TOML recipe (e.g. pipelines/ego4d.toml) of option defaults; "
                             "flags given here win")
    parser.set_defaults(recipe_parser=parser, recipe_used=None)


def load_recipe(path: str | Path) -> Recipe:
    """Parse a recipe file; raises ValueError naming the file and the problem."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such recipe file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML ({exc})") from exc
    unknown = sorted(set(data) - {"command", "options"})
    if unknown:
        raise ValueError(f"{path}: unknown top-level keys {unknown} (a recipe has 'command' and [options])")
    if not isinstance(data.get("command"), str) or not isinstance(data.get("options", {}), dict):
        raise ValueError(f"{path}: a recipe needs command = \"extract\" or \"convert-droid\" "
                         "and an [options] table")
    return Recipe(str(path), data["command"], dict(data.get("options", {})))


def _long_options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {s[2:]: a for a in parser._actions for s in a.option_strings if s.startswith("--")}


def _check_value(path: str, name: str, action: argparse.Action, value: Any) -> Any:
    values = value if isinstance(value, list) else [value]
    if isinstance(action, argparse._StoreTrueAction):
        if not isinstance(value, bool):
            raise ValueError(f"{path}: option {name!r} is a switch; give true or false")
        return value
    if action.nargs in ("+", "*") and not isinstance(value, list):
        raise ValueError(f"{path}: option {name!r} takes a list")
    if action.nargs is None and isinstance(value, list):
        raise ValueError(f"{path}: option {name!r} takes one value, not a list")
    if action.type in (int, float):
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in values) or \
                (action.type is int and any(not isinstance(v, int) for v in values)):
            raise ValueError(f"{path}: option {name!r} takes {action.type.__name__} values, got {value!r}")
        value = [action.type(v) for v in value] if isinstance(value, list) else action.type(value)
    elif any(not isinstance(v, str) for v in values):
        raise ValueError(f"{path}: option {name!r} takes text, got {value!r}")
    if action.choices is not None:
        bad = [v for v in values if v not in action.choices]
        if bad:
            raise ValueError(f"{path}: option {name!r}: {bad[0]!r} is not one of {list(action.choices)}")
    return value


def apply_recipe(parser: argparse.ArgumentParser, args: argparse.Namespace,
                 argv: list[str] | None) -> argparse.Namespace:
    """``args`` re-parsed from ``argv`` with the recipe's options as defaults of the subcommand."""
    recipe = load_recipe(args.recipe)
    sub: argparse.ArgumentParser = args.recipe_parser
    command = sub.prog.split()[-1]
    if recipe.command != command:
        raise ValueError(f"{recipe.path}: a recipe for dexdata {recipe.command}, not dexdata {command}")
    known = _long_options(sub)
    defaults = {}
    for name, value in recipe.options.items():
        action = known.get(name)
        if action is None or name in ("recipe", "help"):
            raise ValueError(f"{recipe.path}: dexdata {command} has no option --{name}")
        defaults[action.dest] = _check_value(recipe.path, name, action, value)
    sub.set_defaults(**defaults, recipe_used=recipe.to_dict())
    return parser.parse_args(argv)
