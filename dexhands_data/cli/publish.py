"""``dexdata publish DATASET --repo-id ORG/NAME [--private] [--dry-run]``: validate, then upload."""

from __future__ import annotations

import sys


def add_parser(sub) -> None:
    p = sub.add_parser("publish", help="upload a valid dataset folder to a Hugging Face Hub dataset repo")
    p.add_argument("dataset", help="dataset folder, e.g. ./dexwm-actions")
    p.add_argument("--repo-id", required=True, help="ORG/NAME of the Hub dataset repo (created if missing)")
    p.add_argument("--private", action="store_true", help="create the repo private")
    p.add_argument("--revision", default=None, help="branch to upload to (default: main)")
    p.add_argument("--dry-run", action="store_true", help="validate and list what would be uploaded")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..dataset.summary import human_bytes
    from ..publish import PublishRefused, publish

    from huggingface_hub.errors import HfHubHTTPError

    try:
        plan = publish(args.dataset, args.repo_id, private=args.private, revision=args.revision,
                       dry_run=args.dry_run)
    except (PublishRefused, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (HfHubHTTPError, OSError) as exc:  # network, offline mode, auth, permissions
        print(f"error: upload to {args.repo_id} failed: {exc}\n(re-running the command resumes the upload)",
              file=sys.stderr)
        return 2
    verb = "would upload" if args.dry_run else "uploaded"
    print(f"{verb} {len(plan.files)} files ({human_bytes(plan.total_bytes)}) to "
          f"https://huggingface.co/datasets/{plan.repo_id}" + (" (private)" if plan.private else ""))
    if args.dry_run:
        for f in plan.files:
            print(f"  {f}")
    else:
        print(f'load it with: datasets.load_dataset("{plan.repo_id}")')
    return 0
