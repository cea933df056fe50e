"""Temporal smoothing of per-frame hand measurements over one track (a run of frames of one hand).

:func:`rts_smooth` is a forward-backward (Rauch-Tung-Striebel) smoother of a constant-velocity model,
run independently on every column of a (T, D) series. Frames with a NaN measurement are predicted
only (the smoother bridges them). It runs once per finished track, never per frame, so it has no
latency cost for streaming and sees the whole track (zero lag for a steady motion).

Units: the series' own (the hand lift smooths log depth, so ``measurement_std`` is relative).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SmootherConfig:
    """``kind``: ``"rts"`` (forward-backward over each track) or ``"none"`` (raw values kept).

    ``measurement_std``: per-frame noise of a measurement; ``acceleration_std``: how much the
    velocity may change from one frame to the next (both in the series' unit, per frame). Their
    ratio sets the smoothing: a smaller ``acceleration_std`` smooths more.
    """

    kind: str = "rts"
    measurement_std: float = 0.05
    acceleration_std: float = 0.004

    def __post_init__(self):
        if self.kind not in ("rts", "none"):
            raise ValueError(f"smoother kind must be 'rts' or 'none', got {self.kind!r}")
        if not (self.measurement_std > 0 and self.acceleration_std > 0):
            raise ValueError("smoother noise levels must be > 0")


def _inv2(M: np.ndarray) -> np.ndarray:
    """Inverse of a 2x2 matrix (closed form)."""
    a, b, c, d = M[0, 0], M[0, 1], M[1, 0], M[1, 1]
    return np.array([[d, -b], [-c, a]]) / (a * d - b * c)


def rts_smooth(series: np.ndarray, cfg: SmootherConfig = SmootherConfig()) -> np.ndarray:
    """Smoothed copy of ``series`` (T, D) (or (T,)). A row with any NaN is treated as missing and
    bridged by the model. ``kind="none"`` (or fewer than two measured rows) returns a copy."""
    y = np.asarray(series, dtype=np.float64)
    squeeze = y.ndim == 1
    if squeeze:
        y = y[:, None]
    seen = np.all(np.isfinite(y), axis=1)
    if cfg.kind == "none" or seen.sum() < 2:
        out = y.copy()
        return out[:, 0] if squeeze else out
    T = len(y)
    F = np.array([[1.0, 1.0], [0.0, 1.0]])
    Q = cfg.acceleration_std**2 * np.array([[0.25, 0.5], [0.5, 1.0]])  # white acceleration, dt = 1 frame
    r = cfg.measurement_std**2
    # the covariance recursion does not depend on the values: shared by all D columns
    x_f = np.zeros((T, 2, y.shape[1]))
    x_p = np.zeros_like(x_f)
    P_f = np.zeros((T, 2, 2))
    P_p = np.zeros_like(P_f)
    first = int(np.argmax(seen))
    x = np.stack([y[first], np.zeros(y.shape[1])])
    P = np.diag([r, 1.0])
    for t in range(T):
        if t > 0:
            x, P = F @ x, F @ P @ F.T + Q
        x_p[t], P_p[t] = x, P
        if seen[t]:
            k = P[:, 0] / (P[0, 0] + r)
            x = x + np.outer(k, y[t] - x[0])
            P = P - np.outer(k, P[0])
        x_f[t], P_f[t] = x, P
    xs = x_f.copy()
    for t in range(T - 2, -1, -1):
        G = P_f[t] @ F.T @ _inv2(P_p[t + 1])
        xs[t] = x_f[t] + G @ (xs[t + 1] - x_p[t + 1])
    out = xs[:, 0]
    return out[:, 0] if squeeze else out
