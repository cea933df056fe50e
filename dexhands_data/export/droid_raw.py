"""Parallel-gripper (DROID) episodes -> the raw DROID release layout the released DexWM code reads.

``droid/<lab>/<outcome>/<date>/<time>/`` with (frames: robot base = the dataset's world, metres, rad):

* ``trajectory.h5``: ``observation/robot_state/cartesian_position`` (N, 6) = end-effector position
  (the pseudo-hand's row 0 taken back to the base: ``T_world_cam @ kp_cam[right, 0]``) and its
  orientation as extrinsic-xyz Euler angles; ``observation/robot_state/gripper_position`` (N,) = the
  stored ``gripper``; ``observation/camera_extrinsics/<serial>_left`` (N, 6) and
  ``observation/camera_type/<serial>`` (1 = exterior).
* ``metadata_<uuid>.json``: ``ext1_cam_serial``, ``ext1_cam_extrinsics`` = ``[x, y, z, rx, ry, rz]`` of the
  static ``T_base_cam`` (``from_euler("xyz")``, camera -> base), ``ext1_mp4_path`` = ``left_mp4_path`` =
  ``recordings/MP4/<serial>.mp4`` (so the released code picks this camera), ``current_task``, ``success``.
* ``recordings/MP4/<serial>.mp4``: the stored frames, one per step.

The released code rebuilds its own pseudo-hand from ``cartesian_position[:3]`` and the binarised
gripper (base-XY circles). So parity holds for datasets converted with ``--pseudo-hand
dexwm-official``: their stored circles are exactly that. An ``oriented`` dataset exports the same robot
trajectory (its end-effector orientation is recovered from the circle plane), and the released code
then trains on the *official* pseudo-hand of that trajectory, not on the oriented circles. A
``dexwm-official`` dataset does not store the orientation (its circles ignore it): the Euler angles are
written as 0 and ``metadata.dexdata_orientation`` says so (the released code never reads them).
"""

from __future__ import annotations

import re

import h5py
import numpy as np

from ..dataset.episodes import StoredEpisode, episode_extra
from ..geometry import euler_xyz_from_matrix
from ..keypoints import RIGHT
from ..records import EpisodeError
from .outdir import marker_key, safe_component

DROID_ROOT = "droid"
DEFAULT_SERIAL = "10000001"
#: Angle-major circle rows of the pseudo-hand (droid/pseudo_hand.py): row 1 = angle 0, radius 0;
#: row 5 = angle 72 deg, radius 0.
_ROW_ANGLE0, _ROW_ANGLE72 = 1, 5


def end_effector_pose(ep: StoredEpisode, mode: str | None) -> tuple[np.ndarray, str]:
    """(N, 6) DROID ``cartesian_position`` recovered from the stored pseudo-hand, and how the angles
    were obtained. EpisodeError when the right pseudo-hand is missing in some frame."""
    hv = np.asarray(ep.hand_valid, bool)[:, RIGHT]
    if not hv.all():
        bad = np.flatnonzero(~hv)
        raise EpisodeError(f"episode {ep.episode_id}: the gripper pseudo-hand is missing in {bad.size} "
                           f"frames (first {bad[:5].tolist()}): its end-effector position is unknown there")
    T = np.asarray(ep.T_world_cam, dtype=np.float64)
    kp = np.asarray(ep.keypoints_cam, dtype=np.float64)[:, RIGHT]
    base = np.einsum("nij,nkj->nki", T[:, :3, :3], kp) + T[:, None, :3, 3]
    out = np.zeros((len(ep), 6))
    out[:, :3] = base[:, 0]
    if mode != "oriented":
        return out, f"not stored by the {mode or 'unknown'} pseudo-hand: written as 0"
    u = base[:, _ROW_ANGLE0] - base[:, 0]
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    d = base[:, _ROW_ANGLE72] - base[:, 0]
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    v = d - np.cos(2 * np.pi / 5) * u
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    R = np.stack([u, v, np.cross(u, v)], axis=2)
    out[:, 3:] = euler_xyz_from_matrix(R)
    return out, "recovered from the oriented pseudo-hand's circle plane"


def static_extrinsics(ep: StoredEpisode) -> np.ndarray:
    """The 6-vector of the episode's static camera; EpisodeError for a moving (wrist) camera."""
    T = np.asarray(ep.T_world_cam, dtype=np.float64)
    if not np.all(np.asarray(ep.camera_valid, bool)) or not np.allclose(T, T[0], atol=1e-9):
        raise EpisodeError(f"episode {ep.episode_id}: the camera moves (wrist camera?): the raw layout the "
                           "released code reads has static exterior cameras only")
    return np.concatenate([T[0, :3, 3], euler_xyz_from_matrix(T[0, :3, :3])])


def episode_folder(row: dict, extra: dict) -> str:
    """``<lab>/<outcome>/<date>/<time>`` under :data:`DROID_ROOT`: the raw source's own folder when
    the dataset came from a raw release, else ``dexdata/<outcome>/<date>/<safe id>``."""
    success = extra.get("success")
    outcome = "failure" if success is False else "success"
    rel = row.get("source_path") or ""
    parts = rel.split("/")
    if extra.get("layout") == "raw" and len(parts) == 4 and parts[1] in ("success", "failure"):
        return "/".join(safe_component(p) for p in parts)
    date = str(extra.get("date") or "1970-01-01")
    return f"dexdata/{outcome}/{safe_component(date)}/{safe_component(row['episode_id'])}"


def plan_droid(rows: list[dict]) -> dict[str, str]:
    """Episode id -> its folder under :data:`DROID_ROOT` (:func:`episode_folder`); a folder already
    taken by an earlier id (in id order) gets ``-<hash of the id>`` appended to its last part."""
    out: dict[str, str] = {}
    taken: set[str] = set()
    for row in sorted(rows, key=lambda r: r["episode_id"]):
        folder = episode_folder(row, episode_extra(row))
        if folder in taken:
            folder = f"{folder}-{marker_key(row['episode_id']).rsplit('-', 1)[1]}"
        taken.add(folder)
        out[row["episode_id"]] = folder
    return out


def camera_serial(extra: dict) -> str:
    serial = str(extra.get("camera_serial") or "")
    return serial if re.fullmatch(r"[A-Za-z0-9_-]+", serial) else DEFAULT_SERIAL


def write_trajectory(path, cartesian: np.ndarray, gripper: np.ndarray, extrinsics: np.ndarray, serial: str,
                     task: str | None) -> None:
    n = cartesian.shape[0]
    with h5py.File(path, "w") as h5:
        h5.create_dataset("observation/robot_state/cartesian_position", data=cartesian)
        h5.create_dataset("observation/robot_state/gripper_position", data=gripper.astype(np.float64))
        h5.create_dataset(f"observation/camera_extrinsics/{serial}_left", data=np.tile(extrinsics, (n, 1)))
        h5.create_dataset(f"observation/camera_type/{serial}", data=np.ones(n, np.int64))
        h5.attrs["current_task"] = task or ""


def metadata(row: dict, extra: dict, folder: str, serial: str, extrinsics: np.ndarray, n: int,
             orientation_note: str) -> tuple[str, dict]:
    """(file name, JSON content) of the episode's ``metadata_<uuid>.json``."""
    uuid = safe_component(str(extra.get("uuid") or row["episode_id"]))
    mp4 = f"recordings/MP4/{serial}.mp4"
    meta = {
        "uuid": uuid, "lab": folder.split("/")[0], "date": extra.get("date"),
        "success": extra.get("success") is not False, "current_task": row.get("task") or "",
        "trajectory_length": n, "hdf5_path": f"{folder}/trajectory.h5",
        "ext1_cam_serial": serial, "ext1_cam_extrinsics": [float(x) for x in extrinsics],
        "ext1_mp4_path": mp4, "left_mp4_path": mp4,
        "dexdata_episode_id": row["episode_id"], "dexdata_pseudo_hand": extra.get("pseudo_hand"),
        "dexdata_orientation": orientation_note,
    }
    return f"metadata_{uuid}.json", meta


def droid_files(ep: StoredEpisode, row: dict, gripper: np.ndarray, folder: str) -> dict:
    """Everything the raw layout needs of one episode, as a dict (serial, arrays, metadata)."""
    extra = episode_extra(row)
    if gripper is None or not np.all(np.isfinite(gripper)):
        raise EpisodeError(f"episode {ep.episode_id}: no finite gripper column: not a DROID episode")
    cartesian, note = end_effector_pose(ep, extra.get("pseudo_hand"))
    extrinsics = static_extrinsics(ep)
    serial = camera_serial(extra)
    name, meta = metadata(row, extra, folder, serial, extrinsics, len(ep), note)
    return {"serial": serial, "cartesian": cartesian, "gripper": np.asarray(gripper),
            "extrinsics": extrinsics, "metadata_name": name, "metadata": meta}
