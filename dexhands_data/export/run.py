"""``dexdata export``: plan the names, export each ok episode (atomically, resumably), finalize, summarise.

An episode that fails (in the dataset already, or here: no frames, a moving DROID camera, an fps that
differs from the LeRobot dataset's, an unreadable shard) is listed in the summary with its reason and
makes the exit code 1; the other episodes are exported. See :mod:`.outdir` for the folder rules.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..dataset.episodes import StoredEpisode
from ..dataset.reader import dataset_file, episode_from_row, episode_rows, read_rows
from ..records import EpisodeError
from . import FORMATS, lerobot
from .droid_raw import DROID_ROOT, droid_files, plan_droid, write_trajectory
from .dexwm_egodex import egodex_arrays, plan_human, write_egodex_hdf5
from .egodex_camera import camera_mismatch, match_egodex_camera
from .frames import EpisodeFrames, episode_frames, even_crop, write_mp4
from .outdir import ExportDir, marker_key

log = logging.getLogger(__name__)

CONVENTIONS = ("relative", "dexwm-official")
MANIFEST = "dexdata_export.json"
_COLUMNS = ("keypoints_cam", "hand_valid", "keypoint_conf", "T_world_cam", "camera_valid",
            "source_frame_index", "image")


@dataclass
class ExportOptions:
    """One export. ``videos_from``: the input root of the dataset's run (source videos); ``video``:
    write frames at all; ``convention``: the LeRobot ``action`` convention; ``episode_ids``: a subset."""

    dataset: str
    format: str
    out: str
    overwrite: bool = False
    videos_from: str | None = None
    video: bool = True
    match_egodex_camera: bool = False
    convention: str = "relative"
    episode_ids: list[str] | None = None

    def __post_init__(self):
        if self.format not in FORMATS:
            raise ValueError(f"unknown export format {self.format!r}; choose one of {', '.join(FORMATS)}")
        if self.convention not in CONVENTIONS:
            raise ValueError(f"unknown action convention {self.convention!r}; choose one of {CONVENTIONS}")
        if self.match_egodex_camera and self.format != "dexwm-egodex":
            raise ValueError("--match-egodex-camera applies to --format dexwm-egodex only")

    def state(self) -> dict:
        """What must match for ``--out`` to be resumed rather than refused."""
        d = asdict(self)
        d.pop("overwrite")
        d["dataset"] = os.path.abspath(self.dataset)
        d.pop("out")
        return d


@dataclass
class ExportOutcome:
    episode_id: str
    status: str  # exported | skipped (done by an earlier run) | failed
    error: str | None = None
    files: list[str] = field(default_factory=list)
    frames_from: str | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass
class ExportSummary:
    out: str
    format: str
    outcomes: list[ExportOutcome] = field(default_factory=list)
    seconds: float = 0.0
    bytes_written: int = 0
    resumed: bool = False

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def exit_code(self) -> int:
        return 1 if self.count("failed") else 0

    def print_table(self, stream=None) -> None:
        stream = stream or sys.stderr
        done = self.count("exported") + self.count("skipped")
        print(f"export {self.format} -> {self.out}: {self.count('exported')} exported, "
              f"{self.count('skipped')} already done, {self.count('failed')} failed "
              f"({done} episodes in the export; {self.bytes_written / 1e6:.1f} MB written in "
              f"{self.seconds:.1f} s)", file=stream)
        origins = Counter(o.frames_from.split(" /")[0].split(" ")[0] for o in self.outcomes if o.frames_from)
        if origins:
            print("  frames from: " + ", ".join(f"{k} {v}" for k, v in sorted(origins.items())), file=stream)
        for o in self.outcomes:
            for w in o.warnings:
                print(f"  warning {o.episode_id}: {w}", file=stream)
        for o in self.outcomes:
            if o.status == "failed":
                print(f"  FAILED {o.episode_id}: {o.error}", file=stream)


# ----------------------------------------------------------------------------- per-episode exporters


class _Exporter:
    def __init__(self, opts: ExportOptions, out: ExportDir, rows: list[dict]):
        self.opts, self.out, self.rows = opts, out, rows

    def frames(self, ep: StoredEpisode, row: dict) -> EpisodeFrames | None:
        return even_crop(episode_frames(ep, row, self.opts.videos_from)) if self.opts.video else None

    def write_video(self, frames: EpisodeFrames, relpath: str, ep: StoredEpisode) -> None:
        if frames.copyable:
            self.out.copy_file(frames.copyable, relpath)
            return
        with self.out.atomic(relpath) as tmp:
            write_mp4(tmp, frames.iterate(), ep.fps, len(ep))


class EgoDexExporter(_Exporter):
    """Human episodes -> EgoDex layout; DROID episodes -> raw DROID layout under ``droid/``."""

    def __init__(self, opts, out, rows):
        super().__init__(opts, out, rows)
        self.human = plan_human([r for r in rows if r.get("source") != "droid"])
        self.droid = plan_droid([r for r in rows if r.get("source") == "droid"])

    def export(self, ep: StoredEpisode, row: dict) -> dict:
        if row.get("source") == "droid":
            return self._droid(ep, row)
        base = self.human[ep.episode_id]
        frames = self.frames(ep, row)
        warnings = []
        K = frames.intrinsics if frames is not None else ep.intrinsics
        if frames is not None and self.opts.match_egodex_camera:
            frames = match_egodex_camera(frames)
            K = frames.intrinsics
        if K is None:
            raise EpisodeError(f"episode {ep.episode_id}: no intrinsics stored: "
                               "camera/intrinsic cannot be written")
        mismatch = camera_mismatch(K)
        if mismatch:
            warnings.append(f"camera differs from the EgoDex camera the released code hard-codes "
                            f"({mismatch}); its HC targets will be off: use --match-egodex-camera")
        arrays = egodex_arrays(ep, bool(row.get("translation_metric")))
        files = []
        if frames is not None:
            self.write_video(frames, f"{base}.mp4", ep)
            files.append(f"{base}.mp4")
        provenance = {"episode_id": ep.episode_id, "source": row.get("source") or "",
                      "frames": frames.origin if frames is not None else "none",
                      "fps": float(ep.fps)}
        with self.out.atomic(f"{base}.hdf5") as tmp:
            write_egodex_hdf5(tmp, arrays, K, row.get("task"), base.split("/")[1], provenance)
        files.append(f"{base}.hdf5")
        return {"files": files, "frames_from": provenance["frames"], "warnings": warnings,
                "exceptions": arrays.exceptions}

    def _droid(self, ep: StoredEpisode, row: dict) -> dict:
        shard = dataset_file(self.opts.dataset, row["shard"])
        gripper = read_rows(shard, row["row_start"], row["row_end"], ["gripper"]).column("gripper")
        rel = self.droid[ep.episode_id]
        spec = droid_files(ep, row, np.asarray(gripper.to_numpy(zero_copy_only=False), np.float64), rel)
        folder = f"{DROID_ROOT}/{rel}"
        files = []
        frames = self.frames(ep, row)
        if frames is not None:
            rel = f"{folder}/recordings/MP4/{spec['serial']}.mp4"
            self.write_video(frames, rel, ep)
            files.append(rel)
        with self.out.atomic(f"{folder}/trajectory.h5") as tmp:
            write_trajectory(tmp, spec["cartesian"], spec["gripper"], spec["extrinsics"], spec["serial"],
                             row.get("task"))
        self.out.write_json(f"{folder}/{spec['metadata_name']}", spec["metadata"])
        files += [f"{folder}/trajectory.h5", f"{folder}/{spec['metadata_name']}"]
        return {"files": files, "frames_from": frames.origin if frames is not None else "none",
                "warnings": [], "exceptions": {"orientation": spec["metadata"]["dexdata_orientation"]}}

    def finalize(self, markers: list[dict]) -> None:
        self.out.write_json(MANIFEST, {
            "format": "dexwm-egodex", "dataset": os.path.abspath(self.opts.dataset),
            "episodes": [{k: m.get(k) for k in ("episode_id", "files", "frames_from", "exceptions")}
                         for m in markers]})


class LeRobotExporter(_Exporter):
    """Every ok episode -> one LeRobot v3.0 dataset (one fps, one frame grid)."""

    def __init__(self, opts, out, rows):
        super().__init__(opts, out, rows)
        fps = Counter(round(float(r["fps"]), 6) for r in rows if r.get("fps"))
        self.fps = fps.most_common(1)[0][0] if fps else 30.0
        self.order = {r["episode_id"]: i for i, r in enumerate(sorted(rows, key=lambda r: r["episode_id"]))}
        # the video feature's (height, width): fixed by the first episode written (kept across reruns)
        shapes = [tuple(m["video_shape"]) for m in out.markers() if m.get("video_shape")]
        self.video_shape = shapes[0] if shapes else None

    def export(self, ep: StoredEpisode, row: dict) -> dict:
        if abs(float(ep.fps) - self.fps) > 1e-6:
            raise EpisodeError(f"episode {ep.episode_id}: {ep.fps:g} fps differs from the export's "
                               f"{self.fps:g} fps (a LeRobot dataset has one rate): export it separately")
        table = lerobot.frame_table(ep, self.fps, self.opts.convention, bool(row.get("translation_metric")))
        key = marker_key(ep.episode_id)
        staged = f".dexdata-export/frames/{key}.parquet"
        self.out.write_bytes(staged, lerobot.table_to_bytes(table))
        payload = {"num_frames": len(ep), "task": row.get("task") or "", "staged": staged,
                   "stats": lerobot.table_stats(table), "files": [], "warnings": [], "frames_from": None}
        frames = self.frames(ep, row)
        if frames is not None:
            shape = self.video_shape
            if shape is not None and shape != (frames.height, frames.width):
                raise EpisodeError(f"episode {ep.episode_id}: frames are {frames.width}x{frames.height}, the "
                                   f"export's video feature is {shape[1]}x{shape[0]}")
            self.video_shape = (frames.height, frames.width)
            i = self.order[ep.episode_id]
            video_file = (i // lerobot.CHUNKS_SIZE, i % lerobot.CHUNKS_SIZE)
            rel = lerobot.VIDEO_PATH.format(video_key=lerobot.VIDEO_KEY, chunk_index=video_file[0],
                                            file_index=video_file[1])
            if frames.copyable:  # LeRobot needs its own timestamps (i / fps) and H.264: always re-encode
                frames = EpisodeFrames(frames.origin, frames.width, frames.height, frames.intrinsics,
                                       frames.iterate)
            self.write_video(frames, rel, ep)
            payload.update(files=[rel], frames_from=frames.origin, video_file=list(video_file),
                           video_shape=[frames.height, frames.width])
        return payload

    def finalize(self, markers: list[dict]) -> None:
        """Data files (episodes packed up to ``data_files_size_in_mb``), episode rows, tasks, stats and
        info.json, all from the markers: rerunnable, and contiguous indices over the exported episodes."""
        if not markers:
            return
        tasks = sorted({m["task"] for m in markers})
        task_index = {t: i for i, t in enumerate(tasks)}
        with_video = self.opts.video and all(m.get("video_file") for m in markers)
        rows, pending, size, file_no, start = [], [], 0, 0, 0
        limit = lerobot.DATA_FILES_SIZE_MB * 1e6

        def flush():
            nonlocal pending, size, file_no
            if pending:
                rel = lerobot.DATA_PATH.format(chunk_index=file_no // lerobot.CHUNKS_SIZE,
                                               file_index=file_no % lerobot.CHUNKS_SIZE)
                self.out.write_bytes(rel, lerobot.table_to_bytes(pa.concat_tables(pending)))
                pending, size, file_no = [], 0, file_no + 1

        for index, m in enumerate(markers):
            table = pq.read_table(self.out.path(m["staged"]))
            n = table.num_rows
            table = table.append_column("episode_index", pa.array(np.full(n, index, np.int64)))
            table = table.append_column("index", pa.array(np.arange(start, start + n, dtype=np.int64)))
            table = table.append_column("task_index", pa.array(np.full(n, task_index[m["task"]], np.int64)))
            if pending and size + table.nbytes > limit:
                flush()
            data_file = (file_no // lerobot.CHUNKS_SIZE, file_no % lerobot.CHUNKS_SIZE)
            rows.append(lerobot.episode_meta_row(index, m, data_file, start, self.fps, with_video))
            pending.append(table)
            size += table.nbytes
            start += n
        flush()
        self.out.write_bytes(lerobot.EPISODES_PATH, lerobot.table_to_bytes(pa.Table.from_pylist(rows)))
        with self.out.atomic("meta/tasks.parquet") as tmp:
            lerobot.task_rows(tasks).to_parquet(tmp)
        stats = {f: lerobot.aggregate_stats([m["stats"][f] for m in markers]) for f in markers[0]["stats"]}
        self.out.write_bytes("meta/stats.json", lerobot.dumps(stats))
        shape = tuple(markers[0]["video_shape"]) if with_video else None
        robot = "parallel_gripper_pseudo_hand" if {r.get("source") for r in self.rows} == {"droid"} \
            else "human_hands"
        info = lerobot.info_json(self.fps, shape, len(markers), start, len(tasks), robot,
                                 self.opts.convention)
        self.out.write_bytes("meta/info.json", lerobot.dumps(info))


# ----------------------------------------------------------------------------- the run


def run_export(opts: ExportOptions) -> ExportSummary:
    """Export the dataset at ``opts.dataset`` (see the module docstring)."""
    t0 = time.perf_counter()
    all_rows = episode_rows(opts.dataset)
    if opts.episode_ids is not None:
        wanted = set(opts.episode_ids)
        unknown = sorted(wanted - {r["episode_id"] for r in all_rows})
        if unknown:
            raise ValueError(f"{opts.dataset}: no episodes {unknown[:5]} in meta/episodes.parquet")
        all_rows = [r for r in all_rows if r["episode_id"] in wanted]
    out = ExportDir(opts.out)
    dataset_root = Path(opts.dataset).resolve()
    if out.root == dataset_root or dataset_root in out.root.parents:
        raise ValueError(f"{opts.out}: the export folder must not lie inside the dataset {opts.dataset}")
    resumed = out.prepare(opts.state(), opts.overwrite)
    summary = ExportSummary(out=str(out.root), format=opts.format, resumed=resumed)
    ok_rows = [r for r in all_rows if r["status"] == "ok"]
    for r in all_rows:
        if r["status"] != "ok":
            reason = f"failed in the dataset: {r['error']}"
            summary.outcomes.append(ExportOutcome(r["episode_id"], "failed", reason))
    exporter = (EgoDexExporter if opts.format == "dexwm-egodex" else LeRobotExporter)(opts, out, ok_rows)
    before = out.size_bytes() if resumed else 0
    for row in ok_rows:
        eid = row["episode_id"]
        if out.is_done(eid):
            summary.outcomes.append(ExportOutcome(eid, "skipped"))
            continue
        try:
            ep = episode_from_row(opts.dataset, row, [c for c in _COLUMNS if opts.video or c != "image"])
            payload = exporter.export(ep, row)
        except (EpisodeError, ValueError, OSError) as exc:
            log.debug("export of %s failed", eid, exc_info=True)
            summary.outcomes.append(ExportOutcome(eid, "failed", str(exc)))
            continue
        out.mark_done(eid, payload)
        summary.outcomes.append(ExportOutcome(eid, "exported", None, payload["files"],
                                              payload.get("frames_from"), payload.get("warnings", [])))
    exporter.finalize(out.markers())
    summary.bytes_written = out.size_bytes() - before
    summary.seconds = time.perf_counter() - t0
    return summary
