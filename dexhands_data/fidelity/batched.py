"""Arithmetic on many small vectors and 3 x 3 matrices at once, written on their components.

numpy's stacked ``matmul`` costs ~300 ns per 3 x 3 product and its reductions over a short axis
~40 ns per row; written as a few whole-array operations on components (or one matrix-vector
product for a mean), the same work costs several times less. The scoring code also walks long
episodes in chunks of :data:`CHUNK_ROWS` rows, so that the dozen passes over each chunk's
intermediates hit the cache instead of memory. Every function keeps its input's float dtype.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Rows per chunk (frames, hand pairs or frame pairs): a chunk's (rows, 21, 3) float32 arrays are
#: ~1 MB, so its intermediates stay in cache.
CHUNK_ROWS = 4096


def chunk_slices(n: int, rows: int = CHUNK_ROWS) -> list[slice]:
    """Slices covering ``range(n)`` in chunks of ``rows`` (one empty slice when ``n`` is 0, so that
    callers always get typed, empty results back)."""
    return [slice(k, k + rows) for k in range(0, max(n, 1), rows)]


def norm_last(a: np.ndarray) -> np.ndarray:
    """Euclidean norm over a short last axis (2 or 3 components)."""
    a = np.asarray(a)
    sq = np.square(a[..., 0])
    for c in range(1, a.shape[-1]):
        sq += np.square(a[..., c])
    return np.sqrt(sq, out=sq)


def keypoint_mean(x: np.ndarray) -> np.ndarray:
    """Mean over the last axis (the keypoints) as one matrix-vector product; NaN anywhere in a row
    gives NaN."""
    x = np.asarray(x)
    k = x.shape[-1]
    w = np.full(k, 1.0 / k, x.dtype if x.dtype.kind == "f" else np.float64)
    return (x.reshape(-1, k) @ w).reshape(x.shape[:-1])


def components_first(x: np.ndarray) -> np.ndarray:
    """(..., C) -> (C, ...) contiguous: the component-major layout whose rows are the long, contiguous
    arrays numpy is fast on (a (P, 21, 3) array has inner loops of length 3)."""
    return np.ascontiguousarray(np.moveaxis(np.asarray(x), -1, 0))


@dataclass(frozen=True)
class HandRows:
    """Keypoints of N frames x 2 hand slots, component-major once for all the gathers of a score:
    ``comps`` (C, 2N, K), hand (frame n, slot s) in row 2n + s. One transpose of the whole array
    (~20 ms per 100k frames) replaces a transpose per gathered chunk (several times that)."""

    comps: np.ndarray

    @classmethod
    def of(cls, keypoints: np.ndarray | HandRows) -> HandRows:
        """From contract keypoints (N, 2, K, C) (a HandRows passes through)."""
        if isinstance(keypoints, HandRows):
            return keypoints
        kp = np.asarray(keypoints)
        n, slots, k, c = kp.shape
        if slots != 2:
            raise ValueError(f"keypoints of shape {kp.shape}: expected (N, 2, K, C), left then right hand")
        return cls(components_first(kp).reshape(c, 2 * n, k))

    def take(self, frame: np.ndarray, slot: np.ndarray) -> np.ndarray:
        """The hands (frame[i], slot[i]) as (C, S, K)."""
        return np.take(self.comps, 2 * np.asarray(frame) + np.asarray(slot), axis=1)


def norm_first(v: np.ndarray) -> np.ndarray:
    """Euclidean norm over the first axis of component-major vectors (C, ...) -> (...)."""
    sq = np.square(v[0])
    for c in range(1, len(v)):
        sq += np.square(v[c])
    return np.sqrt(sq, out=sq)


def linear_map(M: np.ndarray, X: np.ndarray, offset: np.ndarray | None = None) -> np.ndarray:
    """``M[:, :, p] @ x + offset[:, p]`` for component-major points X (3, P, K): one 3 x 3 matrix per
    row p, component-major M (3, 3, P) (a (P, 3, 3) stack passes as ``np.moveaxis(M, 0, -1)``), and
    one offset (3, P); in X's dtype."""
    M = np.asarray(M, X.dtype)
    out = np.empty_like(X)
    for a in range(3):
        np.multiply(X[0], M[a, 0][:, None], out=out[a])
        out[a] += X[1] * M[a, 1][:, None]
        out[a] += X[2] * M[a, 2][:, None]
        if offset is not None:
            out[a] += np.asarray(offset[a], X.dtype)[:, None]
    return out


@dataclass(frozen=True)
class RelativePoses:
    """``T_ci_cj = inv(T_world_ci) @ T_world_cj`` of P frame pairs (camera j -> camera i), component-
    major: rotations R (3, 3, P), translations t (3, P) m (or the track's unit)."""

    R: np.ndarray
    t: np.ndarray

    def __len__(self) -> int:
        return int(self.t.shape[1])

    def subset(self, rows: np.ndarray | slice) -> RelativePoses:
        return RelativePoses(self.R[..., rows], self.t[:, rows])


@dataclass(frozen=True)
class PoseEntries:
    """Poses ``T_world_cam`` (M, 4, 4) entry-major, once for all the pairs of a score: ``entries``
    (4, 4, M), so that gathering a pair's poses is one ``take`` per frame side instead of a gather
    plus a transpose per call."""

    entries: np.ndarray

    @classmethod
    def of(cls, T_world_cam: np.ndarray | PoseEntries) -> PoseEntries:
        if isinstance(T_world_cam, PoseEntries):
            return T_world_cam
        return cls(np.ascontiguousarray(np.moveaxis(np.asarray(T_world_cam), 0, -1)))


def relative_poses(T_world_cam: np.ndarray | PoseEntries, rows_i: np.ndarray,
                   rows_j: np.ndarray) -> RelativePoses:
    """The relative poses of the frame pairs ``(rows_i, rows_j)`` of poses ``T_world_cam`` (M, 4, 4)
    (or their :class:`PoseEntries`): ``R = R_i^T R_j``, ``t = R_i^T (t_j - t_i)``. The rigid form,
    not the 4 x 4 product: a pose whose homogeneous entry is not exactly 1 (EgoDex stores 0.99999976)
    does not leak its absolute position into the relative translation."""
    entries = PoseEntries.of(T_world_cam).entries
    Ti, Tj = np.take(entries, rows_i, axis=2), np.take(entries, rows_j, axis=2)  # (4, 4, P)
    d = Tj[:3, 3] - Ti[:3, 3]
    R = np.empty((3, 3, Ti.shape[-1]), entries.dtype)
    t = np.empty((3, Ti.shape[-1]), entries.dtype)
    for a in range(3):
        t[a] = Ti[0, a] * d[0] + Ti[1, a] * d[1] + Ti[2, a] * d[2]
        for b in range(3):
            R[a, b] = Ti[0, a] * Tj[0, b] + Ti[1, a] * Tj[1, b] + Ti[2, a] * Tj[2, b]
    return RelativePoses(R, t)


def rotation_angles_deg(R: np.ndarray) -> np.ndarray:
    """Rotation angles (deg) of component-major rotations R (3, 3, P), as ``atan2(sin, cos)`` from the
    skew and trace parts: exact near 0 (``arccos`` of a trace just below 3 is not), and exactly 0
    for the symmetric ``R_a^T R_a`` of a float32-rounded rotation compared with itself."""
    sin2 = np.sqrt(np.square(R[2, 1] - R[1, 2]) + np.square(R[0, 2] - R[2, 0]) + np.square(R[1, 0] - R[0, 1]))
    return np.degrees(np.arctan2(sin2 / 2.0, (R[0, 0] + R[1, 1] + R[2, 2] - 1.0) / 2.0))


def angle_between_deg(Ra: np.ndarray, Rb: np.ndarray) -> np.ndarray:
    """Rotation angles (deg) of ``Ra^T Rb`` for component-major rotations (3, 3, P)."""
    M = np.empty_like(Ra)
    for a in range(3):
        for b in range(3):
            M[a, b] = Ra[0, a] * Rb[0, b] + Ra[1, a] * Rb[1, b] + Ra[2, a] * Rb[2, b]
    return rotation_angles_deg(M)
