"""Drawing an episode of a written dataset: hands, pseudo-hands and a camera-trajectory inset.

This is how a person checks frames and handedness. It reads the episode through the dataset reader (``meta/
episodes.parquet`` + the episode's rows of ``data/<source>/<split>/*.parquet``) and draws, per frame:

* both hands, 21 keypoints with bones, **left in blue, right in orange**, an ``L``/``R`` tag at
  the wrist (``keypoints_2d`` are source-frame pixels; they are scaled onto the stored image);
* a parallel gripper's pseudo-hand (``embodiment == "parallel_gripper"``): the centre and its four
  concentric rings of five points instead of finger bones;
* a top-down inset of the camera positions (x-z plane of the first camera for estimated worlds;
  the two widest axes otherwise), the path so far, the current heading, gaps where the pose is
  invalid, whether the scale is metric, and the rotation since the first valid frame (degrees).

Outputs: one frame or a contact sheet as PNG, or the whole episode as MP4 (PyAV, H.264).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from .dataset.episodes import StoredEpisode
from .dataset.reader import episode_rows, read_episode
from .keypoints import BONES, HAND_NAMES, NUM_HANDS
from .records import EpisodeError

#: RGB colours per hand (left, right) and for invalid camera poses.
HAND_COLOURS: tuple[tuple[int, int, int], tuple[int, int, int]] = ((40, 140, 255), (255, 120, 20))
PATH_COLOUR = (60, 220, 90)
_FRAME_COLUMNS = ("image", "keypoints_2d", "hand_valid", "T_world_cam", "camera_valid", "source_frame_index")


def list_episodes(root: str | Path) -> list[dict]:
    """Rows of ``meta/episodes.parquet`` (ok and failed)."""
    return episode_rows(Path(root))


def load_episode(root: str | Path, episode_id: str) -> StoredEpisode:
    """Read one ok episode with its frames decoded (``images``, None when the dataset stores none);
    ``episode_id`` may be a unique prefix. Raises KeyError / ValueError / FileNotFoundError."""
    root = Path(root)
    rows = list_episodes(root)
    matches = [r for r in rows if r["episode_id"] == episode_id] or \
              [r for r in rows if r["episode_id"].startswith(episode_id)]
    if not matches:
        known = ", ".join(r["episode_id"] for r in rows[:10])
        raise KeyError(f"{root}: no episode {episode_id!r} (first ids: {known})")
    if len(matches) > 1:
        raise KeyError(f"{root}: {episode_id!r} matches {len(matches)} episodes; give more of the id")
    row = matches[0]
    if row["status"] != "ok":
        raise ValueError(f"{root}: episode {row['episode_id']} failed: {row['error']}")
    try:
        view = read_episode(root, row["episode_id"], _FRAME_COLUMNS)
        view.decode_images()
    except EpisodeError as exc:
        raise ValueError(f"{root / row['shard']}: {exc}") from exc
    return view


# ----------------------------------------------------------------------------- drawing


def hand_pixels(view: StoredEpisode, i: int, width: int, height: int) -> np.ndarray:
    """Keypoints (2, 21, 2) of frame ``i`` in pixels of a (width, height) image of it; NaN if missing."""
    uv = np.array(view.keypoints_2d[i], dtype=np.float64)
    sx, sy = width / view.intrinsics.width, height / view.intrinsics.height
    uv[..., 0] = (uv[..., 0] + 0.5) * sx - 0.5
    uv[..., 1] = (uv[..., 1] + 0.5) * sy - 0.5
    uv[~np.asarray(view.hand_valid[i], bool)] = np.nan
    return uv


def _pt(p: np.ndarray) -> tuple[int, int]:
    return int(round(p[0] * 16)), int(round(p[1] * 16))


def draw_hand(image: np.ndarray, uv: np.ndarray, colour: tuple[int, int, int], label: str,
              pseudo: bool = False, thickness: int = 2) -> None:
    """Draw one hand's 21 points in place: bones for a human hand, rings for a gripper pseudo-hand."""
    ok = np.isfinite(uv).all(axis=-1)
    if not ok.any():
        return
    r = max(2, thickness + 1)
    dark = tuple(int(c * 0.55) for c in colour)
    if pseudo:  # rows 1 + 4 i + j: ring j through angles i, plus spokes from the centre
        for j in range(4):
            ring = [1 + 4 * i + j for i in range(5)]
            for a, b in zip(ring, ring[1:] + ring[:1]):
                if ok[a] and ok[b]:
                    cv2.line(image, _pt(uv[a]), _pt(uv[b]), colour, thickness, cv2.LINE_AA, 4)
    else:
        for a, b in BONES:
            if ok[a] and ok[b]:
                cv2.line(image, _pt(uv[a]), _pt(uv[b]), colour, thickness, cv2.LINE_AA, 4)
    for k in np.flatnonzero(ok):
        cv2.circle(image, _pt(uv[k]), r * 16, dark if k else (255, 255, 255), -1, cv2.LINE_AA, 4)
    if ok[0]:
        org = (int(uv[0, 0]) + 6, int(uv[0, 1]) + 14)
        cv2.putText(image, label, org, cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(image, label, org, cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)


def _plane_axes(view: StoredEpisode) -> tuple[int, int]:
    """World axes of the top-down view: x-z for a camera world (y is down), else the two widest."""
    if (view.meta.world_frame or "unknown") in ("first_camera", "first_frame_camera"):
        return 0, 2
    p = view.T_world_cam[view.camera_valid, :3, 3]
    if len(p) < 2:
        return 0, 1
    order = np.argsort(-(p.max(axis=0) - p.min(axis=0)))
    return tuple(sorted(order[:2].tolist()))  # type: ignore[return-value]


def draw_trajectory_inset(image: np.ndarray, view: StoredEpisode, i: int, size: int = 110) -> None:
    """Top-down camera path in the top-right corner of ``image`` (in place)."""
    h, w = image.shape[:2]
    size = min(size, h // 2, w // 2)
    x0, y0 = w - size - 6, 6
    roi = image[y0 : y0 + size, x0 : x0 + size]
    roi[:] = (0.35 * roi).astype(np.uint8)
    a, b = _plane_axes(view)
    valid = view.camera_valid
    pos = view.T_world_cam[:, :3, 3][:, [a, b]]
    heading = view.T_world_cam[:, :3, 2][:, [a, b]]  # camera z axis (viewing direction)
    if a == 0 and b == 2:
        pos = pos * [1, -1]  # forward up in the inset
        heading = heading * [1, -1]
    span = np.ptp(pos[valid], axis=0).max() if valid.any() else 0.0
    centre = (pos[valid].max(axis=0) + pos[valid].min(axis=0)) / 2 if valid.any() else np.zeros(2)
    scale = (size - 24) / span if span > 1e-9 else 1.0
    to_px = lambda p: (np.array([x0 + size / 2, y0 + size / 2]) + (p - centre) * scale)  # noqa: E731
    for seg_end in range(1, len(view)):
        s = seg_end - 1
        if valid[s] and valid[seg_end]:
            colour = PATH_COLOUR if seg_end <= i else (110, 110, 110)
            cv2.line(image, _pt(to_px(pos[s])), _pt(to_px(pos[seg_end])), colour, 1, cv2.LINE_AA, 4)
    if valid[i]:
        c = to_px(pos[i])
        hd = heading[i] / max(np.linalg.norm(heading[i]), 1e-9)
        cv2.arrowedLine(image, _pt(c), _pt(c + 14 * hd), (255, 255, 255), 1, cv2.LINE_AA, 4, 0.35)
        cv2.circle(image, _pt(c), 3 * 16, PATH_COLOUR, -1, cv2.LINE_AA, 4)
    else:
        cv2.putText(image, "pose invalid", (x0 + 4, y0 + size // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.35,
                    (255, 80, 80), 1, cv2.LINE_AA)
    if not view.meta.translation_metric:
        unit = "up to scale"
    else:
        unit = f"{span:.2f} m" if span >= 1.0 else f"{100 * span:.1f} cm"
    cv2.putText(image, f"camera ({unit})", (x0 + 3, y0 + size - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.3,
                (230, 230, 230), 1, cv2.LINE_AA)
    first = int(np.argmax(valid)) if valid.any() else None
    if first is not None and valid[i]:  # rotation since the first valid frame: metric, unlike translation
        R = view.T_world_cam[first, :3, :3].T @ view.T_world_cam[i, :3, :3]
        angle = np.degrees(np.arccos(np.clip((np.trace(R) - 1) / 2, -1.0, 1.0)))
        cv2.putText(image, f"rot {angle:.1f} deg", (x0 + 3, y0 + 11), cv2.FONT_HERSHEY_SIMPLEX, 0.3,
                    (230, 230, 230), 1, cv2.LINE_AA)


def base_image(view: StoredEpisode, i: int, short_side: int) -> np.ndarray:
    """The stored frame (or a grey canvas of the source aspect) with its short side ``short_side`` px."""
    if view.images is not None:
        img = view.images[i]
    else:
        img = np.full((view.intrinsics.height, view.intrinsics.width, 3), 90, np.uint8)
    h, w = img.shape[:2]
    s = short_side / min(h, w)
    size = (int(round(w * s)), int(round(h * s)))
    return cv2.resize(img, size, interpolation=cv2.INTER_LINEAR if s > 1 else cv2.INTER_AREA)


def render_frame(view: StoredEpisode, i: int, short_side: int = 360, inset: bool = True,
                 caption: bool = True) -> np.ndarray:
    """RGB uint8 image of frame ``i`` with hands (and pseudo-hands), inset and a caption."""
    img = base_image(view, i, short_side).copy()
    h, w = img.shape[:2]
    uv = hand_pixels(view, i, w, h)
    pseudo = view.embodiment != "human"
    thickness = max(1, round(short_side / 240))
    for hand in range(NUM_HANDS):
        label = ("L", "R")[hand] if not pseudo else ("gripper L", "gripper R")[hand]
        draw_hand(img, uv[hand], HAND_COLOURS[hand], label, pseudo=pseudo, thickness=thickness)
    if inset:
        draw_trajectory_inset(img, view, i)
    if caption:
        hands = "+".join(HAND_NAMES[k] for k in range(NUM_HANDS) if view.hand_valid[i, k]) or "no hands"
        text = f"{view.episode_id[:28]}  #{int(view.frame_index[i])}  t={view.timestamp[i]:.2f}s  {hands}"
        cv2.putText(img, text, (5, h - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(img, text, (5, h - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return img


def contact_sheet(view: StoredEpisode, indices: list[int] | None = None, count: int = 12, columns: int = 4,
                  short_side: int = 240, inset: bool = True) -> np.ndarray:
    """A grid of rendered frames (evenly spaced ``count`` frames unless ``indices`` are given)."""
    if indices is None:
        spaced = np.linspace(0, len(view) - 1, min(count, len(view))).round().astype(int)
        indices = sorted(set(spaced.tolist()))
    for i in indices:
        if not 0 <= i < len(view):
            raise IndexError(f"frame {i} outside the episode's {len(view)} frames")
    tiles = [render_frame(view, i, short_side, inset) for i in indices]
    th, tw = tiles[0].shape[:2]
    columns = max(1, min(columns, len(tiles)))
    rows = -(-len(tiles) // columns)
    sheet = np.full((rows * th + (rows + 1) * 4, columns * tw + (columns + 1) * 4, 3), 20, np.uint8)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, columns)
        y, x = 4 + r * (th + 4), 4 + c * (tw + 4)
        sheet[y : y + th, x : x + tw] = tile
    return sheet


def write_png(path: str | Path, image: np.ndarray) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f"{path}: could not write the PNG")


def write_mp4(path: str | Path, view: StoredEpisode, fps: float | None = None, short_side: int = 360,
              inset: bool = True, stride: int = 1) -> int:
    """Render every ``stride``-th frame into an H.264 MP4; returns the number of frames written."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fps is None:
        duration = view.timestamp[-1] - view.timestamp[0] if len(view) > 1 else 0.0
        fps = (len(view) - 1) / duration if duration > 0 else 10.0
        fps /= stride
    written = 0
    with av.open(str(path), mode="w") as container:
        stream = None
        for i in range(0, len(view), stride):
            img = render_frame(view, i, short_side, inset)
            img = img[: img.shape[0] // 2 * 2, : img.shape[1] // 2 * 2]  # yuv420p needs even sizes
            if stream is None:
                stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
                stream.width, stream.height = img.shape[1], img.shape[0]
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": "20", "preset": "veryfast"}
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
            written += 1
        if stream is not None:
            for packet in stream.encode():
                container.mux(packet)
    return written


def episode_summary(view: StoredEpisode) -> dict:
    """Small facts printed by the CLI next to the picture."""
    return {
        "episode_id": view.episode_id, "frames": len(view), "source": view.source,
        "embodiment": view.embodiment,
        "hands_visible": {HAND_NAMES[k]: float(view.hand_valid[:, k].mean()) for k in range(NUM_HANDS)},
        "camera_valid": float(view.camera_valid.mean()), "translation_metric": bool(view.meta.translation_metric),
        "images": view.images is not None,
    }


def attach_source_frames(view: StoredEpisode, input_root: str | Path) -> None:
    """Fill ``view.images`` from the source video (``<input_root>/<source_path>``) when the dataset stores
    no frames: the frames at ``source_frame_index``, full resolution (one sequential decode)."""
    from .video_io import read_frames_at

    view.images = read_frames_at(str(Path(input_root) / view.meta.source_path), view.source_frame_index)
