"""The export folder: refusal of a foreign non-empty ``--out``, safe names, atomic files, episode markers.

Rules (``docs/export.md``):

* ``--out`` must be missing, empty, or an unfinished / finished export of the same dataset, format and
  options (its ``.dexdata-export/state.json`` says so), which is resumed; anything else is refused
  unless ``overwrite``, which first deletes the folder's contents (never following a symlink out).
* Every path written is built from :func:`safe_component` names and checked to lie inside ``--out``
  (:meth:`ExportDir.path`), so episode ids holding ``/`` or ``..`` cannot escape it.
* A file appears under its final name only once complete (:meth:`ExportDir.atomic`: written under a
  hidden ``.<name>.tmp-<pid>`` and renamed); an episode is exported only once its marker
  ``.dexdata-export/done/<key>.json`` exists (written after all its files). A rerun skips marked
  episodes and rewrites the others under the same deterministic names, so nothing is duplicated.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

STATE_DIR = ".dexdata-export"
STATE_FILE = f"{STATE_DIR}/state.json"
DONE_DIR = f"{STATE_DIR}/done"

_UNSAFE = re.compile(r"[^A-Za-z0-9_.:+-]+")


class ExportDirError(ValueError):
    """``--out`` cannot be used (foreign content without ``--overwrite``, a file, a path escaping it)."""


def safe_component(text: str, fallback: str = "unnamed") -> str:
    """One path component from arbitrary text: runs of characters outside ``[A-Za-z0-9_.:+-]`` (``/``
    and ``\\`` included) and runs of dots become ``_``; leading dots are dropped (no ``.``, ``..`` or
    hidden names)."""
    name = re.sub(r"\.{2,}", "_", _UNSAFE.sub("_", str(text))).strip("_").lstrip(".")
    return name[:120] or fallback


def marker_key(episode_id: str) -> str:
    """A file name unique per episode id: its safe form plus a short hash of the exact id."""
    digest = hashlib.sha1(episode_id.encode()).hexdigest()[:10]
    return f"{safe_component(episode_id)[:80]}-{digest}"


class ExportDir:
    """The ``--out`` folder of one export. Relative paths use ``/``."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(os.path.abspath(os.fspath(root)))

    def path(self, relpath: str) -> Path:
        """``root / relpath``, refusing anything that would lie outside the root."""
        full = Path(os.path.normpath(self.root / relpath))
        if full == self.root or self.root not in full.parents:
            raise ExportDirError(f"{relpath!r} would be written outside {self.root}")
        return full

    def prepare(self, state: dict, overwrite: bool) -> bool:
        """Make the folder usable for an export described by ``state``; True when it resumes one."""
        if self.root.exists() and not self.root.is_dir():
            raise ExportDirError(f"{self.root}: exists and is not a folder")
        entries = list(self.root.iterdir()) if self.root.is_dir() else []
        resumed = False
        if entries and not overwrite:
            previous = self._read_state()
            if previous != state:
                what = "a different export" if previous is not None else "files that are not an export"
                raise ExportDirError(
                    f"{self.root}: not empty (holds {what}); pass --overwrite to replace its contents")
            resumed = True
        elif entries:
            for entry in entries:  # the contents only, links removed rather than followed
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
        self.root.mkdir(parents=True, exist_ok=True)
        self.write_json(STATE_FILE, state)
        return resumed

    def _read_state(self) -> dict | None:
        try:
            return json.loads((self.root / STATE_FILE).read_text())
        except (OSError, ValueError):
            return None

    @contextmanager
    def atomic(self, relpath: str) -> Iterator[Path]:
        """A temporary path to write ``relpath`` to; renamed into place only if the block completes."""
        final = self.path(relpath)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
        try:
            yield tmp
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, final)
        finally:
            if tmp.exists():
                tmp.unlink()

    def write_bytes(self, relpath: str, data: bytes) -> None:
        with self.atomic(relpath) as tmp:
            tmp.write_bytes(data)

    def write_json(self, relpath: str, value) -> None:
        self.write_bytes(relpath, json.dumps(value, indent=2, sort_keys=True, default=str).encode())

    def copy_file(self, source: str | os.PathLike, relpath: str) -> None:
        with self.atomic(relpath) as tmp:
            shutil.copyfile(source, tmp)

    # ------------------------------------------------------------------ episode markers

    def is_done(self, episode_id: str) -> bool:
        return (self.root / DONE_DIR / f"{marker_key(episode_id)}.json").is_file()

    def mark_done(self, episode_id: str, payload: dict) -> None:
        self.write_json(f"{DONE_DIR}/{marker_key(episode_id)}.json", {"episode_id": episode_id, **payload})

    def markers(self) -> list[dict]:
        """Every episode marker, sorted by episode id."""
        folder = self.root / DONE_DIR
        out = [json.loads(p.read_text()) for p in folder.glob("*.json")] if folder.is_dir() else []
        return sorted(out, key=lambda m: m["episode_id"])

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file() and not p.is_symlink())
