"""Quiet terminal output for pipeline runs: native chatter goes to a log file, our own output stays.

By default a run's terminal shows the progress bar, the warnings and errors this package logs, and the
summary table. Everything else written to the process's stderr file descriptor (Ray's C++ core worker
notices, TFLite / absl / MediaPipe ``W0000 ...`` lines, Ray's own Python loggers) goes to a log file:
``<dataset>/meta/logs/run-<UTC time>.log`` (a temporary file when the dataset is remote). Ray workers
write their stdout and stderr to ``meta/logs/worker-<host>-<pid>.log`` beside it and are not streamed
to the driver. ``dexdata -v`` turns all of this off (everything on the terminal, as before).

How: file descriptor 2 is pointed at the log file (what C and C++ code writes), while Python's
``sys.stderr`` and the root logger's handlers keep writing to the terminal through a duplicate of the
original descriptor.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..dataset.storage import is_remote

LOG_DIRNAME = "meta/logs"


def log_dir_for(out: str) -> Path | None:
    """Local folder for a run's logs under the dataset, or None for a remote dataset."""
    return None if is_remote(out) else Path(out).resolve() / LOG_DIRNAME


def new_run_log(out: str) -> Path:
    """A fresh driver log file for a run writing the dataset ``out``."""
    folder = log_dir_for(out)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    if folder is None:
        fd, name = tempfile.mkstemp(prefix=f"dexdata-run-{stamp}-", suffix=".log")
        os.close(fd)
        return Path(name)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"run-{stamp}-{os.getpid()}.log"


@contextmanager
def native_stderr_to(path: Path) -> Iterator[None]:
    """Within the block, the stderr descriptor writes to ``path``; ``sys.stderr`` and the root logger's
    handlers still write to the terminal."""
    sys.stderr.flush()
    terminal_fd = os.dup(2)
    terminal = os.fdopen(terminal_fd, "w", buffering=1, encoding=getattr(sys.stderr, "encoding", None))
    log_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    old_stderr = sys.stderr
    retargeted = [h for h in logging.getLogger().handlers
                  if isinstance(h, logging.StreamHandler) and h.stream is old_stderr]
    os.dup2(log_fd, 2)
    os.close(log_fd)
    sys.stderr = terminal
    for h in retargeted:
        h.setStream(terminal)
    try:
        yield
    finally:
        for h in retargeted:
            h.setStream(old_stderr)
        sys.stderr = old_stderr
        terminal.flush()
        os.dup2(terminal_fd, 2)
        terminal.close()


def drop_if_empty(path: Path) -> Path | None:
    """``path``, or None after removing it (and its folder, if left empty) when nothing was logged."""
    if path.stat().st_size:
        return path
    path.unlink()
    try:
        path.parent.rmdir()
    except OSError:  # other logs in it
        pass
    return None


def redirect_worker_output(log_dir: str) -> Path:
    """Point this (worker) process's stdout and stderr descriptors at its own log file in ``log_dir``."""
    folder = Path(log_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"worker-{socket.gethostname()}-{os.getpid()}.log"
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    return path
