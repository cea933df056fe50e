"""A LeRobot v3.0 dataset written with pyarrow + PyAV (lerobot itself does not install beside our pins).

Layout (``formats.md`` §1.6, ``ecosystem.md`` c.2)::

    meta/info.json                      codebase_version v3.0, fps, features (per-dimension names), totals,
                                        path templates, chunks_size, data/video file sizes, splits
    meta/tasks.parquet                  task text (pandas index ``task``) -> task_index
    meta/episodes/chunk-000/file-000.parquet   one row per episode: tasks, length, data / video file
                                        indices, dataset_from/to_index, from/to_timestamp, stats/<f>/<s>
    meta/stats.json                     per feature min, max, mean, std, count, q01, q10, q50, q90, q99
    data/chunk-XXX/file-YYY.parquet     frame rows of many episodes (rolled at data_files_size_in_mb)
    videos/observation.images.main/chunk-XXX/file-YYY.mp4   H.264, one episode per file, from_timestamp 0

Per frame (frames of the contract: ``docs/export.md``):

* ``observation.state`` (136): the stored ``keypoints_cam`` of that frame in that frame's OpenCV camera
  (126, m, 0 where the hand is missing), ``hand_valid`` (2), the camera pose ``T_world_cam`` as
  translation (3, m; 0 where not metric or unknown) and rotation vector (3, rad; 0 where unknown),
  ``camera_valid`` and ``translation_valid`` (1 each).
* ``action`` (132): the 44x3 action to the next stored frame in the convention named in
  ``info.json`` (``relative`` by default, or ``dexwm-official`` with each pair its own window), flattened
  row-major; NaN entries (missing hand, unknown camera, the last frame) written as 0 and flagged in
  ``action.valid`` (4: left-hand rows, right-hand rows, camera rotation row, camera translation row).
* ``timestamp`` = frame_index / fps (what LeRobot's decoder seeks), the dataset's own timestamp in
  ``observation.source_timestamp``.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..actions import compute_actions, consecutive_pairs
from ..dataset.episodes import StoredEpisode
from ..geometry import rotvec_from_matrix
from ..keypoints import CAMERA_POSITION_ROW, CAMERA_ROTATION_ROW, HAND_NAMES, KEYPOINT_NAMES, NUM_KEYPOINTS

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000
DATA_FILES_SIZE_MB = 100
VIDEO_FILES_SIZE_MB = 200
VIDEO_KEY = "observation.images.main"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-000/file-000.parquet"
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
AXES = ("x", "y", "z")
VECTOR_FEATURES = ("observation.state", "action", "action.valid")


def state_names() -> list[str]:
    kp = [f"{h}_{k}_{a}" for h in HAND_NAMES for k in KEYPOINT_NAMES for a in AXES]
    return kp + [f"{h}_hand_valid" for h in HAND_NAMES] + [f"camera_t{a}" for a in AXES] + \
        [f"camera_r{a}" for a in AXES] + ["camera_valid", "translation_valid"]


def action_names() -> list[str]:
    kp = [f"d_{h}_{k}_{a}" for h in HAND_NAMES for k in KEYPOINT_NAMES for a in AXES]
    return kp + [f"d_camera_t{a}" for a in AXES] + [f"d_camera_r{a}" for a in AXES]


ACTION_VALID_NAMES = ["left_hand_rows", "right_hand_rows", "camera_rotation_row", "camera_translation_row"]


def episode_state(ep: StoredEpisode, translation_metric: bool) -> np.ndarray:
    """(N, 136) float32 ``observation.state`` of one episode (module docstring)."""
    n = len(ep)
    kp = np.nan_to_num(np.asarray(ep.keypoints_cam, np.float64).reshape(n, -1), nan=0.0)
    hv = np.asarray(ep.hand_valid, bool)
    cv = np.asarray(ep.camera_valid, bool)
    T = np.asarray(ep.T_world_cam, np.float64)
    t_ok = cv & translation_metric
    trans = np.where(t_ok[:, None], T[:, :3, 3], 0.0)
    rot = np.where(cv[:, None], rotvec_from_matrix(T[:, :3, :3]), 0.0)
    return np.concatenate([kp, hv, trans, rot, cv[:, None], t_ok[:, None]], axis=1).astype(np.float32)


def episode_actions(ep: StoredEpisode, convention: str,
                    translation_metric: bool) -> tuple[np.ndarray, np.ndarray]:
    """(N, 132) float32 ``action`` and (N, 4) float32 ``action.valid`` (module docstring)."""
    n = len(ep)
    out = np.full((n, 44, 3), np.nan, np.float32)
    if n > 1:
        out[:-1] = compute_actions(convention, ep.keypoints_cam, ep.hand_valid, ep.T_world_cam,
                                   ep.camera_valid, consecutive_pairs(n), ep.meta.T_opencv_source,
                                   translation_metric=translation_metric)[:, 0]
    hv = np.asarray(ep.hand_valid, bool)
    cv = np.asarray(ep.camera_valid, bool)
    valid = np.zeros((n, 4), np.float32)
    if n > 1:
        valid[:-1, 0] = hv[:-1, 0] & hv[1:, 0]
        valid[:-1, 1] = hv[:-1, 1] & hv[1:, 1]
        valid[:-1, 2] = cv[:-1] & cv[1:]
        valid[:-1, 3] = valid[:-1, 2] * translation_metric
    if convention == "dexwm-official":  # missing hands are zeros there, not NaN: flag them all the same
        out[valid[:, 0] == 0, :NUM_KEYPOINTS] = np.nan
        out[valid[:, 1] == 0, NUM_KEYPOINTS:2 * NUM_KEYPOINTS] = np.nan
    out[valid[:, 2] == 0, CAMERA_ROTATION_ROW] = np.nan
    out[valid[:, 3] == 0, CAMERA_POSITION_ROW] = np.nan
    return np.nan_to_num(out.reshape(n, -1), nan=0.0), valid


def feature_stats(values: np.ndarray) -> dict:
    """LeRobot per-feature statistics of (N, D) values (lists per dimension)."""
    v = np.asarray(values, np.float64).reshape(len(values), -1)
    stats = {"min": v.min(0), "max": v.max(0), "mean": v.mean(0), "std": v.std(0),
             "count": np.array([len(v)])}
    for q in QUANTILES:
        stats[f"q{int(round(q * 100)):02d}"] = np.quantile(v, q, axis=0)
    return {k: np.asarray(s).tolist() for k, s in stats.items()}


def aggregate_stats(per_episode: list[dict]) -> dict:
    """Count-weighted aggregation (LeRobot ``aggregate_stats``): exact min / max / mean / std;
    quantiles as the count-weighted mean of the episodes' quantiles (an approximation, as there)."""
    counts = np.array([s["count"][0] for s in per_episode], np.float64)
    w = counts / counts.sum()
    means = np.array([s["mean"] for s in per_episode])
    var = np.array([np.square(s["std"]) for s in per_episode])
    mean = (w[:, None] * means).sum(0)
    total_var = (w[:, None] * (var + np.square(means - mean))).sum(0)
    out = {"min": np.min([s["min"] for s in per_episode], 0).tolist(),
           "max": np.max([s["max"] for s in per_episode], 0).tolist(),
           "mean": mean.tolist(), "std": np.sqrt(total_var).tolist(), "count": [int(counts.sum())]}
    for key in per_episode[0]:
        if key.startswith("q"):
            out[key] = (w[:, None] * np.array([s[key] for s in per_episode])).sum(0).tolist()
    return out


def frame_table(ep: StoredEpisode, fps: float, convention: str, translation_metric: bool) -> pa.Table:
    """The episode's frame rows without the dataset-wide indices (added at finalize)."""
    n = len(ep)
    state = episode_state(ep, translation_metric)
    action, valid = episode_actions(ep, convention, translation_metric)

    def fixed(a: np.ndarray) -> pa.FixedSizeListArray:
        return pa.FixedSizeListArray.from_arrays(pa.array(a.reshape(-1), pa.float32()), a.shape[1])

    return pa.table({
        "observation.state": fixed(state), "action": fixed(action), "action.valid": fixed(valid),
        "observation.source_timestamp": pa.array(ep.timestamp.astype(np.float64)),
        "timestamp": pa.array((np.arange(n) / fps).astype(np.float32)),
        "frame_index": pa.array(np.arange(n, dtype=np.int64)),
    })


def table_stats(table: pa.Table) -> dict:
    """Per-episode stats of every numeric feature of a frame table."""
    out = {}
    for name in (*VECTOR_FEATURES, "timestamp", "frame_index"):
        col = table.column(name).combine_chunks()
        values = (np.asarray(col.flatten()).reshape(len(col), -1) if pa.types.is_fixed_size_list(col.type)
                  else np.asarray(col).reshape(-1, 1))
        out[name] = feature_stats(values)
    return out


def table_to_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def features(fps: float, video_shape: tuple[int, int] | None) -> dict:
    """``info.json`` ``features`` (dtype, shape, names; video info)."""
    def vec(dtype, names):
        return {"dtype": dtype, "shape": [len(names)], "names": names}

    feats = {
        "observation.state": vec("float32", state_names()),
        "action": vec("float32", action_names()),
        "action.valid": vec("float32", ACTION_VALID_NAMES),
        "observation.source_timestamp": {"dtype": "float64", "shape": [1], "names": None},
    }
    if video_shape is not None:
        h, w = video_shape
        feats[VIDEO_KEY] = {
            "dtype": "video", "shape": [h, w, 3], "names": ["height", "width", "channels"],
            "info": {"video.height": h, "video.width": w, "video.codec": "h264", "video.pix_fmt": "yuv420p",
                     "video.is_depth_map": False, "video.fps": fps, "video.channels": 3, "has_audio": False},
        }
    for name, dtype in (("timestamp", "float32"), ("frame_index", "int64"), ("episode_index", "int64"),
                        ("index", "int64"), ("task_index", "int64")):
        feats[name] = {"dtype": dtype, "shape": [1], "names": None}
    return feats


def info_json(fps: float, video_shape, episodes: int, frames: int, tasks: int, robot_type: str,
              convention: str) -> dict:
    return {
        "codebase_version": CODEBASE_VERSION, "robot_type": robot_type, "total_episodes": episodes,
        "total_frames": frames, "total_tasks": tasks, "chunks_size": CHUNKS_SIZE,
        "data_files_size_in_mb": DATA_FILES_SIZE_MB, "video_files_size_in_mb": VIDEO_FILES_SIZE_MB,
        "fps": fps, "splits": {"train": f"0:{episodes}"}, "data_path": DATA_PATH,
        "video_path": VIDEO_PATH if video_shape is not None else None,
        "features": features(fps, video_shape),
        "dexdata": {"action_convention": convention,
                    "frames": "OpenCV camera (x right, y down, z forward), metres, radians; "
                              "see docs/export.md of dexhands-data"},
    }


def episode_meta_row(index: int, marker: dict, data_file: tuple[int, int], start: int, fps: float,
                     with_video: bool) -> dict:
    n = marker["num_frames"]
    row = {"episode_index": index, "tasks": [marker["task"]], "length": n,
           "data/chunk_index": data_file[0], "data/file_index": data_file[1],
           "dataset_from_index": start, "dataset_to_index": start + n,
           "meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0,
           "dexdata/episode_id": marker["episode_id"]}
    if with_video:
        row.update({f"videos/{VIDEO_KEY}/chunk_index": marker["video_file"][0],
                    f"videos/{VIDEO_KEY}/file_index": marker["video_file"][1],
                    f"videos/{VIDEO_KEY}/from_timestamp": 0.0,
                    f"videos/{VIDEO_KEY}/to_timestamp": n / fps})
    for feature, stats in marker["stats"].items():
        for stat, value in stats.items():
            row[f"stats/{feature}/{stat}"] = value
    return row


def task_rows(tasks: list[str]):
    import pandas as pd

    return pd.DataFrame({"task_index": np.arange(len(tasks), dtype=np.int64)},
                        index=pd.Index(tasks, name="task"))


def dumps(value) -> bytes:
    return json.dumps(value, indent=2).encode()
