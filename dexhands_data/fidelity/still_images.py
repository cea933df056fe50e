"""Still images with calibrated 3D hand ground truth (``hand3d_gt/``), scored through the estimator
code path ``extract`` uses (a hand-estimator session per image, with that image's true K).

Readers (formats and joint orders in ``shared/data/PROVENANCE.md``), every sample in the contract's
frames and units: ``keypoints_cam`` (2, 21, 3) m in the OpenCV camera, left then right, MANO order;
``valid`` (2,); pinhole K without distortion.

* ``dexycb_nc/<sequence>/<serial>/labels_<f>.npz`` + ``color_<f>.jpg`` (640x480): ``joint_3d`` m in the
  colour camera; the side from the sequence's ``meta.yml`` (``mano_sides``). K of each camera is fitted
  to the labels themselves (least squares of ``joint_2d`` = proj(K, ``joint_3d``) over every label
  of that serial: ``u = fx X/Z + cx`` is linear in fx, cx), as PROVENANCE describes.
* ``handgraphcnn_realworld_nc/``: ``pose_gt.mat`` (cm, camera frame) of the original 1280x720 frame
  and ``params.mat`` (``cam_param`` fx, fy, u0, v0; square ``bbox`` x, y, w, h) give the 256x256
  crop's K: r = 256 / w, fx' = fx r, fy' = fy r, cx' = (u0 - x) r, cy' = (v0 - y) r. One left hand.
* ``interhand26m_nc/``: world joints (mm) into the camera: ``camrot @ (world - campos)``; joints
  0-20 right, 21-41 left, each hand reordered to MANO (``INTERHAND_TO_MANO``); a hand is used
  only where all 21 of its ``joint_valid`` are set.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..geometry import Intrinsics, project
from ..keypoints import LEFT, NUM_HANDS, NUM_KEYPOINTS, RIGHT

#: MANO index i <- InterHand2.6M index within one hand.
INTERHAND_TO_MANO = (20, 3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12, 19, 18, 17, 16)
HANDGRAPHCNN_SIZE = 256


@dataclass
class StillImage:
    """One image with ground truth: ``keypoints_cam`` (2, 21, 3) m (NaN where no hand), ``valid`` (2,)."""

    dataset: str
    name: str
    image_path: Path
    intrinsics: Intrinsics
    keypoints_cam: np.ndarray
    valid: np.ndarray

    @property
    def keypoints_2d(self) -> np.ndarray:
        return project(self.keypoints_cam, self.intrinsics.K).astype(np.float32)


def _hands(sides: dict[int, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    kp = np.full((NUM_HANDS, NUM_KEYPOINTS, 3), np.nan, np.float32)
    valid = np.zeros(NUM_HANDS, bool)
    for slot, joints in sides.items():
        kp[slot], valid[slot] = joints, True
    return kp, valid


def fit_intrinsics(points_cam: np.ndarray, pixels: np.ndarray, width: int, height: int) -> Intrinsics:
    """Zero-skew pinhole K fitted to camera-frame points (M, 3) and their pixels (M, 2) (least squares)."""
    x, y = points_cam[:, 0] / points_cam[:, 2], points_cam[:, 1] / points_cam[:, 2]
    fx, cx = np.linalg.lstsq(np.stack([x, np.ones_like(x)], 1), pixels[:, 0], rcond=None)[0]
    fy, cy = np.linalg.lstsq(np.stack([y, np.ones_like(y)], 1), pixels[:, 1], rcond=None)[0]
    return Intrinsics(float(fx), float(fy), float(cx), float(cy), width, height, "calibration")


def read_dexycb(root: Path) -> list[StillImage]:
    import yaml

    out = []
    for meta_path in sorted(root.glob("*/meta.yml")):
        sides = yaml.safe_load(meta_path.read_text())["mano_sides"]
        slot = RIGHT if sides[0] == "right" else LEFT
        for serial_dir in sorted(p for p in meta_path.parent.iterdir() if p.is_dir()):
            labels = [(p, np.load(p)) for p in sorted(serial_dir.glob("labels_*.npz"))]
            labels = [(p, z["joint_3d"][0].astype(np.float64), z["joint_2d"][0].astype(np.float64))
                      for p, z in labels if np.all(z["joint_3d"][0] != -1)]
            if not labels:
                continue
            K = fit_intrinsics(np.concatenate([j3 for _, j3, _ in labels]),
                               np.concatenate([j2 for _, _, j2 in labels]), 640, 480)
            for p, j3, _ in labels:
                image = serial_dir / p.name.replace("labels_", "color_").replace(".npz", ".jpg")
                kp, valid = _hands({slot: j3})
                out.append(StillImage("dexycb", f"{meta_path.parent.name}/{serial_dir.name}/{image.stem}",
                                      image, K, kp, valid))
    return out


def read_handgraphcnn(root: Path) -> list[StillImage]:
    from scipy.io import loadmat

    params = loadmat(root / "params.mat")
    pose = loadmat(root / "pose_gt.mat")["pose_gt"].astype(np.float64) / 100.0  # cm -> m
    out = []
    for image in sorted((root / "images").glob("*.jpg")):
        i = int(image.stem)
        fx, fy, u0, v0 = params["cam_param"][i]
        x, y, w, _ = params["bbox"][i]
        r = HANDGRAPHCNN_SIZE / w
        size = HANDGRAPHCNN_SIZE
        K = Intrinsics(fx * r, fy * r, (u0 - x) * r, (v0 - y) * r, size, size, "dataset")
        kp, valid = _hands({LEFT: pose[i]})
        out.append(StillImage("handgraphcnn", image.stem, image, K, kp, valid))
    return out


def read_interhand(root: Path) -> list[StillImage]:
    data = json.loads((root / "test_interhand2.6m_data.json").read_text())
    cameras = json.loads((root / "test_interhand2.6m_camera.json").read_text())
    joints = json.loads((root / "test_interhand2.6m_joint_3d.json").read_text())
    annotations = {a["image_id"]: a for a in data["annotations"]}
    order = np.asarray(INTERHAND_TO_MANO)
    out = []
    for img in sorted(data["images"], key=lambda d: d["file_name"]):
        cap, cam, frame = str(img["capture"]), str(img["camera"]), str(img["frame_idx"])
        c = cameras[cap]
        R = np.asarray(c["camrot"][cam], np.float64)
        t = np.asarray(c["campos"][cam], np.float64)
        world = np.asarray(joints[cap][frame]["world_coord"], np.float64)
        cam_pts = (world - t) @ R.T / 1000.0  # mm -> m
        joint_valid = np.asarray(annotations[img["id"]]["joint_valid"], np.float64).reshape(-1)
        sides = {}
        for slot, offset in ((RIGHT, 0), (LEFT, 21)):
            if np.all(joint_valid[offset:offset + 21] > 0):
                sides[slot] = cam_pts[offset + order]
        fx, fy = c["focal"][cam]
        cx, cy = c["princpt"][cam]
        K = Intrinsics(fx, fy, cx, cy, int(img["width"]), int(img["height"]), "dataset")
        kp, valid = _hands(sides)
        name = Path(img["file_name"]).stem
        out.append(StillImage("interhand", name, root / img["file_name"], K, kp, valid))
    return out


READERS = {"dexycb_nc": read_dexycb, "handgraphcnn_realworld_nc": read_handgraphcnn,
           "interhand26m_nc": read_interhand}


def read_still_images(root: str | Path) -> list[StillImage]:
    """Every sample of the ``hand3d_gt`` sub-folders present under ``root``."""
    root = Path(root)
    present = [name for name in READERS if (root / name).is_dir()]
    if not present:
        raise ValueError(f"{root}: none of {sorted(READERS)} found (expected the hand3d_gt layout)")
    return [s for name in present for s in READERS[name](root / name)]


def load_rgb(path: Path) -> np.ndarray:
    """RGB uint8 (H, W, 3) of an image file (monochrome images are expanded to three channels)."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))
