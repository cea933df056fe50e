"""Project Aria MPS outputs: trajectory, online calibration and hand tracking, and their time alignment.

CSVs are read by column name with Polars and processed vectorised in NumPy (a 1 kHz trajectory of an
hour is millions of rows: 11,517 rows parse in ~60 ms, ~4x faster than projectaria_tools' per-row
objects); everything is tested against ``projectaria_tools.core.mps``'s own parsers.

Frames and units:

* Times are **device time in seconds** (``tracking_timestamp_us * 1e-6``), the clock of the VRS
  ``DEVICE_TIME`` capture timestamps.
* ``T_world_device`` (4x4, metres) maps the Aria device frame (Gen1: ``camera-slam-left``) into the
  MPS world (gravity aligned, origin arbitrary per recording). CSV quaternions are **x, y, z, w**.
* Online calibration ``UnitQuaternion`` is ``[w, [x, y, z]]`` (**w first**).
* Hand landmarks are in the device frame, metres; they are re-ordered here from Aria's landmark order
  into the canonical MANO order (``keypoints.KEYPOINT_NAMES``) with ``ARIA_TO_CANONICAL``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from scipy.spatial.transform import Rotation

from ..geometry import se3
from ..keypoints import NUM_HANDS, NUM_KEYPOINTS
from ..records import EpisodeError

#: canonical row -> Aria landmark id (formats.md §4). Row 1 (thumb CMC) has no Aria landmark (-1);
#: Aria landmark 20 (palm centre) is dropped.
ARIA_TO_CANONICAL: tuple[int, ...] = (
    5,  # wrist
    -1, 6, 7, 0,  # thumb: CMC (none), intermediate, distal, tip
    8, 9, 10, 1,  # index: proximal, intermediate, distal, tip
    11, 12, 13, 2,  # middle
    14, 15, 16, 3,  # ring
    17, 18, 19, 4,  # little
)
assert len(ARIA_TO_CANONICAL) == NUM_KEYPOINTS

#: thumb CMC ~ wrist + a (thumb MCP - wrist) + b (index MCP - wrist): least squares on the MANO joints of
#: the DexYCB ground truth in shared_data/hand3d_gt/dexycb_nc (48 labelled views of 6 poses; mean error
#: 9.0 mm, max 11.4 mm). Aria has no CMC landmark; the estimate keeps the hand usable (confidence 0).
THUMB_CMC_COEFFS: tuple[float, float] = (0.508, 0.045)

_POSE_COLUMNS = ("tx", "ty", "tz", "qx", "qy", "qz", "qw")
_QUATERNION_NORM_TOLERANCE = 1e-3


# ----------------------------------------------------------------------------- CSV reading


def _read_csv_columns(
    path: Path, required: tuple[str, ...], optional: tuple[str, ...] = ()
) -> tuple[dict[str, np.ndarray], int]:
    """Float64 columns of a CSV by name: missing ``required`` columns are an error, ``optional`` skipped."""
    try:
        header = [h.strip() for h in pl.read_csv(path, n_rows=0).columns]
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise EpisodeError(f"{path}: cannot read CSV ({exc})") from exc
    missing = [c for c in required if c not in header]
    if missing:
        raise EpisodeError(f"{path}: missing columns {missing}")
    wanted = list(required) + [c for c in optional if c in header]
    try:
        df = pl.read_csv(path, columns=wanted, schema_overrides={c: pl.Float64 for c in wanted})
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise EpisodeError(f"{path}: unreadable CSV rows ({exc})") from exc
    return {c: df[c].to_numpy().astype(np.float64) for c in wanted}, df.height


def _check_times(path: Path, times_us: np.ndarray) -> None:
    if times_us.size and not np.all(np.diff(times_us) > 0):
        bad = int(np.argmax(np.diff(times_us) <= 0))
        raise EpisodeError(f"{path}: tracking_timestamp_us not strictly increasing at data row {bad + 1}")


def _unit_quaternions_xyzw(path: Path, q: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(q, axis=-1)
    bad = ~np.isfinite(norm) | (np.abs(norm - 1.0) > _QUATERNION_NORM_TOLERANCE)
    if np.any(bad):
        i = int(np.argmax(bad))
        raise EpisodeError(
            f"{path}: quaternion of data row {i + 1} is not a unit quaternion (|q| = {norm[i]:.6g})"
        )
    return q / norm[:, None]


# ----------------------------------------------------------------------------- trajectory


@dataclass
class Trajectory:
    """A closed-loop MPS trajectory, T_world_device at each row.

    times_s (M,) device time s, strictly increasing; translation (M, 3) metres; quat_xyzw (M, 4) unit
    quaternions (x, y, z, w); quality (M,) MPS ``quality_score`` (NaN when the column is absent).
    Poses are kept as quaternions (56 bytes a row, not 128): an hour at 1 kHz is 3.6 M rows.
    """

    path: str
    times_s: np.ndarray
    translation: np.ndarray
    quat_xyzw: np.ndarray
    quality: np.ndarray

    @property
    def span_s(self) -> tuple[float, float]:
        return float(self.times_s[0]), float(self.times_s[-1])

    def T_world_device(self, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
        """4x4 poses (k, 4, 4) of the given rows (all by default)."""
        return se3(Rotation.from_quat(self.quat_xyzw[rows].reshape(-1, 4)).as_matrix(),
                   self.translation[rows].reshape(-1, 3))


def read_closed_loop_trajectory(path: str | Path) -> Trajectory:
    """Read ``closed_loop_trajectory.csv`` (or ADT's ``aria_trajectory.csv``, same schema).

    Only ``tracking_timestamp_us`` and ``{tx,ty,tz,qx,qy,qz,qw}_world_device`` are required; geo/ECEF,
    velocity and gravity columns are optional (velocities are never used: HOT3D's are garbage).
    """
    path = Path(path)
    pose_cols = tuple(f"{c}_world_device" for c in _POSE_COLUMNS)
    cols, n = _read_csv_columns(path, ("tracking_timestamp_us", *pose_cols), optional=("quality_score",))
    if n < 2:
        raise EpisodeError(f"{path}: trajectory has {n} poses, need at least 2")
    times_us = cols["tracking_timestamp_us"]
    _check_times(path, times_us)
    t = np.stack([cols[c] for c in pose_cols[:3]], axis=1)
    if not np.all(np.isfinite(t)):
        row = int(np.argmax(~np.isfinite(t).all(axis=1))) + 1
        raise EpisodeError(f"{path}: non-finite translation in data row {row}")
    q = _unit_quaternions_xyzw(path, np.stack([cols[c] for c in pose_cols[3:]], axis=1))
    quality = cols.get("quality_score", np.full(n, np.nan))
    return Trajectory(str(path), times_us * 1e-6, t, q, quality)


def interpolate_poses(
    traj: Trajectory, times_s: np.ndarray, max_gap_s: float = 0.1, edge_tolerance_s: float = 1e-3
) -> tuple[np.ndarray, np.ndarray]:
    """Poses at ``times_s`` (N,): translation linear, rotation slerp between the two bracketing poses.

    Returns T_world_device (N, 4, 4) and valid (N,). A time up to ``edge_tolerance_s`` outside the
    trajectory span takes the end pose (ADT's first RGB frame is 0.1 ms before its first pose); further
    outside, or between two poses more than ``max_gap_s`` apart, it is invalid (identity pose): never
    extrapolated.
    """
    times_s = np.asarray(times_s, dtype=np.float64)
    ts = traj.times_s
    n = times_s.shape[0]
    out = np.tile(np.eye(4), (n, 1, 1))
    inside = (times_s >= ts[0] - edge_tolerance_s) & (times_s <= ts[-1] + edge_tolerance_s)
    hi = np.clip(np.searchsorted(ts, times_s, side="left"), 1, len(ts) - 1)
    lo = hi - 1
    gap = ts[hi] - ts[lo]
    valid = inside & (gap <= max_gap_s)
    if not np.any(valid):
        return out, valid
    lo, hi, tq = lo[valid], hi[valid], times_s[valid]
    w = np.clip((tq - ts[lo]) / (ts[hi] - ts[lo]), 0.0, 1.0)
    # slerp: R = R_lo * exp(w * log(R_lo^T R_hi))
    R_lo = Rotation.from_quat(traj.quat_xyzw[lo])
    delta = (R_lo.inv() * Rotation.from_quat(traj.quat_xyzw[hi])).as_rotvec()
    R = (R_lo * Rotation.from_rotvec(w[:, None] * delta)).as_matrix()
    t = (1.0 - w)[:, None] * traj.translation[lo] + w[:, None] * traj.translation[hi]
    out[valid] = se3(R, t)
    return out, valid


# ----------------------------------------------------------------------------- online calibration


@dataclass
class CameraCalib:
    """One camera of an online-calibration record.

    T_device_camera (4, 4) metres; projection model name, params (Fisheye624: f, cx, cy, k0..k5, p0, p1,
    s0..s3) in pixels of the stored (not rotated) image of ``width`` x ``height``.
    """

    label: str
    model: str
    params: np.ndarray
    T_device_camera: np.ndarray
    width: int
    height: int


def _pose_from_json(path: Path, node: dict) -> np.ndarray:
    w, (x, y, z) = node["UnitQuaternion"]  # w first
    q = _unit_quaternions_xyzw(path, np.array([[x, y, z, w]], dtype=np.float64))[0]
    return se3(Rotation.from_quat(q).as_matrix(), np.asarray(node["Translation"], dtype=np.float64))


def read_online_calibration(
    path: str | Path, label: str = "camera-rgb"
) -> tuple[np.ndarray, list[CameraCalib]]:
    """Device times (s) and the ``label`` camera calibration of each ``online_calibration.jsonl`` line."""
    path = Path(path)
    times, calibs = [], []
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise EpisodeError(f"{path}: cannot read ({exc})") from exc
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            cams = [c for c in rec["CameraCalibrations"] if c["Label"] == label]
            if not cams:
                continue
            cam = cams[0]
            width, height = _calib_image_size(label, cam)
            calibs.append(
                CameraCalib(
                    label,
                    cam["Projection"]["Name"],
                    np.asarray(cam["Projection"]["Params"], dtype=np.float64),
                    _pose_from_json(path, cam["T_Device_Camera"]),
                    width,
                    height,
                )
            )
            times.append(rec["tracking_timestamp_us"] * 1e-6)
        except (KeyError, ValueError, TypeError) as exc:
            raise EpisodeError(f"{path}: line {line_no}: unreadable calibration record ({exc!r})") from exc
    return np.asarray(times, dtype=np.float64), calibs


def _calib_image_size(label: str, cam: dict) -> tuple[int, int]:
    """Image size of an online-calibration camera: stored in newer files, else Aria Gen1's sensor size."""
    if "ImageSize" in cam:
        w, h = cam["ImageSize"]
        return int(w), int(h)
    # Gen1 records omit the size: SLAM cameras are 640x480; the RGB principal point sits near the centre
    # of a square sensor of 1408 or 2880 px.
    if label.startswith("camera-slam"):
        return 640, 480
    cx = float(cam["Projection"]["Params"][1])
    size = 2880 if cx > 1000 else 1408
    return size, size


# ----------------------------------------------------------------------------- hand tracking


@dataclass
class HandSamples:
    """MPS hand tracking, one row per hand-tracking frame.

    times_s (H,) device s; keypoints_device (H, 2, 21, 3) metres, device frame, canonical MANO order,
    left then right, NaN where absent; confidence (H, 2) MPS tracking confidence, -1 = no hand;
    kind: ``"landmarks"`` (hand_tracking_results: 20 of 21 keypoints, no thumb CMC) or ``"wrist"``
    (wrist_and_palm_poses: the wrist only).
    """

    path: str
    times_s: np.ndarray
    keypoints_device: np.ndarray
    confidence: np.ndarray
    kind: str

    @property
    def span_s(self) -> tuple[float, float]:
        return float(self.times_s[0]), float(self.times_s[-1])


def read_hand_tracking_results(path: str | Path) -> HandSamples:
    """Read ``hand_tracking_results.csv`` (21 landmarks per hand, device frame), re-ordered to MANO order."""
    path = Path(path)
    names = ["tracking_timestamp_us", "left_tracking_confidence", "right_tracking_confidence"]
    for side in ("left", "right"):
        for lm in range(21):
            names += [f"{a}_{side}_landmark_{lm}_device" for a in ("tx", "ty", "tz")]
    cols, n = _read_csv_columns(path, tuple(names))
    if n == 0:
        raise EpisodeError(f"{path}: no hand-tracking rows")
    _check_times(path, cols["tracking_timestamp_us"])
    kp = np.full((n, NUM_HANDS, NUM_KEYPOINTS, 3), np.nan)
    conf = np.stack([cols["left_tracking_confidence"], cols["right_tracking_confidence"]], axis=1)
    for h, side in enumerate(("left", "right")):
        for row, lm in enumerate(ARIA_TO_CANONICAL):
            if lm < 0:
                continue
            xyz = [cols[f"{a}_{side}_landmark_{lm}_device"] for a in ("tx", "ty", "tz")]
            kp[:, h, row] = np.stack(xyz, axis=1)
    kp[conf <= 0] = np.nan
    return HandSamples(str(path), cols["tracking_timestamp_us"] * 1e-6, kp, conf, "landmarks")


def read_wrist_and_palm_poses(path: str | Path) -> HandSamples:
    """Read the older ``wrist_and_palm_poses.csv``: only the wrist (canonical row 0) is filled."""
    path = Path(path)
    names = ["tracking_timestamp_us", "left_tracking_confidence", "right_tracking_confidence"]
    for side in ("left", "right"):
        names += [f"{a}_{side}_wrist_device" for a in ("tx", "ty", "tz")]
    cols, n = _read_csv_columns(path, tuple(names))
    if n == 0:
        raise EpisodeError(f"{path}: no hand-tracking rows")
    _check_times(path, cols["tracking_timestamp_us"])
    kp = np.full((n, NUM_HANDS, NUM_KEYPOINTS, 3), np.nan)
    conf = np.stack([cols["left_tracking_confidence"], cols["right_tracking_confidence"]], axis=1)
    for h, side in enumerate(("left", "right")):
        kp[:, h, 0] = np.stack([cols[f"{a}_{side}_wrist_device"] for a in ("tx", "ty", "tz")], axis=1)
    kp[conf <= 0] = np.nan
    return HandSamples(str(path), cols["tracking_timestamp_us"] * 1e-6, kp, conf, "wrist")


def estimate_thumb_cmc(keypoints: np.ndarray) -> np.ndarray:
    """Canonical row 1 (thumb CMC) of hands (..., 21, 3) from the wrist and the thumb and index MCPs."""
    a, b = THUMB_CMC_COEFFS
    w = keypoints[..., 0, :]
    return w + a * (keypoints[..., 2, :] - w) + b * (keypoints[..., 5, :] - w)


# ----------------------------------------------------------------------------- time alignment


def nearest_within(sample_times_s: np.ndarray, query_times_s: np.ndarray, tolerance_s: float) -> np.ndarray:
    """Index of the sample nearest each query time, -1 when the nearest is over ``tolerance_s`` away."""
    st = np.asarray(sample_times_s, dtype=np.float64)
    q = np.asarray(query_times_s, dtype=np.float64)
    if st.size == 0:
        return np.full(q.shape, -1, dtype=np.int64)
    hi = np.clip(np.searchsorted(st, q), 0, len(st) - 1)
    lo = np.clip(hi - 1, 0, len(st) - 1)
    pick = np.where(np.abs(st[lo] - q) <= np.abs(st[hi] - q), lo, hi)
    return np.where(np.abs(st[pick] - q) <= tolerance_s, pick, -1).astype(np.int64)


def check_overlap(hands: HandSamples, traj: Trajectory) -> None:
    """Fail loudly when the hand tracking and the trajectory share no time at all (different recordings)."""
    h0, h1 = hands.span_s
    t0, t1 = traj.span_s
    if h1 < t0 or h0 > t1:
        raise EpisodeError(
            f"{hands.path}: hand tracking covers device time {h0:.3f}-{h1:.3f} s but the trajectory "
            f"{traj.path} covers {t0:.3f}-{t1:.3f} s: no overlap (files from different recordings?)"
        )


@dataclass
class AlignedHands:
    """Hands at frame times: keypoints_device (N, 2, 21, 3), confidence (N, 2) in [0, 1], valid (N, 2),
    sample_index (N,) the hand-tracking row used (-1 none), and why rows were dropped (counts)."""

    keypoints_device: np.ndarray
    confidence: np.ndarray
    valid: np.ndarray
    sample_index: np.ndarray
    dropped: dict[str, int]


def align_hands(
    hands: HandSamples,
    traj: Trajectory,
    frame_times_s: np.ndarray,
    tolerance_s: float,
    edge_tolerance_s: float = 1e-3,
) -> AlignedHands:
    """Hands at each frame time: the nearest hand-tracking row within ``tolerance_s``.

    Hand rows outside the trajectory's time span (widened by ``edge_tolerance_s``, as in
    :func:`interpolate_poses`) are invalid: never extrapolated through a missing camera. No overlap
    between hands and trajectory at all raises :class:`EpisodeError`.
    """
    check_overlap(hands, traj)
    t0, t1 = traj.span_s
    in_span = (hands.times_s >= t0 - edge_tolerance_s) & (hands.times_s <= t1 + edge_tolerance_s)
    usable_times = np.where(in_span, hands.times_s, np.nan)
    idx = nearest_within(hands.times_s, frame_times_s, tolerance_s)
    n = len(frame_times_s)
    kp = np.full((n, NUM_HANDS, NUM_KEYPOINTS, 3), np.nan)
    conf = np.zeros((n, NUM_HANDS))
    valid = np.zeros((n, NUM_HANDS), bool)
    has = idx >= 0
    outside = has & ~np.isfinite(usable_times[np.maximum(idx, 0)])
    use = has & ~outside
    kp[use] = hands.keypoints_device[idx[use]]
    c = hands.confidence[idx[use]]
    conf[use] = np.clip(c, 0.0, 1.0)
    valid[use] = c > 0
    kp[~valid] = np.nan
    conf[~valid] = 0.0
    dropped = {
        "no_sample_within_tolerance": int(np.sum(~has)),
        "sample_outside_trajectory": int(np.sum(outside)),
    }
    return AlignedHands(kp, conf, valid, np.where(use, idx, -1), dropped)
