"""``dexdata extract --source NAME --input DIR --out DIR``: hands + camera motion from egocentric episodes."""

from __future__ import annotations

from pathlib import Path

from .recipe import add_recipe_argument


def add_parser(sub) -> None:
    p = sub.add_parser("extract", help="extract hand keypoints and camera motion into Parquet shards")
    from ..hands.registry import available
    from ..sources.registry import SOURCES

    p.add_argument("--source", default="videos", choices=SOURCES.names(),
                   help="source layout (droid: see also dexdata convert-droid, with DROID's own flags)")
    p.add_argument("--input", required=True, help="input root folder of the source's layout")
    p.add_argument("--out", default="dexwm-actions", help="dataset folder (default ./dexwm-actions)")
    p.add_argument("--split", default="train", help="split for sources without their own split (videos, ego4d)")
    p.add_argument("--hands", default="mediapipe", choices=[*available(), "given"],
                   help="hand estimator (mediapipe; hamer when installed) or given (the source's ground truth)")
    p.add_argument("--model-complexity", type=int, choices=[0, 1], default=1, help="MediaPipe model complexity")
    p.add_argument("--hand-smoother", default="rts", choices=["rts", "none"],
                   help="MediaPipe: depth smoothing over each hand track (rts: forward-backward; none: raw)")
    p.add_argument("--hamer-checkpoint", default=None, help="HaMeR checkpoint (default: env HAMER_CHECKPOINT)")
    p.add_argument("--hamer-mano-dir", default=None, help="folder with MANO_RIGHT.pkl (default: env HAMER_MANO_DIR)")
    p.add_argument("--hamer-batch-size", type=int, default=32, help="HaMeR crops per GPU batch")
    p.add_argument("--hamer-detect-every", type=int, default=1,
                   help="run the MediaPipe box detector every k-th frame, reuse boxes in between")
    p.add_argument("--hamer-fp16", action="store_true")
    p.add_argument("--gpus-per-worker", type=float, default=0.0,
                   help="GPUs per Ray actor (fractional allowed, e.g. 0.5 with --workers 2 on one GPU)")
    p.add_argument("--camera", default=None, choices=["vo", "given", "none", "colmap"],
                   help="camera motion: visual odometry, the source's ground truth, or none "
                        "(default: given for egodex/aria, vo otherwise)")
    p.add_argument("--vo-bundle-adjustment", action="store_true",
                   help="--camera vo: refine poses by windowed bundle adjustment (opt-in: ~15 ms/frame more; "
                        "figures in docs/camera.md)")
    p.add_argument("--vo-corner-precision", type=float, default=None, metavar="PX",
                   help="--camera vo: keep only corners trackable to this standard error in px, e.g. 0.1 "
                        "(opt-in; helps textureless scenes, docs/camera.md)")
    p.add_argument("--fps", type=float, default=None, help="resample frames to this rate by timestamps")
    p.add_argument("--hfov", type=float, default=90.0,
                   help="horizontal field of view (deg) assumed when a video has no intrinsics sidecar")
    p.add_argument("--frame-size", type=int, default=224,
                   help="embed frames as JPEG with this shorter side in px; 0 embeds no frames")
    p.add_argument("--jpeg-quality", type=int, default=90)
    p.add_argument("--video-uids", nargs="+", default=None, help="Ego4D: only these video/clip uids")
    p.add_argument("--video-uid-file", default=None, help="Ego4D: file of uids (ego4d CLI --video_uid_file format)")
    p.add_argument("--intrinsics-file", default=None, help="Ego4D: JSON {uid: {fx, fy, cx, cy[, width, height]}}")
    p.add_argument("--ego4d-kinds", nargs="+", choices=["full_scale", "clips"], default=["full_scale", "clips"])
    p.add_argument("--egodex-camera-axes", default="opencv", choices=["opencv", "arkit", "auto"],
                   help="EgoDex camera axes convention (auto: decided per episode by projecting wrists)")
    p.add_argument("--aria-pinhole-size", type=int, default=1024, help="Aria: side of the undistorted pinhole frame")
    p.add_argument("--aria-focal-scale", type=float, default=1.0, help="Aria: pinhole focal relative to the fisheye's")
    p.add_argument("--aria-calibration", default="auto", choices=["auto", "online", "factory"])
    p.add_argument("--aria-hand-tolerance", type=float, default=0.05,
                   help="Aria: max seconds between a frame and its hand-tracking row")
    p.add_argument("--ids", default=None, help="file with one episode id per line to process (a subset)")
    p.add_argument("--workers", type=int, default=1, help="parallel Ray actors")
    p.add_argument("--episodes-per-shard", type=int, default=1)
    p.add_argument("--ray-address", default=None, help="Ray cluster address (default: start Ray locally)")
    p.add_argument("--executor", default="ray", choices=["ray", "local"], help="local: no Ray, in this process")
    p.add_argument("--retry-failed", action="store_true", help="reprocess shards that hold failed episodes")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)
    add_recipe_argument(p)


def _hands_options(args) -> dict:
    if args.hands == "mediapipe":
        return {"model_complexity": args.model_complexity, "smoother": args.hand_smoother}
    if args.hands == "hamer":
        from ..hands.hamer_backend import locate_hamer

        if not args.ray_address:  # say what is missing once, before any actor starts
            locate_hamer(args.hamer_checkpoint, args.hamer_mano_dir)
        return {"checkpoint": args.hamer_checkpoint, "mano_dir": args.hamer_mano_dir,
                "batch_size": args.hamer_batch_size, "detect_every": args.hamer_detect_every,
                "fp16": args.hamer_fp16, "detector_model_complexity": args.model_complexity}
    return {}


def _vo_options(args, camera: str) -> dict:
    """VisualOdometry overrides of the --vo-* flags; a clear error when they meet another camera."""
    options: dict = {}
    if args.vo_bundle_adjustment:
        options["bundle_adjustment"] = True
    if args.vo_corner_precision is not None:
        if not args.vo_corner_precision > 0:
            raise SystemExit(f"--vo-corner-precision must be > 0 px, got {args.vo_corner_precision}")
        options["feature_max_std_px"] = args.vo_corner_precision
    if options and camera != "vo":
        raise SystemExit(f"--vo-bundle-adjustment / --vo-corner-precision need --camera vo, not {camera!r}")
    return options


def run(args) -> int:
    from ..pipelines.extract import ExtractSettings, run_extract
    from ..pipelines.runner import RunConfig

    ground_truth = args.source in ("egodex", "aria")
    camera = args.camera or ("given" if ground_truth else "vo")
    source_options: dict = {}
    if args.source in ("videos", "ego4d"):
        source_options = {"hfov_deg": args.hfov, "target_fps": args.fps}
        if args.source == "ego4d":
            source_options.update(video_uids=args.video_uids, video_uid_file=args.video_uid_file,
                                  intrinsics_file=args.intrinsics_file, kinds=args.ego4d_kinds)
    elif args.source == "egodex":
        source_options = {"target_fps": args.fps, "camera_axes": args.egodex_camera_axes}
        if args.frame_size == 0:  # no frames wanted: recordings without their video pass through
            source_options["require_video"] = False
    elif args.source == "aria":
        source_options = {"target_fps": args.fps, "pinhole_size": args.aria_pinhole_size,
                          "focal_scale": args.aria_focal_scale, "calibration": args.aria_calibration,
                          "hand_tolerance_s": args.aria_hand_tolerance}
    camera_options = _vo_options(args, camera)
    if camera not in ("given", "none"):  # an unavailable estimator is one clear error, before any work
        from ..camera.registry import create_camera_estimator

        create_camera_estimator(camera, **camera_options)
    settings = ExtractSettings(
        source=args.source,
        source_options=source_options,
        hands=args.hands,
        hands_options=_hands_options(args),
        camera=camera,
        camera_options=camera_options,
        frame_short_side=args.frame_size or None,
        jpeg_quality=args.jpeg_quality,
    )
    run_config = RunConfig(out=args.out, workers=args.workers, ray_address=args.ray_address,
                           episodes_per_shard=args.episodes_per_shard, retry_failed=args.retry_failed,
                           show_progress=not args.no_progress, executor=args.executor,
                           num_gpus_per_worker=args.gpus_per_worker, recipe=args.recipe_used,
                           verbose=getattr(args, "verbose", False))
    ids = set(Path(args.ids).read_text().split()) if args.ids else None
    split = args.split if args.source in ("videos", "ego4d") else None
    summary = run_extract(settings, args.input, run_config, ids, split)
    summary.print_table()
    return summary.exit_code
