"""``--recipe pipelines/*.toml``: a run's options as data; flags typed win; recorded in meta/info.json, not hashed."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from dexhands_data.cli.main import build_parser, main
from dexhands_data.cli.recipe import apply_recipe
from egodex_fixtures import write_egodex_episode

PIPELINES = Path(__file__).resolve().parents[1] / "pipelines"
COMMANDS = {"videos": "extract", "ego4d": "extract", "egodex": "extract", "aria": "extract",
            "droid": "convert-droid"}


def parse(argv: list[str]):
    parser = build_parser()
    args = parser.parse_args(argv)
    return apply_recipe(parser, args, argv) if args.recipe else args


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_recipe_parses_into_its_command(name):
    """Each shipped recipe applies cleanly; its options become the parsed values."""
    args = parse([COMMANDS[name], "--recipe", str(PIPELINES / f"{name}.toml"), "--input", "in"])
    assert args.recipe_used["command"] == COMMANDS[name] and args.recipe_used["path"].endswith(f"{name}.toml")
    if name != "droid":
        assert args.source == name
    assert args.frame_size == 224 and args.input == "in"


def test_flags_on_the_command_line_win(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text('command = "extract"\n[options]\nsource = "egodex"\nframe-size = 96\n'
                      'egodex-camera-axes = "arkit"\nworkers = 3\n')
    args = parse(["extract", "--recipe", str(recipe), "--input", "in", "--frame-size", "64"])
    assert (args.source, args.frame_size, args.egodex_camera_axes, args.workers) == ("egodex", 64, "arkit", 3)
    assert args.recipe_used["options"]["frame-size"] == 96  # what the file said, recorded as written


@pytest.mark.parametrize("text,message", [
    ('command = "extract"\n[options]\nno-such = 1\n', "has no option --no-such"),
    ('command = "convert-droid"\n[options]\n', "a recipe for dexdata convert-droid, not dexdata extract"),
    ('command = "extract"\n[options]\ncamera = "lidar"\n', "'lidar' is not one of"),
    ('command = "extract"\n[options]\nframe-size = "big"\n', "takes int values"),
    ('command = "extract"\n[options]\nretry-failed = "yes"\n', "is a switch"),
    ('command = "extract"\noptions = 3\n', "needs command"),
    ('command = "extract"\n[options\n', "not valid TOML"),
])
def test_bad_recipes_are_errors_naming_the_file(tmp_path, capsys, text, message):
    recipe = tmp_path / "bad.toml"
    recipe.write_text(text)
    with pytest.raises(ValueError, match=message) as info:
        parse(["extract", "--recipe", str(recipe), "--input", "in"])
    assert str(recipe) in str(info.value)
    assert main(["extract", "--recipe", str(recipe), "--input", "in"]) == 2
    assert "bad.toml" in capsys.readouterr().err


def test_a_recipe_run_equals_the_same_flags_and_is_recorded(tmp_path):
    """EgoDex fixture extracted once with flags, once with pipelines/egodex.toml: same shard bytes and
    config_hash (a recipe rerun on a flag-made dataset resumes); the recipe is in meta/info.json."""
    write_egodex_episode(tmp_path / "in", n_frames=8, width=320, height=240)
    common = ["--input", str(tmp_path / "in"), "--executor", "local", "--no-progress"]
    flags = ["extract", "--source", "egodex", "--camera", "given", "--frame-size", "224", *common]
    assert main([*flags, "--out", str(tmp_path / "flags")]) == 0
    recipe = str(PIPELINES / "egodex.toml")
    assert main(["extract", "--recipe", recipe, *common, "--out", str(tmp_path / "recipe")]) == 0

    def shards(root: Path) -> dict[str, bytes]:
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted((root / "data").rglob("*.parquet"))}

    assert shards(tmp_path / "flags") == shards(tmp_path / "recipe") != {}
    hashes = [pq.read_table(tmp_path / d / "meta/episodes.parquet").column("config_hash").to_pylist()
              for d in ("flags", "recipe")]
    assert hashes[0] == hashes[1]
    info = json.loads((tmp_path / "recipe" / "meta/info.json").read_text())
    recorded = info["recipes"]["egodex"]
    assert recorded["recipe"] == {"path": recipe, "command": "extract",
                                  "options": {**recorded["recipe"]["options"], "source": "egodex"}}
    assert recorded["recipe"]["options"]["egodex-camera-axes"] == "opencv"
    assert "recipe" not in json.loads((tmp_path / "flags" / "meta/info.json").read_text())["recipes"]["egodex"]
    # a rerun with the recipe on the flag-made dataset resumes instead of rewriting
    files = sorted((tmp_path / "flags" / "data").rglob("*.parquet"))
    before = [(p.stat().st_ino, p.stat().st_mtime_ns) for p in files]
    assert main(["extract", "--recipe", recipe, *common, "--out", str(tmp_path / "flags")]) == 0
    assert [(p.stat().st_ino, p.stat().st_mtime_ns) for p in files] == before  # not rewritten
    assert "recipe" in json.loads((tmp_path / "flags" / "meta/info.json").read_text())["recipes"]["egodex"]
