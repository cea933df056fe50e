"""Per-track 3D lift of a hand: one hand size per track, smoothed depth, 3D that lands on the 2D.

Input per frame and hand slot: the 2D keypoints (px, the frame's pixel grid) and the estimator's
metric hand-centred shape (MediaPipe world landmarks, metres). Output: camera-frame keypoints
(metres, OpenCV axes) whose projection with K is exactly the stored 2D.

Steps, per *track* (a run of valid frames of one slot; a gap longer than ``LiftConfig.restart_gap``
frames starts a new track, whose hand size is estimated afresh):

1. **Viewing ray** (``ray_rotation``): the shape is rotated by the rotation that takes the optical
   axis onto the ray through the hand's 2D centre, as a crop-based estimator sees the hand along
   that ray; on a wide field of view (EgoDex 105 deg) hands sit up to ~50 deg off the axis.
2. **One hand size per track** (``hand_size="track"``): each frame's shape is scaled so that its
   bone lengths match the track's, the per-bone median over the track (robust to the frames where
   the estimator's shape shrinks or grows). ``"frame"`` keeps every frame's own size.
3. **Depth**: the scaled shape is placed by :func:`geometry.lift_to_camera` (translation that best
   reprojects it onto the 2D), then (``pose="pnp"``) its rotation and translation are refined
   together (OpenCV's iterative PnP from that start): MediaPipe's world landmarks are 12-31 deg
   off the camera axes, so a translation alone cannot fit the 2D foreshortening. Each keypoint's
   depth is that of the placed shape.
4. **Temporal smoothing** (:mod:`.smoothing`): the log depth of the wrist and the keypoints' depth
   offsets from the wrist are smoothed over the track (forward-backward, whole track).
5. **Back-projection**: each keypoint is put on its own 2D ray at its (smoothed) depth, so the 3D
   reprojects onto the stored 2D (0 px, up to float32 rounding).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import cv2
import numpy as np

from ..geometry import lift_to_camera, project, unproject
from ..keypoints import NUM_HANDS, NUM_KEYPOINTS, WRIST, bone_lengths
from .smoothing import SmootherConfig, rts_smooth


@dataclass(frozen=True)
class LiftConfig:
    """How hands are lifted to 3D (hashed into the estimator config; see the module doc).

    ``method``: ``"backproject"`` (3D on the 2D rays) or ``"rigid"`` (the placed shape as it is,
    which does not reproject onto the 2D; with ``pose="translation"``, ``hand_size="frame"``, no
    ray rotation and no smoother it is the per-frame lift of ``step()``). ``ray_rotation``: rotate
    the shape onto the viewing ray first. ``hand_size``: ``"track"`` or ``"frame"``.
    ``restart_gap``: a slot missing for more than this many frames starts a new track. ``pose``:
    ``"pnp"`` (rotation and translation) or ``"translation"``. ``smoother``: depth smoothing over
    each track.
    """

    method: str = "backproject"
    ray_rotation: bool = True
    hand_size: str = "track"
    restart_gap: int = 5
    pose: str = "pnp"
    smoother: SmootherConfig = field(default_factory=SmootherConfig)

    def __post_init__(self):
        if self.method not in ("backproject", "rigid"):
            raise ValueError(f"lift method must be 'backproject' or 'rigid', got {self.method!r}")
        if self.hand_size not in ("track", "frame"):
            raise ValueError(f"hand_size must be 'track' or 'frame', got {self.hand_size!r}")
        if self.restart_gap < 0:
            raise ValueError("restart_gap must be >= 0")
        if self.pose not in ("pnp", "translation"):
            raise ValueError(f"pose must be 'pnp' or 'translation', got {self.pose!r}")

    def to_dict(self) -> dict:
        return asdict(self)


def _place(shape: np.ndarray, uv: np.ndarray, K: np.ndarray, pose: str) -> tuple[np.ndarray, float]:
    """``shape`` (21, 3) m placed in the camera to reproject onto ``uv`` (21, 2) px: the translation
    (closed form; Gauss-Newton too when it is the final pose), then for ``pose="pnp"`` rotation and
    translation together (OpenCV's iterative PnP, Levenberg-Marquardt from that start). Returns the
    placed points and their RMS pixel residual, or NaN points if every placement fails or lands a
    keypoint behind the camera."""
    failed = np.full((NUM_KEYPOINTS, 3), np.nan), float("nan")
    try:
        lift = lift_to_camera(shape, uv, K, refine_iterations=0 if pose == "pnp" else 3)
    except np.linalg.LinAlgError:
        return failed
    best = lift.points_cam if np.all(lift.points_cam[:, 2] > 0) else None
    if pose == "pnp" and best is not None:
        ok, rvec, tvec = cv2.solvePnP(shape, uv, K, None, np.zeros(3), lift.translation.copy(), True,
                                      cv2.SOLVEPNP_ITERATIVE)
        if ok:
            P = shape @ cv2.Rodrigues(rvec)[0].T + tvec.ravel()
            if np.all(P[:, 2] > 0):
                best = P
    if best is None:
        return failed
    err = np.linalg.norm(project(best, K) - uv, axis=-1)
    return best, float(np.sqrt(np.mean(err**2)))


def ray_rotation(pixel: np.ndarray, K: np.ndarray) -> np.ndarray:
    """3x3 rotation taking the optical axis (0, 0, 1) onto the viewing ray of ``pixel`` (u, v), the
    smallest such rotation (axis perpendicular to both)."""
    K = np.asarray(K, dtype=np.float64)
    y = (pixel[1] - K[1, 2]) / K[1, 1]
    d = np.array([(pixel[0] - K[0, 2] - K[0, 1] * y) / K[0, 0], y, 1.0])
    d /= np.linalg.norm(d)
    axis = np.array([-d[1], d[0], 0.0])  # (0, 0, 1) x d
    s, c = np.linalg.norm(axis), d[2]
    if s < 1e-12:
        return np.eye(3)
    k = axis / s
    Kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + s * Kx + (1 - c) * Kx @ Kx


def track_segments(valid: np.ndarray, restart_gap: int) -> list[np.ndarray]:
    """Frame indices of each track of one slot: valid frames, split where a gap exceeds ``restart_gap``."""
    idx = np.flatnonzero(np.asarray(valid, bool))
    if idx.size == 0:
        return []
    cuts = np.flatnonzero(np.diff(idx) > restart_gap + 1) + 1
    return np.split(idx, cuts)


def track_bone_lengths(world: np.ndarray) -> np.ndarray:
    """The track's hand: per-bone median length (20,) m over the frames of ``world`` (T, 21, 3)."""
    return np.nanmedian(bone_lengths(world), axis=0)


def size_scale(world: np.ndarray, bones: np.ndarray) -> np.ndarray:
    """Per-frame factor (T,) that brings each frame's bones closest to ``bones`` (median ratio)."""
    frame = bone_lengths(world)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.nanmedian(bones[None] / frame, axis=1)


@dataclass
class LiftedTrack:
    """Result of :func:`lift_slot` for one slot: keypoints_cam (N, 21, 3) m (NaN where not valid),
    fit_residual_px (N,) RMS residual of the rigid placement (how well the shape fits the 2D),
    tracks: number of tracks, scale (N,) the size factor applied (NaN where not valid)."""

    keypoints_cam: np.ndarray
    fit_residual_px: np.ndarray
    tracks: int
    scale: np.ndarray


def lift_slot(keypoints_2d: np.ndarray, world: np.ndarray, valid: np.ndarray, K: np.ndarray,
              cfg: LiftConfig = LiftConfig()) -> LiftedTrack:
    """Lift one slot's frames (see the module doc). keypoints_2d (N, 21, 2) px, world (N, 21, 3) m
    hand-centred, valid (N,). A frame without finite 2D and shape is left invalid (NaN)."""
    uv = np.asarray(keypoints_2d, dtype=np.float64)
    W = np.asarray(world, dtype=np.float64)
    n = len(uv)
    ok = np.asarray(valid, bool) & np.all(np.isfinite(uv), axis=(1, 2)) & np.all(np.isfinite(W), axis=(1, 2))
    out = np.full((n, NUM_KEYPOINTS, 3), np.nan)
    residual = np.full(n, np.nan)
    scale = np.full(n, np.nan)
    segments = track_segments(ok, cfg.restart_gap)
    for seg in segments:
        shape = W[seg]
        if cfg.ray_rotation:
            shape = np.stack([w @ ray_rotation(u.mean(axis=0), K).T for w, u in zip(shape, uv[seg])])
        if cfg.hand_size == "track":
            s = size_scale(shape, track_bone_lengths(shape))
            s = np.where(np.isfinite(s) & (s > 0), s, 1.0)
        else:
            s = np.ones(len(seg))
        scale[seg] = s
        placed = np.full((len(seg), NUM_KEYPOINTS, 3), np.nan)
        for j, t in enumerate(seg):
            placed[j], residual[t] = _place(shape[j] * s[j], uv[t], K, cfg.pose)
        depth = placed[..., 2]
        if cfg.method == "rigid":
            out[seg] = placed
            continue
        span = np.arange(seg[0], seg[-1] + 1)  # the smoother bridges the short gaps inside a track
        series = np.full((len(span), NUM_KEYPOINTS), np.nan)
        series[seg - seg[0], 0] = np.log(depth[:, WRIST])
        series[seg - seg[0], 1:] = depth[:, 1:] - depth[:, [WRIST]]
        smooth = rts_smooth(series, cfg.smoother)[seg - seg[0]]
        z_wrist = np.exp(smooth[:, 0])
        z = np.concatenate([z_wrist[:, None], z_wrist[:, None] + smooth[:, 1:]], axis=1)
        z = np.where(np.isfinite(depth[:, [WRIST]]), z, np.nan)  # a frame whose placement failed stays out
        points = unproject(uv[seg], z, K)
        good = np.all(np.isfinite(points), axis=(1, 2)) & np.all(points[..., 2] > 0, axis=1)
        out[seg[good]] = points[good]
    return LiftedTrack(out, residual, len(segments), scale)


def lift_hands(keypoints_2d: np.ndarray, world: np.ndarray, valid: np.ndarray, K: np.ndarray,
               cfg: LiftConfig = LiftConfig()) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """Both slots: keypoints_cam (N, 2, 21, 3) m, fit residual (N, 2) px, lifted (N, 2) bool, and
    counts for ``processing`` (tracks per slot, hand-size factor range)."""
    n = len(valid)
    cam = np.full((n, NUM_HANDS, NUM_KEYPOINTS, 3), np.nan)
    residual = np.full((n, NUM_HANDS), np.nan)
    tracks, scales = [], []
    for s in range(NUM_HANDS):
        res = lift_slot(keypoints_2d[:, s], world[:, s], valid[:, s], K, cfg)
        cam[:, s], residual[:, s] = res.keypoints_cam, res.fit_residual_px
        tracks.append(res.tracks)
        scales.append(res.scale[np.isfinite(res.scale)])
    lifted = np.all(np.isfinite(cam), axis=(2, 3))
    allscale = np.concatenate(scales)
    info = {
        "lift": cfg.to_dict(),
        "tracks_left": tracks[0],
        "tracks_right": tracks[1],
        "hand_size_factor_p5_p95": [round(float(np.percentile(allscale, q)), 4) for q in (5, 95)]
        if allscale.size else None,
        "lift_failed_at_finish": int((np.asarray(valid, bool) & ~lifted).sum()),
    }
    return cam, residual, lifted, info
