"""``dexdata convert-droid --input DIR --out DIR``: DROID episodes to pseudo-hand rows (see docs/droid.md)."""

from __future__ import annotations

from pathlib import Path

from .recipe import add_recipe_argument


def add_parser(sub) -> None:
    p = sub.add_parser("convert-droid", help="convert DROID episodes (raw or LeRobot) into Parquet shards")
    p.add_argument("--input", required=True,
                   help="raw DROID root (<lab>/{success,failure}/...) or a LeRobot port")
    p.add_argument("--out", default="dexwm-actions", help="dataset folder (default ./dexwm-actions)")
    p.add_argument("--format", default=None, choices=["raw", "lerobot"],
                   help="input layout (default: detect)")
    p.add_argument("--pseudo-hand", default="oriented", choices=["dexwm-official", "oriented"],
                   help="dexwm-official: the released rules bit for bit; "
                        "oriented: circles turn with the gripper")
    p.add_argument("--camera", default="auto", choices=["auto", "ext1", "ext2", "wrist"],
                   help="auto: the exterior camera the released code picks (left_mp4_path); ext1 for LeRobot")
    p.add_argument("--calibration", default=None,
                   help="intrinsics.json of the calibration release ([fx, cx, fy, cy] per serial)")
    p.add_argument("--success-only", action="store_true", help="only successful episodes")
    p.add_argument("--episodes", default=None,
                   help="episode ids to convert: a file with one id per line, or a comma-separated list")
    p.add_argument("--keep-ranges", default=None,
                   help="keep_ranges_1_0_1.json-style file: keep only these half-open step ranges")
    p.add_argument("--frame-size", type=int, default=224,
                   help="embed frames as JPEG with this shorter side in px; 0 embeds no frames")
    p.add_argument("--jpeg-quality", type=int, default=90)
    p.add_argument("--workers", type=int, default=1, help="parallel Ray actors")
    p.add_argument("--episodes-per-shard", type=int, default=1)
    p.add_argument("--ray-address", default=None, help="Ray cluster address (default: start Ray locally)")
    p.add_argument("--executor", default="ray", choices=["ray", "local"],
                   help="local: no Ray, in this process")
    p.add_argument("--retry-failed", action="store_true", help="reprocess shards that hold failed episodes")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)
    add_recipe_argument(p)


def _episode_ids(spec: str | None) -> list[str] | None:
    if spec is None:
        return None
    path = Path(spec)
    text = path.read_text() if path.is_file() else spec.replace(",", " ")
    return text.split()


def run(args) -> int:
    from ..pipelines.convert_droid import DroidInput, DroidSettings, run_convert_droid
    from ..pipelines.runner import RunConfig

    settings = DroidSettings(
        pseudo_hand=args.pseudo_hand, camera=args.camera, embed_frames=args.frame_size > 0,
        short_side=args.frame_size or None, jpeg_quality=args.jpeg_quality, calibration=args.calibration,
    )
    inp = DroidInput(root=args.input, layout=args.format, success_only=args.success_only,
                     episode_ids=_episode_ids(args.episodes), keep_ranges=args.keep_ranges)
    run_config = RunConfig(out=args.out, workers=args.workers, ray_address=args.ray_address,
                           episodes_per_shard=args.episodes_per_shard, retry_failed=args.retry_failed,
                           show_progress=not args.no_progress, executor=args.executor,
                           recipe=args.recipe_used, verbose=getattr(args, "verbose", False))
    summary = run_convert_droid(inp, settings, run_config)
    summary.print_table()
    return summary.exit_code
