"""``dexdata viz DATASET --episode ID --out FILE.png|FILE.mp4``: draw hands and camera path on the frames."""

from __future__ import annotations

import json
import sys


def add_parser(sub) -> None:
    p = sub.add_parser("viz", help="render an episode's hands, pseudo-hands and camera path to PNG or MP4")
    p.add_argument("dataset", help="dataset folder, e.g. ./dexwm-actions")
    p.add_argument("--episode", required=True, help="episode id (or a unique prefix of it)")
    p.add_argument("--out", required=True, help="output file: .png (one frame or a contact sheet) or .mp4")
    p.add_argument("--frame", type=int, default=None, help="PNG: render only this frame index")
    p.add_argument("--frames", default=None, help="PNG: comma-separated frame indices for the contact sheet")
    p.add_argument("--count", type=int, default=12, help="PNG: evenly spaced frames in the contact sheet")
    p.add_argument("--columns", type=int, default=4, help="PNG: contact-sheet columns")
    p.add_argument("--size", type=int, default=None, help="short side of each rendered frame in px "
                                                           "(default 480 for one frame/MP4, 240 for sheets)")
    p.add_argument("--fps", type=float, default=None, help="MP4 frame rate (default: the episode's)")
    p.add_argument("--stride", type=int, default=1, help="MP4: render every n-th frame")
    p.add_argument("--no-inset", action="store_true", help="omit the camera-trajectory inset")
    p.add_argument("--input", default=None,
                   help="source root to decode frames from when the dataset stores no images (video sources)")
    p.set_defaults(func=run)


def run(args) -> int:
    from .. import viz
    from ..records import EpisodeError

    out = args.out.lower()
    if not out.endswith((".png", ".mp4")):
        print(f"{args.out}: the output must end in .png or .mp4", file=sys.stderr)
        return 2
    try:
        view = viz.load_episode(args.dataset, args.episode)
        if view.images is None and args.input:
            viz.attach_source_frames(view, args.input)
        inset = not args.no_inset
        if out.endswith(".mp4"):
            n = viz.write_mp4(args.out, view, fps=args.fps, short_side=args.size or 480, inset=inset,
                              stride=max(1, args.stride))
            what = f"{n} frames"
        elif args.frame is not None:
            if not 0 <= args.frame < len(view):
                raise IndexError(f"frame {args.frame} outside the episode's {len(view)} frames")
            viz.write_png(args.out, viz.render_frame(view, args.frame, args.size or 480, inset))
            what = f"frame {args.frame}"
        else:
            indices = [int(x) for x in args.frames.split(",")] if args.frames else None
            sheet = viz.contact_sheet(view, indices, args.count, args.columns, args.size or 240, inset)
            viz.write_png(args.out, sheet)
            what = "contact sheet"
    except (FileNotFoundError, KeyError, ValueError, IndexError, OSError, EpisodeError) as exc:
        print(f"error: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 2
    print(f"{args.out}: {what} of {view.episode_id}")
    print(json.dumps(viz.episode_summary(view), sort_keys=True))
    return 0
