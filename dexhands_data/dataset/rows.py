"""Assembly of one finished episode (:class:`EpisodeData`) into frame rows (Arrow) and its episode row.

This is where the contract's invariants are enforced before anything is written: shapes,
strictly increasing timestamps, NaN exactly where validity flags say missing, rigid poses.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa

from .._version import __version__
from ..actions import relative_actions
from ..records import EpisodeData, EpisodeError
from ..schema import arrow_schema, column_spec, fixed_list_array


def _check(ep: EpisodeData) -> None:
    n = len(ep)
    where = ep.ref.relpath
    if n == 0:
        raise EpisodeError(f"{where}: no frames")
    shapes = {
        "keypoints_cam": (ep.hands.keypoints_cam, (n, 2, 21, 3)),
        "keypoints_2d": (ep.hands.keypoints_2d, (n, 2, 21, 2)),
        "hand_valid": (ep.hands.valid, (n, 2)),
        "keypoint_conf": (ep.hands.confidence, (n, 2, 21)),
        "T_world_cam": (ep.camera.T_world_cam, (n, 4, 4)),
        "camera_valid": (ep.camera.valid, (n,)),
    }
    for name, (arr, shape) in shapes.items():
        if np.shape(arr) != shape:
            raise EpisodeError(f"{where}: {name} has shape {np.shape(arr)}, expected {shape}")
    if not np.all(np.isfinite(ep.timestamps)) or np.any(np.diff(ep.timestamps) <= 0):
        raise EpisodeError(f"{where}: timestamps are not finite and strictly increasing")
    valid = np.asarray(ep.hands.valid, bool)
    kp_ok = np.isfinite(ep.hands.keypoints_cam).all(axis=(2, 3)) & np.isfinite(ep.hands.keypoints_2d).all(axis=(2, 3))
    if np.any(valid & ~kp_ok):
        f, h = np.argwhere(valid & ~kp_ok)[0]
        raise EpisodeError(f"{where}: frame {f} hand {h} is marked valid but has NaN/inf keypoints")
    T = ep.camera.T_world_cam[np.asarray(ep.camera.valid, bool)]
    if T.size and (not np.all(np.isfinite(T)) or not np.allclose(T[:, :3, :3] @ np.swapaxes(T[:, :3, :3], 1, 2), np.eye(3), atol=1e-4)):
        raise EpisodeError(f"{where}: a valid camera pose is not a finite rigid transform")
    if ep.images is not None and len(ep.images) != n:
        raise EpisodeError(f"{where}: {len(ep.images)} images for {n} frames")


def frame_columns(ep: EpisodeData) -> dict[str, np.ndarray]:
    """Validated per-frame arrays of one episode (everything but the images), incl. the ``action``
    column: a convenience copy of the ``relative`` actions to the next frame (all NaN on the last
    frame; NaN wherever :func:`~dexhands_data.actions.action_mask` masks, so the camera-position row
    is NaN for non-metric translation). The loader recomputes actions from the state columns."""
    _check(ep)
    n = len(ep)
    valid = np.asarray(ep.hands.valid, bool)
    kp_cam = np.where(valid[:, :, None, None], ep.hands.keypoints_cam, np.nan).astype(np.float32)
    action = np.full((n, 44, 3), np.nan, np.float32)
    if n > 1:
        action[:-1] = relative_actions(kp_cam, valid, ep.camera.T_world_cam, ep.camera.valid,
                                       translation_metric=bool(ep.camera.translation_metric))
    return {
        "frame_index": np.arange(n, dtype=np.int32),
        "source_frame_index": np.asarray(ep.source_frame_index, dtype=np.int32),
        "timestamp": np.asarray(ep.timestamps, dtype=np.float64),
        "keypoints_cam": kp_cam,
        "keypoints_2d": np.where(valid[:, :, None, None], ep.hands.keypoints_2d, np.nan).astype(np.float32),
        "hand_valid": valid,
        "keypoint_conf": np.where(valid[:, :, None], ep.hands.confidence, 0.0).astype(np.float32),
        "hand_score": np.where(valid, ep.hands.score, 0.0).astype(np.float32),
        "lift_residual_px": np.asarray(ep.hands.lift_residual_px, np.float32),
        "T_world_cam": np.asarray(ep.camera.T_world_cam, np.float64),
        "camera_valid": np.asarray(ep.camera.valid, bool),
        "gripper": None if ep.gripper is None else np.asarray(ep.gripper, np.float32),
        "action": action,
    }


def frame_table(ep: EpisodeData, columns: dict[str, np.ndarray] | None = None,
                start: int = 0, stop: int | None = None) -> pa.Table:
    """Frame rows [start, stop) of one episode, per ``schemas/v2/frame.json``.

    Slicing lets the writer stream long episodes in row groups (images are read from
    ``ep.images`` only for the slice), so memory does not grow with the episode's length.
    """
    cols = frame_columns(ep) if columns is None else columns
    stop = len(ep) if stop is None else stop
    n = stop - start
    image_type = arrow_schema().field("image").type
    images = (pa.array([{"bytes": ep.images[i], "path": None} for i in range(start, stop)], type=image_type)
              if ep.images is not None else pa.nulls(n, image_type))
    gripper = cols["gripper"]
    data = {
        "episode_id": pa.array([ep.ref.episode_id] * n, pa.string()),
        "source": pa.array([ep.ref.source] * n, pa.string()),
        "embodiment": pa.array([ep.embodiment] * n, pa.string()),
        "frame_index": pa.array(cols["frame_index"][start:stop]),
        "source_frame_index": pa.array(cols["source_frame_index"][start:stop]),
        "timestamp": pa.array(cols["timestamp"][start:stop]),
        "image": images,
        "camera_valid": pa.array(cols["camera_valid"][start:stop]),
        "gripper": pa.nulls(n, pa.float32()) if gripper is None else pa.array(gripper[start:stop]),
    }
    for name in ("keypoints_cam", "keypoints_2d", "hand_valid", "keypoint_conf", "hand_score",
                 "lift_residual_px", "T_world_cam", "action"):
        spec = column_spec("frame", name)
        data[name] = fixed_list_array(cols[name][start:stop], spec.dtype, spec.shape)
    return pa.Table.from_pydict(data, schema=arrow_schema())


def episode_row(ep: EpisodeData, config_hash: str) -> dict:
    """The ``meta/episodes.parquet`` row of a finished episode (shard and row range filled by the writer)."""
    K = ep.intrinsics
    processing = {"hands": ep.hands.processing, "camera": ep.camera.processing}
    return {
        "episode_id": ep.ref.episode_id,
        "source": ep.ref.source,
        "split": ep.ref.split,
        "status": "ok",
        "error": None,
        "source_path": ep.ref.relpath,
        "shard": None,
        "row_start": None,
        "row_end": None,
        "num_frames": len(ep),
        "fps": float(ep.fps),
        "width": int(K.width),
        "height": int(K.height),
        "intrinsics": [float(v) for v in K.to_list()],
        "intrinsics_source": K.source,
        "distortion": None if K.distortion is None else K.distortion.to_list(),
        "T_opencv_source": np.asarray(ep.T_opencv_source, dtype=np.float64).tolist(),
        "world_frame": ep.camera.world_frame,
        "translation_metric": bool(ep.camera.translation_metric),
        "camera_static": bool(ep.camera.static),
        "task": ep.task,
        "hand_estimator": ep.hands.estimator,
        "camera_estimator": ep.camera.estimator,
        "config_hash": config_hash,
        "pipeline_version": __version__,
        "processing": json.dumps(processing, sort_keys=True, default=str),
        "extra": json.dumps(ep.extra, sort_keys=True, default=str),
    }


def failed_episode_row(ref, error: str, config_hash: str) -> dict:
    """The episode row of an episode that failed, with its reason."""
    return {
        "episode_id": ref.episode_id, "source": ref.source, "split": ref.split, "status": "failed",
        "error": error, "source_path": ref.relpath, "shard": None, "row_start": None, "row_end": None,
        "num_frames": 0, "fps": None, "width": None, "height": None, "intrinsics": None,
        "intrinsics_source": None, "distortion": None, "T_opencv_source": None, "world_frame": None, "translation_metric": None,
        "camera_static": None, "task": None, "hand_estimator": None, "camera_estimator": None,
        "config_hash": config_hash, "pipeline_version": __version__, "processing": None,
        "extra": json.dumps(ref.metadata, sort_keys=True, default=str),
    }
