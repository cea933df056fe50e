"""``dexdata viz`` on small datasets written by our writer from real frames and exact synthetic hands."""

from __future__ import annotations

import argparse
import dataclasses

import av
import numpy as np
import pytest

from dexhands_data import viz
from dexhands_data.cli import viz as viz_cli
from dexhands_data.geometry import Intrinsics, matrix_from_rotvec, project, se3
from dexhands_data.images import encode_jpeg
from dexhands_data.records import CameraTrack, EpisodeData, EpisodeRef, HandTrack
from dexhands_data.video_io import FrameReader
from dexhands_data.dataset.writer import DatasetWriter

N = 8
INTR = Intrinsics.from_fov(640, 360, 70.0)


def synthetic_hand(centre: np.ndarray) -> np.ndarray:
    """A flat, open 21-point hand (m) around ``centre`` in the camera frame: wrist below, fingers up."""
    pts = np.zeros((21, 3))
    for f in range(5):
        x = (f - 2) * 0.02
        for j in range(4):
            pts[1 + 4 * f + j] = [x + (0.01 * (j + 1) if f == 0 else 0.0), -0.03 - 0.02 * j, 0.0]
    return pts + centre


def make_episode(frames: list[np.ndarray], embodiment: str = "human") -> EpisodeData:
    n = len(frames)
    hands = HandTrack.empty(n, "synthetic")
    for i in range(n):
        left = synthetic_hand(np.array([-0.12 + 0.005 * i, 0.05, 0.5]))
        right = synthetic_hand(np.array([0.12, 0.05, 0.5]))
        for h, kp in ((0, left), (1, right)):
            if h == 1 and i % 2:  # the right hand is missing on odd frames
                continue
            hands.keypoints_cam[i, h] = kp
            hands.keypoints_2d[i, h] = project(kp, INTR.K)
            hands.valid[i, h] = True
            hands.confidence[i, h] = 1.0
            hands.score[i, h] = 1.0
    T = se3(matrix_from_rotvec(np.stack([np.zeros(n), np.linspace(0, 0.3, n), np.zeros(n)], 1)),
            np.stack([0.05 * np.sin(np.arange(n)), np.zeros(n), 0.04 * np.arange(n)], 1))
    valid = np.ones(n, bool)
    valid[5] = False
    camera = CameraTrack(T, valid, translation_metric=False, static=False, world_frame="first_camera",
                         estimator="vo==1.0")
    kind = "droid" if embodiment != "human" else "videos"
    ref = EpisodeRef(f"{kind}-ep0", kind, f"/data/{kind}/ep0.mp4", "ep0.mp4")
    return EpisodeData(ref=ref, embodiment=embodiment, timestamps=np.arange(n) / 25.0,
                       source_frame_index=np.arange(n), intrinsics=INTR, fps=25.0, hands=hands, camera=camera,
                       images=[encode_jpeg(f, 224) for f in frames],
                       gripper=np.linspace(0, 1, n).astype(np.float32) if embodiment != "human" else None)


@pytest.fixture(scope="module")
def dataset(shared_data, tmp_path_factory):
    frames = []
    for f in FrameReader(str(shared_data / "hand_video" / "mediapipe_hand_landmarker_test_video.mp4")):
        frames.append(f.image)
        if len(frames) == N:
            break
    root = tmp_path_factory.mktemp("viz") / "dexwm-actions"
    writer = DatasetWriter(root)
    human, gripper = make_episode(frames), make_episode(frames, "parallel_gripper")
    writer.write_shard("videos", "train", "shard-000", [human], "cfg")
    writer.write_shard("droid", "train", "shard-000", [gripper], "cfg")
    writer.finalize()
    return root, human, gripper


def main(argv: list[str]) -> int:
    """``dexdata viz ...`` through the subcommand module's own parser registration."""
    parser = argparse.ArgumentParser(prog="dexdata")
    viz_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def near_colour(img: np.ndarray, uv: np.ndarray, colour, radius: int = 2, tol: int = 40) -> bool:
    u, v = int(round(uv[0])), int(round(uv[1]))
    patch = img[max(v - radius, 0) : v + radius + 1, max(u - radius, 0) : u + radius + 1]
    patch = patch.reshape(-1, 3).astype(int)
    return bool((np.abs(patch - np.array(colour)).max(axis=1) <= tol).any())


def test_load_episode_round_trips_the_written_rows(dataset):
    root, human, _ = dataset
    view = viz.load_episode(root, "videos-ep")  # a unique prefix is enough
    assert view.episode_id == "videos-ep0" and len(view) == N and view.embodiment == "human"
    np.testing.assert_allclose(view.keypoints_2d[0], human.hands.keypoints_2d[0], atol=1e-4)
    np.testing.assert_allclose(view.T_world_cam, human.camera.T_world_cam)
    np.testing.assert_array_equal(view.camera_valid, human.camera.valid)
    np.testing.assert_array_equal(view.hand_valid, human.hands.valid)
    assert view.images[0].shape == (224, 398, 3) and view.intrinsics == Intrinsics(*INTR.to_list(), 640, 360,
                                                                                    "fov_prior")
    with pytest.raises(KeyError, match="no episode"):
        viz.load_episode(root, "nope")
    with pytest.raises(FileNotFoundError, match="not a dataset"):
        viz.load_episode(root / "data", "videos-ep0")


def test_hands_are_drawn_where_the_keypoints_are_with_left_right_colours(dataset):
    root, human, _ = dataset
    view = viz.load_episode(root, "videos-ep0")
    img = viz.render_frame(view, 0, short_side=360, inset=False, caption=False)
    assert img.shape == (360, 640, 3)  # the 224-px JPEG is drawn on at 360 px: same grid as the source here
    base = viz.base_image(view, 0, 360)
    uv = viz.hand_pixels(view, 0, 640, 360)
    np.testing.assert_allclose(uv, human.hands.keypoints_2d[0], atol=1e-3)
    for hand in (0, 1):
        mid = (uv[hand, 9] + uv[hand, 10]) / 2  # middle of the middle-finger bone
        assert near_colour(img, mid, viz.HAND_COLOURS[hand]), hand
        assert near_colour(img, uv[hand, 0], (255, 255, 255), radius=1, tol=10)  # white wrist dot
        assert not near_colour(img, mid, viz.HAND_COLOURS[1 - hand], tol=25)
    # Frame 1 has no right hand: nothing is drawn there.
    img1 = viz.render_frame(view, 1, short_side=360, inset=False, caption=False)
    base1 = viz.base_image(view, 1, 360)
    u, v = uv[1, 9].round().astype(int)
    np.testing.assert_array_equal(img1[v - 3 : v + 4, u - 3 : u + 4], base1[v - 3 : v + 4, u - 3 : u + 4])
    assert not np.array_equal(img, base)


def test_trajectory_inset_marks_the_path_and_invalid_poses(dataset):
    root, _, _ = dataset
    view = viz.load_episode(root, "videos-ep0")
    img = viz.render_frame(view, 7, short_side=360, caption=False)
    inset = img[6:116, 640 - 116 : 640 - 6].reshape(-1, 3).astype(int)
    green = (np.abs(inset - np.array(viz.PATH_COLOUR)).max(axis=1) < 40).sum()
    assert green > 20  # the travelled path (frames 0-4 and 6-7; 5 is invalid)
    base = viz.base_image(view, 7, 360)[6:116, 640 - 116 : 640 - 6].reshape(-1, 3).astype(int)
    assert inset.mean() < base.mean()  # darkened panel
    invalid = viz.render_frame(view, 5, short_side=360, caption=False)[6:116, 640 - 116 : 640 - 6]
    red_text = np.abs(invalid.reshape(-1, 3).astype(int) - [255, 80, 80]).max(axis=1) < 60
    assert red_text.any()  # "pose invalid"


def test_pseudo_hand_is_drawn_as_rings(dataset):
    root, _, gripper = dataset
    view = viz.load_episode(root, "droid-ep0")
    assert view.embodiment == "parallel_gripper"
    uv = viz.hand_pixels(view, 0, 640, 360)
    np.testing.assert_allclose(uv[0], project(gripper.hands.keypoints_cam[0, 0], INTR.K), atol=1e-3)
    img = viz.render_frame(view, 0, short_side=360, inset=False, caption=False)
    ring_mid = (uv[0, 1 + 0 * 4 + 3] + uv[0, 1 + 1 * 4 + 3]) / 2  # outer ring between angles 0 and 1
    assert near_colour(img, ring_mid, viz.HAND_COLOURS[0])


def test_contact_sheet_png_and_mp4_through_the_cli(dataset, tmp_path):
    root, _, _ = dataset
    sheet = viz.contact_sheet(viz.load_episode(root, "videos-ep0"), count=6, columns=3, short_side=120)
    assert sheet.shape == (2 * 120 + 3 * 4, 3 * 213 + 4 * 4, 3)
    png = tmp_path / "sheet.png"
    assert main(["viz", str(root), "--episode", "videos-ep0", "--out", str(png), "--count", "4"]) == 0
    assert png.stat().st_size > 10_000
    one = tmp_path / "one.png"
    assert main(["viz", str(root), "--episode", "videos-ep0", "--out", str(one), "--frame", "3"]) == 0
    mp4 = tmp_path / "ep.mp4"
    assert main(["viz", str(root), "--episode", "droid-ep0", "--out", str(mp4), "--size", "240"]) == 0
    with av.open(str(mp4)) as c:
        stream = c.streams.video[0]
        decoded = list(c.decode(stream))
        assert len(decoded) == N and (decoded[0].width, decoded[0].height) == (426, 240)
        assert abs(float(stream.average_rate) - 25.0) < 0.01
    assert main(["viz", str(root), "--episode", "nope", "--out", str(png)]) == 2
    assert main(["viz", str(root), "--episode", "videos-ep0", "--out", str(tmp_path / "x.gif")]) == 2
    assert main(["viz", str(root), "--episode", "videos-ep0", "--out", str(one), "--frame", "99"]) == 2


def test_frames_come_from_the_source_video_when_the_dataset_stores_none(dataset, shared_data, tmp_path):
    _, human, _ = dataset
    video = shared_data / "hand_video" / "mediapipe_hand_landmarker_test_video.mp4"
    (tmp_path / "input").mkdir()
    (tmp_path / "input" / "ep0.mp4").symlink_to(video)  # the episode's relpath under the input root
    root = tmp_path / "no-images"
    writer = DatasetWriter(root)
    writer.write_shard("videos", "train", "shard-000", [dataclasses.replace(human, images=None)], "cfg")
    writer.finalize()
    view = viz.load_episode(root, "videos-ep0")
    assert view.images is None
    blank = viz.render_frame(view, 2, short_side=360, inset=False, caption=False)
    assert (blank[0, 0] == 90).all()  # grey canvas without frames
    viz.attach_source_frames(view, tmp_path / "input")
    expected = [f.image for f, _ in zip(FrameReader(str(video)), range(N))]
    np.testing.assert_array_equal(view.images[2], expected[2])
    out = tmp_path / "from_video.png"
    argv = ["viz", str(root), "--episode", "videos-ep0", "--out", str(out), "--frame", "2",
            "--input", str(tmp_path / "input")]
    assert main(argv) == 0 and out.stat().st_size > 10_000
