"""``dexdata export DATASET --format dexwm-egodex|lerobot --out DIR``: the dataset in another stack's
layout (see docs/export.md)."""

from __future__ import annotations

from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="export a dataset to the released DexWM layout or to LeRobot v3.0")
    p.add_argument("dataset", help="dataset folder written by extract / convert-droid")
    p.add_argument("--format", required=True, choices=["dexwm-egodex", "lerobot"],
                   help="dexwm-egodex: EgoDex <split>/<task>/<i>.hdf5+mp4 (human) and raw DROID (droid/...) "
                        "as the released DexWM code reads them; lerobot: a LeRobot v3.0 dataset")
    p.add_argument("--out", required=True, help="export folder (must be empty, or an export to resume)")
    p.add_argument("--overwrite", action="store_true", help="replace the contents of a non-empty --out")
    p.add_argument("--videos-from", default=None, metavar="INPUT_ROOT",
                   help="input root of the dataset's run: frames from the source videos "
                        "(default: the embedded frames)")
    p.add_argument("--no-video", action="store_true", help="write no video files")
    p.add_argument("--match-egodex-camera", action="store_true",
                   help="dexwm-egodex: re-render frames into the EgoDex camera the released code hard-codes "
                        "(fx 736.6339 at 1920x1080) so its HC targets are right")
    p.add_argument("--convention", default="relative", choices=["relative", "dexwm-official"],
                   help="lerobot: the convention of the 132-d action to the next frame")
    p.add_argument("--episodes", default=None,
                   help="episode ids to export: a file with one id per line, or a comma-separated list")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..export.run import ExportOptions, run_export

    ids = None
    if args.episodes:
        path = Path(args.episodes)
        ids = (path.read_text() if path.is_file() else args.episodes.replace(",", "\n")).split()
    opts = ExportOptions(dataset=args.dataset, format=args.format, out=args.out, overwrite=args.overwrite,
                         videos_from=args.videos_from, video=not args.no_video,
                         match_egodex_camera=args.match_egodex_camera, convention=args.convention,
                         episode_ids=ids)
    summary = run_export(opts)
    summary.print_table()
    return summary.exit_code
