"""Build EgoDex-layout episodes (``<split>/<task>/<k>.hdf5`` + ``<k>.mp4``) for tests.

No real EgoDex file may be shared (CC BY-NC-ND), so this writes a physically consistent synthetic one:
an ARKit world (y up, origin at the feet), a head camera 1.55 m up looking 40° down at a table while it
turns and walks, and two rigid 25-joint hands (plus arms and body: 68 joints) in front of it. The MP4
(H.264, PyAV) shows a red disc at the left wrist's projection and a blue disc at the right wrist's,
drawn with the *true* OpenCV camera and K, so a test can check the reader's projection and axis
convention against the pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import h5py
import numpy as np
from scipy.spatial.transform import Rotation

from dexhands_data.geometry import project, se3, se3_inverse

SIDES = ("left", "right")
FINGERS = ("Index", "Middle", "Ring", "Little")
BODY = ("hip", *(f"spine{i}" for i in range(1, 8)), *(f"neck{i}" for i in range(1, 5)))
DEFAULT_K = np.array([[736.6339, 0.0, 960.0], [0.0, 736.6339, 540.0], [0.0, 0.0, 1.0]])
T_CV_ARKIT = np.diag([1.0, -1.0, -1.0, 1.0])  # its own inverse
LEFT_COLOR, RIGHT_COLOR = (255, 0, 0), (0, 0, 255)
DISC_RADIUS = 14


#: (joint, distance from the wrist along the finger (m), drop towards the palm (m)) of each long finger.
FINGER_JOINTS = (("Metacarpal", 0.02, 0.0), ("Knuckle", 0.09, 0.0), ("IntermediateBase", 0.135, -0.01),
                 ("IntermediateTip", 0.16, -0.02), ("Tip", 0.18, -0.03))


def hand_template() -> dict[str, np.ndarray]:
    """25 hand joints + 3 arm joints in a hand frame (m): x along the fingers, y toward the thumb, z palm
    normal. Metacarpals sit 7 cm behind the knuckles, so a map that picks them instead is caught."""
    t = {"Hand": np.zeros(3), "Forearm": np.array([-0.25, 0.0, 0.02]), "Arm": np.array([-0.5, 0.0, 0.08]),
         "Shoulder": np.array([-0.62, -0.15, 0.25])}
    thumb = ((0.025, 0.025, 0.0), (0.05, 0.045, -0.005), (0.075, 0.06, -0.01), (0.095, 0.07, -0.015))
    for name, p in zip(("ThumbKnuckle", "ThumbIntermediateBase", "ThumbIntermediateTip", "ThumbTip"), thumb):
        t[name] = np.array(p)
    for finger, y, scale in zip(FINGERS, (0.025, 0.005, -0.015, -0.033), (1.0, 1.08, 1.0, 0.85)):
        for joint, x, z in FINGER_JOINTS:
            t[f"{finger}Finger{joint}"] = np.array([x * scale, y, z])
    return t


def all_joint_names() -> list[str]:
    names = list(BODY)
    for side in SIDES:
        names += [side + j for j in hand_template()]
    return names


@dataclass
class EgoDexFixture:
    """One written episode and the truth it was built from.

    T_world_cam_cv (N, 4, 4): true camera in OpenCV axes; T_world_cam_stored: what ``transforms/camera``
    holds (OpenCV, or ARKit axes when ``axes="arkit"``); joints_world: name -> (N, 3) m; K: true 3x3.
    """

    root: Path
    h5: Path
    mp4: Path
    T_world_cam_cv: np.ndarray
    T_world_cam_stored: np.ndarray
    joints_world: dict[str, np.ndarray]
    K: np.ndarray
    width: int
    height: int


def camera_trajectory(n: int) -> np.ndarray:
    """T_world_cam (n, 4, 4), OpenCV axes, in an ARKit world (y up): a head looking 40° down, turning."""
    base = np.array([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]])  # columns: right, down, forward
    out = np.empty((n, 4, 4))
    for i in range(n):
        s = i / max(n - 1, 1)
        yaw = Rotation.from_euler("y", np.deg2rad(-12 + 24 * s))
        # about the camera x axis: forward tilts down
        pitch = Rotation.from_euler("x", np.deg2rad(-40 + 5 * np.sin(3 * s)))
        roll = Rotation.from_euler("z", np.deg2rad(4 * np.sin(5 * s)))
        R = yaw.as_matrix() @ base @ pitch.as_matrix() @ roll.as_matrix()
        out[i] = se3(R, [0.3 + 0.2 * s, 1.55 + 0.02 * np.sin(4 * s), 0.1 - 0.15 * s])
    return out


def hand_poses(T_world_cam: np.ndarray) -> dict[str, np.ndarray]:
    """World positions (n, 3) of both hands' joints: rigid hands 45 cm in front of the camera, palms down."""
    tpl = hand_template()
    n = len(T_world_cam)
    joints: dict[str, np.ndarray] = {}
    for h, side in enumerate(SIDES):
        sign = -1.0 if side == "left" else 1.0
        pos = np.empty((n, len(tpl), 3))
        for i in range(n):
            s = i / max(n - 1, 1)
            T = T_world_cam[i]
            right, down, fwd = T[:3, 0], T[:3, 1], T[:3, 2]
            depth, side_offset = 0.40 + 0.05 * np.sin(2 * s + h), 0.14 + 0.03 * s
            wrist = T[:3, 3] + depth * fwd + sign * side_offset * right + 0.12 * down
            x_axis = fwd * np.array([1.0, 0.0, 1.0]) + sign * 0.3 * right  # horizontal, towards the middle
            x_axis /= np.linalg.norm(x_axis)
            y_axis = np.cross(np.array([0.0, 1.0, 0.0]), x_axis) * sign  # thumb side, horizontal
            z_axis = np.cross(x_axis, y_axis)
            R = Rotation.from_matrix(np.stack([x_axis, y_axis, z_axis], axis=1))
            R = R * Rotation.from_euler("x", 0.3 * np.sin(3 * s + h))
            pos[i] = wrist + np.stack(list(tpl.values())) @ R.as_matrix().T
        for k, name in enumerate(tpl):
            joints[side + name] = pos[:, k]
    head = T_world_cam[:, :3, 3]
    for k, name in enumerate(BODY):
        joints[name] = head * np.array([1.0, 0.0, 1.0]) + np.array([0.0, 1.0 + 0.04 * k, 0.0])
    return joints


def draw_frames(T_world_cam_cv: np.ndarray, joints: dict[str, np.ndarray], K: np.ndarray, width: int,
                height: int):
    """RGB frames with a red disc at the left wrist and a blue one at the right wrist (true projection)."""
    T_cam_world = se3_inverse(T_world_cam_cv)
    yy, xx = np.mgrid[0:height, 0:width]
    rgb = [40 + 60 * xx / width, 90 + 40 * yy / height, 70 + 0 * xx]
    background = np.stack(rgb, axis=-1).astype(np.uint8)
    for i in range(len(T_world_cam_cv)):
        img = background.copy()
        for side, color in (("left", LEFT_COLOR), ("right", RIGHT_COLOR)):
            p = T_cam_world[i, :3, :3] @ joints[side + "Hand"][i] + T_cam_world[i, :3, 3]
            u, v = project(p, K)
            if np.isfinite(u) and np.isfinite(v):
                centre = (int(round(u * 16)), int(round(v * 16)))  # 4 fractional bits: sub-pixel centre
                cv2.circle(img, centre, DISC_RADIUS * 16, color, -1, cv2.LINE_AA, 4)
        yield img


def write_mp4(path: Path, frames, fps: int = 30) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "12"}
        for img in frames:
            if (stream.width, stream.height) != (img.shape[1], img.shape[0]):  # PyAV's default is 640x480
                stream.width, stream.height = img.shape[1], img.shape[0]
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_egodex_episode(
    root: Path,
    split: str = "part1",
    task: str = "stack_cups",
    k: int = 0,
    n_frames: int = 12,
    axes: str = "opencv",
    intrinsic: str = "full",
    attrs: dict | None = None,
    confidences: bool = True,
    width: int = 1920,
    height: int = 1080,
    video: bool = True,
    seed: int = 0,
) -> EgoDexFixture:
    """Write ``root/<split>/<task>/<k>.hdf5`` (+ ``.mp4``) and return the truth.

    axes: "opencv" stores the OpenCV camera pose, "arkit" the same camera in ARKit axes (y up, z back).
    intrinsic: "full" (the 3x3 K, scaled to the size), "empty" (an empty (0, 3) array, as part1 files) or
    "missing". attrs: root attributes (default: a reversible task whose chosen text is the second one).
    """
    folder = root / split / task
    folder.mkdir(parents=True, exist_ok=True)
    h5_path, mp4_path = folder / f"{k}.hdf5", folder / f"{k}.mp4"
    T_cv = camera_trajectory(n_frames)
    joints = hand_poses(T_cv)
    K = DEFAULT_K.copy()
    K[:2] *= np.array([[width / 1920], [height / 1080]])
    K[:2, 2] = (DEFAULT_K[:2, 2] + 0.5) * np.array([width / 1920, height / 1080]) - 0.5
    if intrinsic == "full":  # a slightly different camera so that a test can tell it from the constant
        K[0, 0] *= 1.01
        K[1, 1] *= 1.01
    T_stored = T_cv @ T_CV_ARKIT if axes == "arkit" else T_cv.copy()
    rng = np.random.default_rng(seed)
    if attrs is None:
        attrs = {"task": task, "environment": "kitchen", "llm_type": "reversible",
                 "which_llm_description": "2",
                 "llm_description": "Unstack the cups.", "llm_description2": "Stack the cups.",
                 "description": "cups"}
    with h5py.File(h5_path, "w") as f:
        tr = f.create_group("transforms")
        tr.create_dataset("camera", data=T_stored.astype(np.float32))
        for name in all_joint_names():
            T = np.tile(np.eye(4), (n_frames, 1, 1))
            T[:, :3, 3] = joints[name]
            tr.create_dataset(name, data=T.astype(np.float32))
        if confidences:
            cg = f.create_group("confidences")
            for name in all_joint_names():
                cg.create_dataset(name, data=rng.uniform(0.3, 1.0, n_frames).astype(np.float32))
        if intrinsic != "missing":
            cam = f.create_group("camera")
            data = K.astype(np.float32) if intrinsic == "full" else np.zeros((0, 3), np.float32)
            cam.create_dataset("intrinsic", data=data)
        for key, value in attrs.items():
            f.attrs[key] = value
    # float32 storage is what the reader sees: keep the truth at the same precision
    T_stored = T_stored.astype(np.float32).astype(np.float64)
    T_cv_true = T_stored @ T_CV_ARKIT if axes == "arkit" else T_stored
    joints = {n: p.astype(np.float32).astype(np.float64) for n, p in joints.items()}
    if video:
        write_mp4(mp4_path, draw_frames(T_cv_true, joints, K, width, height))
    return EgoDexFixture(root, h5_path, mp4_path, T_cv_true, T_stored, joints, K, width, height)
