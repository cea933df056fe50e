"""Mergeable per-dimension statistics (for normalising actions).

A :class:`DimStats` holds count, mean, M2 (sum of squared deviations), min, max and quantiles per
dimension, ignoring NaN. Shards are summarised in parallel and merged with Chan's parallel update
(exact count-weighted mean and variance); quantiles merge as count-weighted averages of the
shards' quantiles (the LeRobot rule: exact for one shard, an approximation across shards).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

QUANTILES: tuple[float, ...] = (0.01, 0.10, 0.50, 0.90, 0.99)


@dataclass
class DimStats:
    count: np.ndarray  # (D,) int64, non-NaN values per dimension
    mean: np.ndarray  # (D,)
    m2: np.ndarray  # (D,)
    min: np.ndarray  # (D,)
    max: np.ndarray  # (D,)
    quantiles: np.ndarray  # (len(QUANTILES), D)

    @classmethod
    def from_values(cls, values: np.ndarray) -> "DimStats":
        """Statistics of ``values`` (N, D), NaN ignored per dimension."""
        x = np.asarray(values, dtype=np.float64)
        finite = np.isfinite(x)
        count = finite.sum(axis=0).astype(np.int64)
        with np.errstate(invalid="ignore", divide="ignore"):
            xs = np.where(finite, x, 0.0)
            mean = np.where(count > 0, xs.sum(axis=0) / np.maximum(count, 1), np.nan)
            m2 = np.where(finite, (x - mean) ** 2, 0.0).sum(axis=0)
        m2 = np.where(count > 0, m2, np.nan)
        d = x.shape[1]
        lo = np.full(d, np.nan)
        hi = np.full(d, np.nan)
        q = np.full((len(QUANTILES), d), np.nan)
        has = count > 0
        if np.any(has):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                lo[has] = np.nanmin(x[:, has], axis=0)
                hi[has] = np.nanmax(x[:, has], axis=0)
                q[:, has] = np.nanquantile(x[:, has], QUANTILES, axis=0)
        return cls(count, mean, m2, lo, hi, q)

    def merge(self, other: "DimStats") -> "DimStats":
        n_a, n_b = self.count.astype(np.float64), other.count.astype(np.float64)
        n = n_a + n_b
        a_mean, b_mean = np.nan_to_num(self.mean), np.nan_to_num(other.mean)
        a_m2, b_m2 = np.nan_to_num(self.m2), np.nan_to_num(other.m2)
        with np.errstate(invalid="ignore", divide="ignore"):
            delta = b_mean - a_mean
            mean = np.where(n > 0, a_mean + delta * n_b / np.maximum(n, 1), np.nan)
            m2 = np.where(n > 0, a_m2 + b_m2 + delta**2 * n_a * n_b / np.maximum(n, 1), np.nan)
            wa, wb = n_a / np.maximum(n, 1), n_b / np.maximum(n, 1)
            q = np.where(n > 0, np.nan_to_num(self.quantiles) * wa + np.nan_to_num(other.quantiles) * wb, np.nan)
        return DimStats(
            (self.count + other.count),
            mean,
            m2,
            np.fmin(self.min, other.min),
            np.fmax(self.max, other.max),
            q,
        )

    @property
    def std(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.sqrt(self.m2 / np.where(self.count > 0, self.count, np.nan))

    def to_dict(self) -> dict:
        def clean(a: np.ndarray) -> list:
            return [None if not np.isfinite(v) else float(v) for v in np.ravel(a)]

        out = {
            "count": [int(c) for c in self.count],
            "mean": clean(self.mean),
            "m2": clean(self.m2),
            "std": clean(self.std),
            "min": clean(self.min),
            "max": clean(self.max),
        }
        for i, p in enumerate(QUANTILES):
            out[f"q{int(round(p * 100)):02d}"] = clean(self.quantiles[i])
        return out

    @classmethod
    def from_dict(cls, d: dict) -> "DimStats":
        def arr(v: list) -> np.ndarray:
            return np.array([np.nan if x is None else x for x in v], dtype=np.float64)

        q = np.stack([arr(d[f"q{int(round(p * 100)):02d}"]) for p in QUANTILES])
        return cls(np.array(d["count"], dtype=np.int64), arr(d["mean"]), arr(d["m2"]), arr(d["min"]), arr(d["max"]), q)

