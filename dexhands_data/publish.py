"""``dexdata publish``: upload a finished dataset folder to a Hugging Face Hub dataset repo.

Refuses a dataset that fails ``dexdata validate``, whose card does not describe every source, or
that has a source whose licence is unknown (a published card must state every source's licence).
Uploads the card, ``data/**`` shards and the ``meta/`` tables (never hidden temporary files or the
per-shard commit markers) with ``HfApi.upload_folder``, which in huggingface_hub 2.x streams large
folders in several commits and resumes an interrupted upload when re-run (already committed files
are skipped, uploaded chunks deduplicated by Xet).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .schema import INFO_PATH

ALLOW_PATTERNS: tuple[str, ...] = ("README.md", "data/**.parquet", "meta/info.json", "meta/stats.json",
                                   "meta/episodes.parquet")
IGNORE_PATTERNS: tuple[str, ...] = (".*", "**/.*", ".cache/**")


class PublishRefused(Exception):
    """The dataset is not fit to publish; ``problems`` says why (each names its file)."""

    def __init__(self, root: Path, problems: list[str]):
        self.problems = problems
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        shown = "\n  ".join(problems[:20]) + more
        super().__init__(f"{root}: refusing to publish, {len(problems)} problem(s):\n  {shown}")


@dataclass
class PublishPlan:
    """What would be uploaded: files relative to ``root`` and their total size in bytes."""

    root: Path
    repo_id: str
    private: bool
    files: list[str] = field(default_factory=list)
    total_bytes: int = 0
    commit_message: str = ""


def upload_files(root: Path) -> list[str]:
    """The files ``upload_folder`` sends with our allow/ignore patterns (the Hub client's own filter)."""
    from huggingface_hub.utils import filter_repo_objects

    rel = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    return list(filter_repo_objects(rel, allow_patterns=list(ALLOW_PATTERNS),
                                    ignore_patterns=list(IGNORE_PATTERNS)))


def card_problems(root: Path) -> list[str]:
    """The card's YAML must have a config for every source with finished episodes, and name its licence."""
    card = root / "README.md"
    info = json.loads((root / INFO_PATH).read_text())
    text = card.read_text()
    if not text.startswith("---"):
        return [f"{card}: no YAML front matter"]
    front = yaml.safe_load(text.split("---")[1]) or {}
    names = {c.get("config_name") for c in front.get("configs", [])}
    problems = []
    for source, summary in info.get("sources", {}).items():
        if summary.get("ok", 0) and source not in names:
            problems.append(f"{card}: no config for source {source!r} "
                            "(the card is stale: re-run the writer's finalize)")
        if summary.get("license", "unknown") in ("unknown", None) or summary["license"] not in text:
            problems.append(f"{card}: licence of source {source!r} not stated")
    if "default" not in names:
        problems.append(f"{card}: no default config")
    return problems


def plan(root: str | Path, repo_id: str, private: bool = False) -> PublishPlan:
    """Validate ``root`` and list what would be uploaded; raises :class:`PublishRefused`."""
    from .dataset.validate import validate_dataset

    root = Path(root).resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such dataset folder")
    report = validate_dataset(root)
    problems = list(report.problems)
    if report.ok:
        problems += card_problems(root)
    if problems:
        raise PublishRefused(root, problems)
    files = upload_files(root)
    total = sum((root / f).stat().st_size for f in files)
    info = json.loads((root / INFO_PATH).read_text())
    message = (f"dexdata publish: {info.get('total_ok', '?')} episodes, "
               f"{info.get('total_frames', '?')} frames, "
               f"sources {', '.join(info.get('sources', {}))}")
    return PublishPlan(root, repo_id, private, files, total, message)


def publish(root: str | Path, repo_id: str, private: bool = False, api=None, revision: str | None = None,
            dry_run: bool = False) -> PublishPlan:
    """Validate, then create the dataset repo (if needed) and upload; returns the plan that was executed.

    ``api``: a ``huggingface_hub.HfApi`` (default: a new one, using the saved token / ``HF_TOKEN``).
    """
    p = plan(root, repo_id, private)
    if dry_run:
        return p
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi()
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    api.upload_folder(
        repo_id=repo_id, repo_type="dataset", folder_path=str(p.root), revision=revision,
        allow_patterns=list(ALLOW_PATTERNS), ignore_patterns=list(IGNORE_PATTERNS),
        commit_message=p.commit_message,
    )
    return p
