"""Where a written dataset lives: a local folder or a Hub dataset repo, and the local path of one of
its files.

``datasets.load_dataset(name)`` resolves a bare name to ``./name`` if that folder exists, and
otherwise to the Hub (see ``ecosystem.md`` a.6). :func:`resolve` removes the ambiguity: an argument
that looks like a path (exists, starts with ``.``, ``/`` or ``~``, or has no ``org/`` part) is only
ever a local folder, and a missing folder is an error; only ``org/name`` that is not a local folder
is a Hub repo.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class DatasetLocation:
    """Where a dataset lives: a local folder (``path``) or a Hub dataset repo (``repo_id``)."""

    path: Path | None = None
    repo_id: str | None = None
    revision: str | None = None

    @property
    def is_local(self) -> bool:
        return self.path is not None

    def __str__(self) -> str:
        return str(self.path) if self.path is not None else f"hf://datasets/{self.repo_id}"


def is_hub_id(path_or_repo: str | os.PathLike) -> bool:
    """Whether :func:`resolve` takes ``path_or_repo`` for a Hub repo id (a string ``org/name`` that is
    not a local path)."""
    text = os.fspath(path_or_repo)
    return (isinstance(path_or_repo, str) and not Path(text).expanduser().exists()
            and not text.startswith((".", "/", "~")) and bool(_REPO_ID.match(text)))


def resolve(path_or_repo: str | os.PathLike, revision: str | None = None) -> DatasetLocation:
    """Decide whether ``path_or_repo`` is a local dataset folder or a Hub repo id.

    Raises ``FileNotFoundError`` for a path-like argument whose folder does not exist (instead of
    letting ``datasets`` fall back to the Hub or to a cached copy of a same-named dataset).
    """
    text = os.fspath(path_or_repo)
    path = Path(text).expanduser()
    if path.is_dir():
        return DatasetLocation(path=path.resolve())
    if path.exists():
        raise NotADirectoryError(f"{text}: not a dataset folder")
    pathlike = isinstance(path_or_repo, os.PathLike) or text.startswith((".", "/", "~"))
    if pathlike or not _REPO_ID.match(text):
        raise FileNotFoundError(
            f"{text}: no such dataset folder (relative to {Path.cwd()}); for a Hub dataset pass 'org/name'"
        )
    return DatasetLocation(repo_id=text, revision=revision)


def meta_file(path_or_repo: str | os.PathLike, relpath: str, revision: str | None = None) -> Path:
    """Local path of a metadata file (``meta/...``) of the dataset, downloading it for a Hub repo."""
    loc = resolve(path_or_repo, revision)
    if loc.is_local:
        path = loc.path / relpath
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing (is the dataset finalised?)")
        return path
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(loc.repo_id, relpath, repo_type="dataset", revision=loc.revision))
