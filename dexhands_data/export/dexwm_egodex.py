"""Human episodes -> the EgoDex layout the released DexWM ``datasets/egodex.py`` reads unmodified.

``<split>/<task>/<i>.hdf5`` + ``<i>.mp4`` with (frames: ``docs/export.md``):

* ``transforms/camera`` (N, 4, 4) float32: camera-to-world **in the source's own camera axes**,
  ``T_world_src = T_world_cam @ T_opencv_source`` (undoing the recorded axis change), metres. Where the
  dataset's camera translation is not metric (``translation_metric`` false, e.g. VO) the translation is
  written as zero and the rotation kept: the released code's actions on the export then equal the
  rotation-only ``dexwm-official`` variant, and its translation rows are the documented exception.
* ``transforms/<side><Joint>`` (N, 4, 4) float32 for the 21 joints per hand the released code reads
  (``JOINTS_21``): translation = the keypoint in that world, ``T_world_cam' @ kp_cam`` with the same
  (possibly rotation-only) world, so the keypoints in every camera are exactly the stored ones;
  rotation identity (the dataset stores no joint orientations; the released code reads none).
* ``confidences/<side><Joint>`` (N,) float32: ``keypoint_conf``, 0 where the hand is missing.
* ``camera/intrinsic`` (3, 3) float32: K on the pixel grid of the written video.
* attributes: ``llm_description`` / ``description`` = the task text (the released code's language),
  ``task`` = the task folder, ``dexdata_*`` = provenance and the exceptions below.

**Missing data** (the released code has no missing-hand or invalid-camera handling, so these windows
are the documented exceptions to parity): a hand missing in a frame is held at its nearest valid
world position (confidence 0); a hand never seen in the episode is parked 1 m below and 5 cm in front
of the first camera (finite, outside every view unless the head pitches down by ~45 deg or more); a
frame whose camera is invalid takes the nearest valid camera pose (identity when none is valid).

**Task folder and index**: EgoDex episodes keep their task folder (the middle part of their id);
other episodes use a slug of their task text, or ``untasked`` without one. Indices are 0, 1, ... per
``<split>/<task>`` in episode-id order, deterministic, so a rerun writes the same names.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import h5py
import numpy as np

from ..dataset.episodes import StoredEpisode
from ..geometry import Intrinsics
from ..keypoints import NUM_HANDS
from ..sources.egodex import JOINTS_21, SIDES, joint_name
from .outdir import safe_component

#: Where a hand never seen in an episode is parked, in the first frame's OpenCV camera (m).
PARKED_HAND_CAM = np.array([0.0, 1.0, 0.05])
UNTASKED = "untasked"


@dataclass
class EgoDexArrays:
    """What one exported HDF5 holds (float64 here, float32 on disk). N = stored frames.

    T_world_src (N, 4, 4) camera-to-world in the source's camera axes; joints_world (N, 2, 21, 3) m;
    confidence (N, 2, 21) in [0, 1]; exceptions: counts of the frames written by the missing-data rules.
    """

    T_world_src: np.ndarray
    joints_world: np.ndarray
    confidence: np.ndarray
    exceptions: dict = field(default_factory=dict)


def _nearest_valid(valid: np.ndarray) -> np.ndarray:
    """For every frame, the index of the nearest frame with ``valid`` (earlier one on ties); -1 if none."""
    idx = np.flatnonzero(valid)
    n = valid.shape[0]
    if idx.size == 0:
        return np.full(n, -1)
    pos = np.clip(np.searchsorted(idx, np.arange(n)), 0, idx.size - 1)
    before = idx[np.maximum(pos - 1, 0)]
    after = idx[pos]
    frames = np.arange(n)
    return np.where(np.abs(frames - before) <= np.abs(after - frames), before, after)


def egodex_arrays(ep: StoredEpisode, translation_metric: bool) -> EgoDexArrays:
    """The HDF5 arrays of ``ep`` (needs keypoints_cam, hand_valid, keypoint_conf, T_world_cam,
    camera_valid) under the rules of the module docstring."""
    T = np.asarray(ep.T_world_cam, dtype=np.float64).copy()
    cv = np.asarray(ep.camera_valid, bool)
    exceptions = {"invalid_camera_frames": int(np.sum(~cv)),
                  "translation_masked": not translation_metric,
                  "missing_hand_frames": [0] * NUM_HANDS, "never_seen_hands": []}
    near = _nearest_valid(cv)
    T = np.where((near >= 0)[:, None, None], T[np.maximum(near, 0)], np.eye(4))
    if not translation_metric:
        T[:, :3, 3] = 0.0
    kp = np.asarray(ep.keypoints_cam, dtype=np.float64)
    hv = np.asarray(ep.hand_valid, bool)
    world = np.einsum("nij,nhkj->nhki", T[:, :3, :3], kp) + T[:, None, None, :3, 3]
    for h in range(NUM_HANDS):
        near_h = _nearest_valid(hv[:, h])
        exceptions["missing_hand_frames"][h] = int(np.sum(~hv[:, h]))
        if near_h[0] < 0:
            exceptions["never_seen_hands"].append(SIDES[h])
            world[:, h] = T[0, :3, :3] @ PARKED_HAND_CAM + T[0, :3, 3]
        else:
            world[:, h] = world[near_h, h]
    conf = np.where(hv[:, :, None], np.nan_to_num(np.asarray(ep.keypoint_conf, np.float64)), 0.0)
    T_src = T @ np.asarray(ep.meta.T_opencv_source, dtype=np.float64)
    return EgoDexArrays(T_src, world, np.clip(conf, 0.0, 1.0), exceptions)


def write_egodex_hdf5(path, arrays: EgoDexArrays, K: Intrinsics, task: str | None, task_folder: str,
                      provenance: dict) -> None:
    """Write one EgoDex-layout HDF5 (see the module docstring)."""
    n = arrays.T_world_src.shape[0]
    eye = np.tile(np.eye(4, dtype=np.float32), (n, 1, 1))
    with h5py.File(path, "w") as f:
        tr = f.create_group("transforms")
        tr.create_dataset("camera", data=arrays.T_world_src.astype(np.float32))
        conf = f.create_group("confidences")
        for h, side in enumerate(SIDES):
            for k, joint in enumerate(JOINTS_21):
                T = eye.copy()
                T[:, :3, 3] = arrays.joints_world[:, h, k]
                tr.create_dataset(joint_name(side, joint), data=T)
                c = arrays.confidence[:, h, k].astype(np.float32)
                conf.create_dataset(joint_name(side, joint), data=c)
        f.create_group("camera").create_dataset("intrinsic", data=K.K.astype(np.float32))
        text = task or task_folder.replace("_", " ")
        f.attrs["llm_description"] = text
        f.attrs["description"] = text
        f.attrs["llm_type"] = "single"
        f.attrs["task"] = task_folder
        for key, value in provenance.items():
            f.attrs[f"dexdata_{key}"] = value if isinstance(value, str) else json.dumps(value, default=str)
        f.attrs["dexdata_exceptions"] = json.dumps(arrays.exceptions)


def task_slug(task: str | None) -> str:
    if not task:
        return UNTASKED
    slug = re.sub(r"[^a-z0-9]+", "_", task.lower()).strip("_")[:60].strip("_")
    return slug or UNTASKED


def plan_human(rows: list[dict]) -> dict[str, str]:
    """Episode id -> ``<split>/<task>/<i>`` (no suffix) for the ok human rows (module docstring rules)."""
    out: dict[str, str] = {}
    counters: dict[tuple[str, str], int] = {}
    for row in sorted(rows, key=lambda r: r["episode_id"]):
        eid = row["episode_id"]
        parts = eid.split("/")
        if row.get("source") == "egodex" and len(parts) == 3:
            folder = safe_component(parts[1], UNTASKED)
        else:
            folder = task_slug(row.get("task"))
        split = safe_component(row.get("split") or "train", "train")
        i = counters.get((split, folder), 0)
        counters[(split, folder)] = i + 1
        out[eid] = f"{split}/{folder}/{i}"
    return out
