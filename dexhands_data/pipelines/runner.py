"""Generic Ray Data runner: episode references in, Parquet shards and metadata out.

A manifest of :class:`ShardTask` s (paths and small metadata, never frames) travels through Ray
Data; a callable class (:class:`ShardWorker`) builds the stage processor once per actor, processes
the episodes of a shard, writes the shard atomically and returns a small summary row. The driver
streams those rows into a progress bar, then merges the shard markers into ``meta/``. A rerun
skips shards whose marker exists (``retry_failed`` redoes shards holding failed episodes).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import resource
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Protocol

import pyarrow as pa

from ..records import EpisodeData, EpisodeError, EpisodeRef
from ..dataset.storage import is_remote
from ..dataset.writer import DatasetWriter, FailedEpisode
from .run_log import drop_if_empty, log_dir_for, native_stderr_to, new_run_log, redirect_worker_output
from .sharding import ShardTask, config_hash, plan_shards

log = logging.getLogger(__name__)


class EpisodeProcessor(Protocol):
    """A stage processor: built once per worker with keyword arguments, called per episode."""

    def config(self) -> dict: ...

    def __call__(self, ref: EpisodeRef) -> EpisodeData: ...


@dataclass
class RunConfig:
    """How to run: output folder, parallelism and cluster.

    ``executor="ray"`` (default) runs the shards through Ray Data actors (local ``ray.init`` or
    ``ray_address`` for a cluster); ``"local"`` runs them in this process (debugging, tests of logic).
    ``recipe``: the ``--recipe`` file the options came from (path, command, options), recorded in
    ``meta/info.json`` and not hashed.
    ``verbose=False`` (default) keeps the terminal to the progress bar, our warnings and the summary
    (``run_log.py``: Ray's and MediaPipe's output go to log files under ``meta/logs/``).
    """

    out: str
    workers: int = 1
    ray_address: str | None = None
    episodes_per_shard: int = 1
    retry_failed: bool = False
    show_progress: bool = True
    num_gpus_per_worker: float = 0.0
    executor: str = "ray"
    recipe: dict | None = None
    verbose: bool = False


@dataclass
class EpisodeOutcome:
    episode_id: str
    status: str
    error: str | None
    frames: int
    seconds: float
    intrinsics_source: str | None = None


PRIOR_INTRINSICS = ("fov_prior", "default")

@dataclass
class RunSummary:
    """What a run did: per-episode outcomes of this run plus shards skipped as already finished."""

    outcomes: list[EpisodeOutcome] = field(default_factory=list)
    skipped_shards: int = 0
    skipped_episodes: int = 0
    wall_seconds: float = 0.0
    dataset_failed_total: int = 0
    peak_worker_rss_mb: float = 0.0
    log_path: str | None = None

    @property
    def failed(self) -> int:
        return sum(o.status != "ok" for o in self.outcomes)

    @property
    def frames(self) -> int:
        return sum(o.frames for o in self.outcomes)

    @property
    def on_prior(self) -> list[str]:
        """Episodes whose intrinsics stayed a guess (field-of-view prior or default): focal not known."""
        return sorted(o.episode_id for o in self.outcomes if o.intrinsics_source in PRIOR_INTRINSICS)

    @property
    def exit_code(self) -> int:
        """0 when every episode of the dataset is ok; 1 when any episode failed."""
        return 1 if (self.failed or self.dataset_failed_total) else 0

    def print_table(self) -> None:
        from rich.console import Console
        from rich.table import Table

        table = Table(title="dexdata run summary")
        for col in ("episode", "status", "frames", "fps", "reason"):
            table.add_column(col, overflow="fold")
        for o in sorted(self.outcomes, key=lambda o: o.episode_id):
            fps = f"{o.frames / o.seconds:.1f}" if o.seconds > 0 and o.frames else "-"
            style = None if o.status == "ok" else "red"
            note = o.error or ""
            if o.status == "ok" and o.intrinsics_source in PRIOR_INTRINSICS:
                note, style = f"focal guessed ({o.intrinsics_source})", "yellow"
            table.add_row(o.episode_id, o.status, str(o.frames), fps, note, style=style)
        console = Console(stderr=True)
        console.print(table)
        if self.on_prior:
            console.print(f"[bold yellow]WARNING: {len(self.on_prior)} episode(s) ran on an intrinsics prior "
                          "(focal length guessed, not self-calibrated): hand depth and camera rotation "
                          "scale with that guess; give an intrinsics sidecar (docs/camera.md)[/bold yellow]")
        rate = self.frames / self.wall_seconds if self.wall_seconds > 0 else 0.0
        print(
            f"processed {len(self.outcomes)} episodes ({self.failed} failed), {self.frames} frames in "
            f"{self.wall_seconds:.1f} s ({rate:.1f} frames/s); skipped {self.skipped_episodes} episodes "
            f"in {self.skipped_shards} finished shards; failed episodes in the dataset: {self.dataset_failed_total}; "
            f"peak worker memory {self.peak_worker_rss_mb:.0f} MB",
            file=sys.stderr,
        )
        if self.log_path:
            print(f"Ray / MediaPipe output of this run: {self.log_path} (dexdata -v shows it here)",
                  file=sys.stderr)


class ShardWorker:
    """Ray Data callable class: processes shard tasks and writes each shard (one row per shard out)."""

    def __init__(self, processor_cls: type, processor_kwargs: dict, out: str, cfg_hash: str,
                 log_dir: str | None = None):
        if log_dir is not None:  # a Ray worker of a quiet run: its output goes to its own log file
            redirect_worker_output(log_dir)
        self.processor = processor_cls(**processor_kwargs)
        self.writer = DatasetWriter(out)
        self.cfg_hash = cfg_hash

    def process(self, task: ShardTask) -> dict:
        results: list[EpisodeData | FailedEpisode] = []
        timings: dict[str, float] = {}
        for ref in task.refs:
            t0 = time.perf_counter()
            try:
                results.append(self.processor(ref))
            except EpisodeError as exc:
                results.append(FailedEpisode(ref, str(exc)))
            except Exception as exc:  # noqa: BLE001 - one bad episode must never stop the run
                log.error("episode %s crashed:\n%s", ref.episode_id, traceback.format_exc())
                results.append(FailedEpisode(ref, f"{ref.relpath}: unexpected {type(exc).__name__}: {exc}"))
            timings[ref.episode_id] = time.perf_counter() - t0
        rows = self.writer.write_shard(task.source, task.split, task.name, results, self.cfg_hash)
        for res in results:
            close = getattr(getattr(res, "images", None), "close", None)
            if close:
                close()
        outcomes = [
            {"episode_id": r["episode_id"], "status": r["status"], "error": r["error"],
             "frames": int(r["num_frames"]), "seconds": timings.get(r["episode_id"], 0.0),
             "intrinsics_source": r.get("intrinsics_source")}
            for r in rows
        ]
        _release_memory()
        peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        return {"shard": task.name, "outcomes": json.dumps(outcomes), "peak_rss_mb": peak_rss_mb}

    def __call__(self, batch: pa.Table) -> pa.Table:
        out = [self.process(ShardTask.from_json(t)) for t in batch.column("task").to_pylist()]
        return pa.Table.from_pylist(out)


def _release_memory() -> None:
    """Give freed memory back to the OS between shards, so a long-lived worker's footprint does not
    creep up with the number of episodes it has processed (Arrow's pool and glibc's arenas keep
    freed blocks otherwise)."""
    import ctypes
    import gc

    gc.collect()
    pa.default_memory_pool().release_unused()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def _processor_name(processor_cls: type) -> str:
    return f"{processor_cls.__module__}.{processor_cls.__qualname__}"


def _ray_results(tasks: list[ShardTask], processor_cls: type, processor_kwargs: dict,
                 cfg_hash: str, config: RunConfig):
    import ray
    import ray.data
    from ray.data import ActorPoolStrategy, DataContext

    started = not ray.is_initialized()
    if started:
        # quiet runs: worker output stays in the workers' log files, Ray's INFO lines off the terminal
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": config.verbose,
                                  "logging_level": logging.INFO if config.verbose else logging.WARNING}
        if config.ray_address:
            kwargs["address"] = config.ray_address
        ray.init(**kwargs)
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.execution_options.preserve_order = False
    total_cpus = float(ray.cluster_resources().get("CPU", 1.0))
    # actors x cpus-per-actor must stay below the CPUs Ray has, or read tasks never get scheduled.
    cpus_per_actor = max(0.1, min(1.0, (total_cpus - 0.5) / max(1, config.workers)))
    log_dir = log_dir_for(config.out)
    ds = ray.data.from_items([{"task": t.to_json()} for t in tasks], override_num_blocks=len(tasks))
    ds = ds.map_batches(
        ShardWorker,
        fn_constructor_kwargs={"processor_cls": processor_cls, "processor_kwargs": processor_kwargs,
                               "out": config.out if is_remote(config.out) else os.path.abspath(config.out),
                               "cfg_hash": cfg_hash,
                               "log_dir": None if config.verbose or log_dir is None else str(log_dir)},
        compute=ActorPoolStrategy(size=max(1, min(config.workers, len(tasks)))),
        batch_size=1,
        batch_format="pyarrow",
        num_cpus=cpus_per_actor,
        num_gpus=config.num_gpus_per_worker or None,
    )
    try:
        yield from ds.iter_rows()
    finally:
        if started:  # inside the run's log redirection, so that shutdown notices land in the log too
            ray.shutdown()


def _local_results(tasks: list[ShardTask], processor_cls: type, processor_kwargs: dict,
                   cfg_hash: str, config: RunConfig):
    worker = ShardWorker(processor_cls, processor_kwargs, config.out, cfg_hash)
    for task in tasks:
        yield worker.process(task)


def run_pipeline(refs: list[EpisodeRef], processor_cls: type[EpisodeProcessor], processor_kwargs: dict,
                 config: RunConfig, recipe_sources: list[str] | None = None) -> RunSummary:
    """Process ``refs`` into the dataset at ``config.out``, resuming finished shards, then finalise meta/."""
    from tqdm import tqdm

    t_start = time.perf_counter()
    writer = DatasetWriter(config.out)
    cfg = {"processor": _processor_name(processor_cls), "kwargs": processor_kwargs}
    cfg_hash = config_hash(cfg["processor"], processor_kwargs)
    summary = RunSummary()
    todo: list[ShardTask] = []
    for task in plan_shards(refs, config.episodes_per_shard):
        marker = writer.read_marker(task.source, task.split, task.name)
        redo = marker is None or (config.retry_failed and any(r["status"] != "ok" for r in marker["episodes"]))
        if redo:
            todo.append(task)
        else:
            summary.skipped_shards += 1
            summary.skipped_episodes += len(task.refs)
    if todo:
        writer.storage.check_writable()  # a read-only or full output fails now, not after hours of decoding
        run = _ray_results if config.executor == "ray" else _local_results
        n_episodes = sum(len(t.refs) for t in todo)
        if config.executor == "ray":
            # Ray Data binds its console log handler to sys.stderr when first imported: import it before
            # the redirect, so that its notices follow the stderr descriptor into the run log
            import ray.data  # noqa: F401
        log_path = None if config.verbose else new_run_log(config.out)
        quiet = native_stderr_to(log_path) if log_path else contextlib.nullcontext()
        with quiet, tqdm(total=n_episodes, unit="ep", desc="episodes", disable=not config.show_progress,
                         dynamic_ncols=True) as bar:
            for row in run(todo, processor_cls, processor_kwargs, cfg_hash, config):
                summary.peak_worker_rss_mb = max(summary.peak_worker_rss_mb, float(row["peak_rss_mb"]))
                for o in json.loads(row["outcomes"]):
                    summary.outcomes.append(EpisodeOutcome(**o))
                    bar.update(1)
                elapsed = time.perf_counter() - t_start
                bar.set_postfix(frames=summary.frames, fps=f"{summary.frames / max(elapsed, 1e-9):.1f}",
                                failed=summary.failed)
        if log_path is not None and (kept := drop_if_empty(log_path)) is not None:
            summary.log_path = str(kept)
    sources = recipe_sources or sorted({r.source for r in refs})
    recorded = {**cfg, "config_hash": cfg_hash, **({"recipe": config.recipe} if config.recipe else {})}
    info = writer.finalize({s: recorded for s in sources})
    summary.dataset_failed_total = int(info["total_failed"])
    summary.wall_seconds = time.perf_counter() - t_start
    return summary
