"""Render ``docs/img/droid_pseudo_hand.png``: the two pseudo-hand modes on the real DROID episode.

Top row: the real exterior-camera-2 frames of the crowndata episode (88x50, upscaled) at three steps.
Middle row: the pseudo-hands of the same steps projected into the exterior camera of the test fixture
(the crowndata export carries no extrinsics, so the camera pose is the fixture's look-at pose, see
``tests/droid_fixtures.py``), over the projected base-frame floor grid and the end-effector path.
Bottom row: the same pseudo-hands in 3D (base frame) with the gripper's approach axis.

    python docs/droid_figure.py  [--shared-data ../shared/data]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from droid_fixtures import CROWNDATA, load_episode  # noqa: E402

from dexhands_data.sources.droid.cameras import T_base_cam_from_extrinsics, default_intrinsics  # noqa: E402
from dexhands_data.sources.droid.pseudo_hand import ee_rotation, pseudo_hand, pseudo_hand_row  # noqa: E402
from dexhands_data.geometry import project, se3_inverse, transform_points  # noqa: E402

STEPS = (0, 80, 165)  # the steps with real exterior frames in the export
COLORS = {"dexwm-official": "tab:orange", "oriented": "tab:cyan"}


def rings(hand: np.ndarray) -> list[np.ndarray]:
    """The 4 closed pentagons (radius index j) of one 21-point hand, for drawing."""
    return [hand[[pseudo_hand_row(i, j) for i in (0, 1, 2, 3, 4, 0)]] for j in range(4)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared-data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--out", default=str(ROOT / "docs" / "img" / "droid_pseudo_hand.png"))
    args = ap.parse_args()
    ep = load_episode(Path(args.shared_data))
    T_cam_base = se3_inverse(T_base_cam_from_extrinsics(ep.extrinsics["ext2"]))
    K = default_intrinsics(1280, 720).K
    hands = {m: pseudo_hand(m, ep.cartesian, ep.gripper) for m in COLORS}

    fig = plt.figure(figsize=(15, 12.5))
    for col, k in enumerate(STEPS):
        ax = fig.add_subplot(3, 3, 1 + col)
        real = Path(args.shared_data) / CROWNDATA / "images" / f"exterior_image_2_left__image_{k:08d}.webp"
        img = cv2.cvtColor(cv2.imread(str(real)), cv2.COLOR_BGR2RGB)
        ax.imshow(cv2.resize(img, (880, 500), interpolation=cv2.INTER_CUBIC))
        title = f"real exterior camera 2, step {k} (t = {k / 15:.2f} s), gripper {ep.gripper[k]:.2f}"
        ax.set_title(title, fontsize=9)
        ax.axis("off")

        ax = fig.add_subplot(3, 3, 4 + col)
        ax.set_facecolor("0.93")
        for x in np.arange(0.2, 0.95, 0.1):
            line = project(transform_points(T_cam_base, [[x, y, 0.0] for y in np.linspace(-0.4, 0.5, 30)]), K)
            ax.plot(line[:, 0], line[:, 1], color="0.75", lw=0.6)
        for y in np.arange(-0.4, 0.55, 0.1):
            line = project(transform_points(T_cam_base, [[x, y, 0.0] for x in np.linspace(0.2, 0.9, 30)]), K)
            ax.plot(line[:, 0], line[:, 1], color="0.75", lw=0.6)
        path = project(transform_points(T_cam_base, ep.cartesian[:, :3]), K)
        ax.plot(path[:, 0], path[:, 1], color="0.4", lw=1, label="end-effector path")
        for mode, color in COLORS.items():
            px = project(transform_points(T_cam_base, hands[mode][k]), K)
            for ring in rings(px):
                ax.plot(ring[:, 0], ring[:, 1], color=color, lw=1.2)
            ax.scatter(px[1:, 0], px[1:, 1], s=10, color=color, label=mode)
        ax.scatter(*path[k], s=40, color="k", marker="x", label="end effector (row 21)")
        ax.set_xlim(path[k, 0] - 110, path[k, 0] + 110)
        ax.set_ylim(path[k, 1] + 80, path[k, 1] - 80)
        ax.set_aspect("equal")
        ax.set_title(f"fixture exterior camera (1280x720 px, zoom), step {k}", fontsize=9)
        if col == 0:
            ax.legend(fontsize=8, loc="lower left")

        ax = fig.add_subplot(3, 3, 7 + col, projection="3d")
        c = ep.cartesian[k, :3]
        approach = ee_rotation(ep.cartesian[k:k + 1, 3:])[0][:, 2]
        for mode, color in COLORS.items():
            for ring in rings(hands[mode][k]):
                ax.plot(*ring.T, color=color, lw=1.2)
        ax.quiver(*c, *(0.06 * approach), color="k", lw=1.5)
        ax.set_title(f"base frame (m), step {k}: arrow = approach axis", fontsize=9)
        lim = 0.07
        ax.set_xlim(c[0] - lim, c[0] + lim)
        ax.set_ylim(c[1] - lim, c[1] + lim)
        ax.set_zlim(c[2] - lim, c[2] + lim)
        ax.set_box_aspect((1, 1, 1))
        ax.view_init(elev=28, azim=-60)
    fig.suptitle("DROID pseudo-hand: dexwm-official (orange, base XY plane, radii switch at 0.5) vs "
                 "oriented (cyan, perpendicular to the approach axis, radii follow the gripper)", fontsize=11)
    fig.tight_layout()
    fig.savefig(args.out, dpi=80)
    print(args.out)


if __name__ == "__main__":
    main()
