"""Where a dataset lives: a local folder or any pyarrow filesystem URI (``s3://``, ``gs://``, ``file://``).

Atomic commit: every file is written under a hidden temporary name in its folder
(``.<name>.tmp-<pid>``, which no ``*.parquet`` / ``*.json`` glob matches) and then moved to its
final name. On a local disk the data is fsync'ed and the move is a ``rename`` (atomic). On object
storage a move is copy-then-delete: the final object appears whole when the copy completes (an
object store never exposes a partially written object), and an interrupted upload leaves at most a
hidden temporary object, which is ignored and overwritten by the rerun.

A write that fails (disk full, read-only folder, a file where a folder should be, object store
refusing the request) raises :class:`StorageError` naming the file: the run stops, every shard
committed before stays, and rerunning the same command resumes once the cause is fixed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import pyarrow.fs as pafs


class StorageError(RuntimeError):
    """The dataset folder cannot be written (disk full, read-only, not a folder, permission, network)."""


def is_remote(uri: str) -> bool:
    return "://" in uri and not uri.startswith("file://")


class Storage:
    """A dataset root. Paths given to methods are relative to the root, with ``/`` separators."""

    def __init__(self, root: str | os.PathLike):
        root = os.fspath(root)
        if is_remote(root):
            self.fs, self.base = pafs.FileSystem.from_uri(root)
            self.local = False
        else:
            self.fs = pafs.LocalFileSystem()
            self.base = os.path.abspath(root.removeprefix("file://"))
            self.local = True
        self.uri = root

    def path(self, relpath: str) -> str:
        return f"{self.base.rstrip('/')}/{relpath}"

    def exists(self, relpath: str) -> bool:
        return self.fs.get_file_info(self.path(relpath)).type == pafs.FileType.File

    def size(self, relpath: str) -> int:
        return int(self.fs.get_file_info(self.path(relpath)).size or 0)

    def read_bytes(self, relpath: str) -> bytes:
        with self.fs.open_input_stream(self.path(relpath)) as f:
            return f.read()

    def list_files(self, reldir: str, suffix: str) -> list[str]:
        """Relative paths of files under ``reldir`` (recursive) ending in ``suffix``, hidden names skipped."""
        selector = pafs.FileSelector(self.path(reldir), recursive=True, allow_not_found=True)
        base = self.base.rstrip("/") + "/"
        out = []
        for info in self.fs.get_file_info(selector):
            if info.type == pafs.FileType.File and info.path.endswith(suffix) and not info.base_name.startswith("."):
                out.append(info.path[len(base):] if info.path.startswith(base) else info.path)
        return sorted(out)

    @contextmanager
    def open_atomic(self, relpath: str) -> Iterator[pafs.NativeFile]:
        """A writable stream whose content appears at ``relpath`` only if the block completes."""
        final = self.path(relpath)
        parent, name = final.rsplit("/", 1)
        tmp = f"{parent}/.{name}.tmp-{os.getpid()}"
        try:
            self.fs.create_dir(parent, recursive=True)
            stream = self.fs.open_output_stream(tmp)
        except OSError as exc:
            raise StorageError(f"{final}: cannot write ({exc})") from exc
        try:
            yield stream
            stream.close()
            if self.local:
                fd = os.open(tmp, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            self.fs.move(tmp, final)
        except BaseException as exc:
            for cleanup in (stream.close, lambda: self.fs.delete_file(tmp)):
                try:
                    cleanup()
                except OSError:  # never mask the original error; a hidden temporary is harmless
                    pass
            if isinstance(exc, OSError):
                raise StorageError(f"{final}: cannot write ({exc})") from exc
            raise

    def check_writable(self) -> None:
        """Write and delete a hidden probe file at the root: StorageError before any work is done."""
        probe = f".write-probe-{os.getpid()}"
        self.write_bytes(probe, b"ok")
        try:
            self.fs.delete_file(self.path(probe))
        except OSError as exc:
            raise StorageError(f"{self.path(probe)}: cannot delete ({exc})") from exc

    def delete(self, relpath: str) -> None:
        self.fs.delete_file(self.path(relpath))

    def write_bytes(self, relpath: str, data: bytes) -> None:
        with self.open_atomic(relpath) as f:
            f.write(data)

    def write_text(self, relpath: str, text: str) -> None:
        self.write_bytes(relpath, text.encode())
