"""DROID-layout fixtures built in test code from the real episode in ``shared_data/droid_crowndata_ep0``.

The crowndata export holds droid_100 episode 0 ("Put the marker in the pot", RAIL, 166 steps at
15 Hz; its "10 Hz" label is the exporter's default): end-effector poses (base frame, m / rad),
gripper positions and the 88x50 wrist video. From these we write the three input layouts:

* raw: ``<lab>/success/<date>/<time>/`` with ``trajectory.h5`` (h5py), ``metadata_<id>.json`` and
  ``recordings/MP4/<serial>.mp4`` (lossless H.264 of the real frames);
* LeRobot v2.1 (one parquet + mp4 per episode) and v3.0 (shared ``file-000`` parquet + mp4).

The export has no camera extrinsics, so the fixture places the exterior cameras with a look-at
pose (:data:`EXT_CAMERAS`: position and target in the base frame, a plausible DROID set-up) and the
wrist camera at a fixed mount on the end effector. Values are rounded to float32 because the
LeRobot port stores float32; this makes "the same episode in every layout" exact.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import av
import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from scipy.spatial.transform import Rotation

from dexhands_data.sources.droid.cameras import T_base_cam_from_extrinsics

CROWNDATA = "droid_crowndata_ep0"
SERIALS = {"ext1": "22008760", "ext2": "24400334", "wrist": "18026681"}
LEROBOT_KEYS = {"ext1": "exterior_1_left", "ext2": "exterior_2_left", "wrist": "wrist_left"}
#: Exterior cameras: (position, look-at target) in the robot base frame, metres.
EXT_CAMERAS = {
    "ext1": ((0.15, 0.70, 0.55), (0.52, 0.10, 0.32)),
    "ext2": ((0.20, -0.50, 0.52), (0.52, 0.10, 0.32)),
}
#: Wrist camera mount: camera-to-end-effector, looking along the approach axis (end-effector z).
T_EE_WRIST = np.array([[1, 0, 0, 0.0], [0, 1, 0, -0.07], [0, 0, 1, -0.04], [0, 0, 0, 1]], float)
RAW_REL = "RAIL/success/2023-04-17/Mon_Apr_17_14:48:05_2023"
RAW_UUID = "RAIL+b2d7c64a+2023-04-17-14h-48m-05s"


def f32(x) -> np.ndarray:
    """Values rounded to float32 and widened back (what the LeRobot port keeps)."""
    return np.asarray(x, dtype=np.float32).astype(np.float64)


def look_at_extrinsics(position, target) -> np.ndarray:
    """DROID 6-vector [x, y, z, rx, ry, rz] of an OpenCV camera at ``position`` looking at ``target``."""
    p, t = np.asarray(position, float), np.asarray(target, float)
    z = (t - p) / np.linalg.norm(t - p)
    up = np.array([0.0, 0.0, 1.0])
    y = -(up - up.dot(z) * z)
    y /= np.linalg.norm(y)
    x = np.cross(y, z)
    R = np.stack([x, y, z], axis=1)
    return f32(np.concatenate([p, Rotation.from_matrix(R).as_euler("xyz")]))


@dataclass
class DroidEpisodeFixture:
    """One episode's real values (float32-exact float64) and frames."""

    cartesian: np.ndarray  # (N, 6)
    gripper: np.ndarray  # (N,)
    frames: np.ndarray  # (N, H, W, 3) uint8 RGB
    task: str
    extrinsics: dict[str, np.ndarray]  # ext1, ext2: (6,)
    wrist_extrinsics: np.ndarray  # (N, 6)
    success: bool = True

    def __len__(self) -> int:
        return int(self.cartesian.shape[0])

    def reversed(self) -> "DroidEpisodeFixture":
        """The same real values played backwards (a second, different episode)."""
        return replace(self, cartesian=self.cartesian[::-1].copy(), gripper=self.gripper[::-1].copy(),
                       frames=self.frames[::-1].copy(), wrist_extrinsics=self.wrist_extrinsics[::-1].copy(),
                       task="Take the marker out of the pot", success=False)


def wrist_extrinsics(cartesian: np.ndarray) -> np.ndarray:
    """Per-step wrist 6-vectors: T_base_ee (from the end-effector pose) @ T_EE_WRIST."""
    T = T_base_cam_from_extrinsics(cartesian) @ T_EE_WRIST
    return f32(np.concatenate([T[:, :3, 3], Rotation.from_matrix(T[:, :3, :3]).as_euler("xyz")], axis=1))


def load_episode(shared_data: Path) -> DroidEpisodeFixture:
    folder = Path(shared_data) / CROWNDATA
    cart = json.loads((folder / "trajectories" / "cartesian_position__trajectory.json").read_text())
    joints = json.loads((folder / "trajectories" / "joint_positions.json").read_text())
    info = json.loads((folder / "information.json").read_text())
    cartesian = f32(cart["data"])
    gripper = f32(np.asarray(joints["data"])[:, joints["columns"].index("robotiq_85_left_knuckle_joint")])
    with av.open(str(folder / "video.mp4")) as c:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    ext = {cam: look_at_extrinsics(*pose) for cam, pose in EXT_CAMERAS.items()}
    task = info["taskDescription"]
    return DroidEpisodeFixture(cartesian, gripper, frames, task, ext, wrist_extrinsics(cartesian))


def write_video(path: Path, frames: np.ndarray, fps: int = 15) -> None:
    """Lossless H.264 (yuv444p, qp 0): every layout decodes to the same pixels."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height = int(frames.shape[2]), int(frames.shape[1])
        s.pix_fmt = "yuv444p"
        s.options = {"qp": "0", "preset": "ultrafast"}
        for rgb in frames:
            for pkt in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)


# ----------------------------------------------------------------------------- raw release


def write_raw_episode(
    root: Path,
    ep: DroidEpisodeFixture,
    rel: str = RAW_REL,
    uuid: str = RAW_UUID,
    left_camera: str = "ext1",
    video_frames: int | None = None,
    drop_h5_keys: tuple[str, ...] = (),
    drop_metadata: tuple[str, ...] = (),
) -> Path:
    """A raw-release episode folder. ``video_frames`` truncates the camera videos (mismatch cases)."""
    folder = Path(root) / rel
    (folder / "recordings" / "MP4").mkdir(parents=True, exist_ok=True)
    n = len(ep)
    with h5py.File(folder / "trajectory.h5", "w") as h5:
        data = {
            "observation/robot_state/cartesian_position": ep.cartesian,
            "observation/robot_state/gripper_position": ep.gripper,
            f"observation/camera_extrinsics/{SERIALS['wrist']}_left": ep.wrist_extrinsics,
            f"observation/camera_extrinsics/{SERIALS['ext1']}_left": np.tile(ep.extrinsics["ext1"], (n, 1)),
            f"observation/camera_extrinsics/{SERIALS['ext2']}_left": np.tile(ep.extrinsics["ext2"], (n, 1)),
            "observation/timestamp/control/step_start": np.arange(n, dtype=np.int64) * 66_667,
        }
        for key, value in data.items():
            if key not in drop_h5_keys:
                h5.create_dataset(key, data=value)
        for cam, serial in SERIALS.items():
            kind = 0 if cam == "wrist" else 1
            h5.create_dataset(f"observation/camera_type/{serial}", data=np.full(n, kind))
        h5.attrs["current_task"] = ep.task
        h5.attrs["success"] = ep.success
    meta = {
        "uuid": uuid, "lab": rel.split("/")[0], "user": "fixture", "date": "2023-04-17",
        "timestamp": "2023-04-17-14h-48m-05s", "hdf5_path": f"{rel}/trajectory.h5", "building": "fixture",
        "scene_id": 1, "success": ep.success, "robot_serial": "panda-fixture", "current_task": ep.task,
        "trajectory_length": n,
    }
    for cam, serial in SERIALS.items():
        meta[f"{cam}_cam_serial"] = serial
        meta[f"{cam}_mp4_path"] = f"recordings/MP4/{serial}.mp4"
        meta[f"{cam}_svo_path"] = f"recordings/SVO/{serial}.svo"
    meta["wrist_cam_extrinsics"] = ep.wrist_extrinsics[0].tolist()
    for cam in ("ext1", "ext2"):
        meta[f"{cam}_cam_extrinsics"] = ep.extrinsics[cam].tolist()
    meta["left_mp4_path"] = meta[f"{left_camera}_mp4_path"]
    other = "ext2" if left_camera == "ext1" else "ext1"
    meta["right_mp4_path"] = meta[f"{other}_mp4_path"]
    for key in drop_metadata:
        meta.pop(key, None)
    (folder / f"metadata_{uuid}.json").write_text(json.dumps(meta))
    frames = ep.frames if video_frames is None else ep.frames[:video_frames]
    for serial in SERIALS.values():
        write_video(folder / "recordings" / "MP4" / f"{serial}.mp4", frames)
    return folder


# ----------------------------------------------------------------------------- LeRobot ports


def _features(ep: DroidEpisodeFixture) -> dict:
    h, w = ep.frames.shape[1:3]
    video = {"dtype": "video", "shape": [h, w, 3], "names": ["height", "width", "channels"],
             "info": {"video.height": h, "video.width": w, "video.codec": "h264", "video.fps": 15}}
    feats = {f"observation.images.{k}": video for k in LEROBOT_KEYS.values()}
    feats.update({
        "observation.state.cartesian_position": {"dtype": "float32", "shape": [6], "names": None},
        "observation.state.gripper_position": {"dtype": "float32", "shape": [1], "names": None},
        **{f"camera_extrinsics.{k}": {"dtype": "float32", "shape": [6], "names": None}
           for k in LEROBOT_KEYS.values()},
        "is_episode_successful": {"dtype": "bool", "shape": [1], "names": None},
        "language_instruction": {"dtype": "string", "shape": [1], "names": None},
        "timestamp": {"dtype": "float32", "shape": [1], "names": None},
        "frame_index": {"dtype": "int64", "shape": [1], "names": None},
        "episode_index": {"dtype": "int64", "shape": [1], "names": None},
        "index": {"dtype": "int64", "shape": [1], "names": None},
        "task_index": {"dtype": "int64", "shape": [1], "names": None},
    })
    return feats


def _episode_table(ep: DroidEpisodeFixture, episode_index: int, start: int, task_index: int) -> pa.Table:
    n = len(ep)
    f32list = pa.list_(pa.float32())

    def col(values: np.ndarray) -> pa.Array:
        return pa.array([row.astype(np.float32).tolist() for row in values], type=f32list)

    cols = {
        "observation.state.cartesian_position": col(ep.cartesian),
        "observation.state.gripper_position": col(ep.gripper[:, None]),
        "camera_extrinsics.exterior_1_left": col(np.tile(ep.extrinsics["ext1"], (n, 1))),
        "camera_extrinsics.exterior_2_left": col(np.tile(ep.extrinsics["ext2"], (n, 1))),
        "camera_extrinsics.wrist_left": col(ep.wrist_extrinsics),
        "is_episode_successful": pa.array([ep.success] * n),
        "language_instruction": pa.array([ep.task] * n),
        "timestamp": pa.array(np.arange(n, dtype=np.float32) / 15),
        "frame_index": pa.array(np.arange(n, dtype=np.int64)),
        "episode_index": pa.array(np.full(n, episode_index, dtype=np.int64)),
        "index": pa.array(np.arange(start, start + n, dtype=np.int64)),
        "task_index": pa.array(np.full(n, task_index, dtype=np.int64)),
    }
    return pa.table(cols)


def write_lerobot_v21(root: Path, episodes: list[DroidEpisodeFixture]) -> Path:
    root = Path(root)
    (root / "meta").mkdir(parents=True, exist_ok=True)
    tasks = sorted({e.task for e in episodes})
    info = {
        "codebase_version": "v2.1", "robot_type": "Franka", "fps": 15, "chunks_size": 1000,
        "total_episodes": len(episodes), "total_frames": sum(len(e) for e in episodes),
        "total_tasks": len(tasks), "total_videos": 3 * len(episodes), "total_chunks": 1,
        "splits": {"train": f"0:{len(episodes)}"},
        "data_path": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
        "video_path": "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4",
        "features": _features(episodes[0]),
    }
    (root / "meta" / "info.json").write_text(json.dumps(info, indent=2))
    (root / "meta" / "tasks.jsonl").write_text("".join(
        json.dumps({"task_index": i, "task": t}) + "\n" for i, t in enumerate(tasks)))
    lines, start = [], 0
    for i, ep in enumerate(episodes):
        table = _episode_table(ep, i, start, tasks.index(ep.task))
        path = root / info["data_path"].format(episode_chunk=0, episode_index=i)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)
        for key in LEROBOT_KEYS.values():
            vk = f"observation.images.{key}"
            video = info["video_path"].format(episode_chunk=0, video_key=vk, episode_index=i)
            write_video(root / video, ep.frames)
        lines.append(json.dumps({"episode_index": i, "tasks": [ep.task], "length": len(ep)}) + "\n")
        start += len(ep)
    (root / "meta" / "episodes.jsonl").write_text("".join(lines))
    return root


def write_lerobot_v30(root: Path, episodes: list[DroidEpisodeFixture]) -> Path:
    """All episodes in one ``file-000`` parquet and one mp4 per camera (spans by timestamps)."""
    root = Path(root)
    (root / "meta" / "episodes" / "chunk-000").mkdir(parents=True, exist_ok=True)
    tasks = sorted({e.task for e in episodes})
    info = {
        "codebase_version": "v3.0", "robot_type": "Franka", "fps": 15, "chunks_size": 1000,
        "data_files_size_in_mb": 100, "video_files_size_in_mb": 200,
        "total_episodes": len(episodes), "total_frames": sum(len(e) for e in episodes),
        "total_tasks": len(tasks),
        "splits": {"train": f"0:{len(episodes)}"},
        "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
        "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
        "features": _features(episodes[0]),
    }
    (root / "meta" / "info.json").write_text(json.dumps(info, indent=2))
    tasks_table = pa.table({"task_index": list(range(len(tasks))), "task": tasks})
    pq.write_table(tasks_table, root / "meta" / "tasks.parquet")
    tables, rows, start = [], [], 0
    for i, ep in enumerate(episodes):
        tables.append(_episode_table(ep, i, start, tasks.index(ep.task)))
        row = {"episode_index": i, "tasks": [ep.task], "length": len(ep), "data/chunk_index": 0,
               "data/file_index": 0, "dataset_from_index": start, "dataset_to_index": start + len(ep)}
        for key in LEROBOT_KEYS.values():
            vk = f"observation.images.{key}"
            row.update({f"videos/{vk}/chunk_index": 0, f"videos/{vk}/file_index": 0,
                        f"videos/{vk}/from_timestamp": start / 15,
                        f"videos/{vk}/to_timestamp": (start + len(ep)) / 15})
        rows.append(row)
        start += len(ep)
    data = root / info["data_path"].format(chunk_index=0, file_index=0)
    data.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.concat_tables(tables), data)
    pq.write_table(pa.Table.from_pylist(rows), root / "meta" / "episodes" / "chunk-000" / "file-000.parquet")
    all_frames = np.concatenate([e.frames for e in episodes])
    for key in LEROBOT_KEYS.values():
        vk = f"observation.images.{key}"
        write_video(root / info["video_path"].format(video_key=vk, chunk_index=0, file_index=0), all_frames)
    return root
