"""Which frames make a DexWM window: the released code's samplers (dexwm.md §3), a uniform-stride
sampler, and the episode-level train/val split. Pure functions of (episode length, seed, ids).

A window is ``num_context`` context frame indices + 1 target index, sorted, into the episode's
stored frames (0-based). Every window draws from its own RNG seeded by (seed, epoch, episode id,
window number), so the map-style and the streaming datasets produce the same windows whatever
order or process they are built in.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

#: The released code's ten segments per clip and epoch (``np.arange(1, 11) / 10``, same float values).
DEXWM_SEGMENTS: tuple[float, ...] = tuple(float(s) for s in np.arange(1, 11) / 10)
SAMPLERS: tuple[str, ...] = ("dexwm", "dexwm-stride", "uniform", "full-seq")


@dataclass(frozen=True)
class SamplerConfig:
    """How windows are drawn from an episode.

    * ``dexwm``: the released pre-training sampler (``var_time``): per segment s, a target f in the
      last ``max_context`` frames up to s, then ``num_context`` distinct context frames drawn without
      replacement from [f - max_context, f), sorted; clipped to [0, N - 1], left-padded.
    * ``dexwm-stride``: the released fixed sampler: context ``range(f - L, f, L // num_context)``.
    * ``uniform``: context every ``stride`` frames before the target; every ``target_step``-th target.
    * ``full-seq``: the released fine-tuning sampler: ``num_context`` frames from the whole episode
      + the last.

    ``max_context`` (frames) defaults to ``round(context_seconds * fps)`` (120 at 30 Hz, 60 at 15 Hz).
    """

    mode: str = "dexwm"
    num_context: int = 8
    context_seconds: float = 4.0
    max_context: int | None = None
    stride: int = 1
    target_step: int = 1
    segments: tuple[float, ...] = DEXWM_SEGMENTS

    def __post_init__(self):
        if self.mode not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.mode!r}; choose one of {', '.join(SAMPLERS)}")
        if self.num_context < 1 or self.stride < 1 or self.target_step < 1:
            raise ValueError("num_context, stride and target_step must be >= 1")

    def context_frames(self, fps: float) -> int:
        if self.max_context is not None:
            return int(self.max_context)
        if not fps or not np.isfinite(fps) or fps <= 0:
            raise ValueError(f"fps {fps!r} unusable: give max_context in frames")
        return int(round(self.context_seconds * fps))

    def num_windows(self, num_frames: int) -> int:
        """Windows per episode and epoch."""
        if num_frames <= 0:
            return 0
        if self.mode in ("dexwm", "dexwm-stride"):
            return len(self.segments)
        if self.mode == "full-seq":
            return 1
        first = self.num_context * self.stride
        return 0 if num_frames <= first else len(range(first, num_frames, self.target_step))


def stable_hash(text: str) -> int:
    """A 64-bit integer of ``text`` that is the same in every process (unlike ``hash``)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def window_rng(seed: int, epoch: int, episode_id: str, window: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(epoch), stable_hash(episode_id), int(window)])


def dexwm_window(
    num_frames: int, segment: float, rng: np.random.Generator, num_context: int = 8, max_context: int = 120,
    var_time: bool = True,
) -> np.ndarray:
    """Frame indices (num_context + 1,) int64 of one window as the released ``__getitem__`` picks them.

    N > L: ``f_max = int(L + s (N - L)) - 1``, target f uniform in [f_max - L, f_max). N <= L:
    ``k = int(L / num_context)``, ``L = f = (N - 1) // k * k``. Context: ``min(num_context, L)`` distinct
    frames from [f - L, f) (``var_time``) or ``range(f - L, f, k)``; none -> [0]; left-padded by
    repeating the first; the target appended; sorted; clipped to [0, N - 1] (the released code clips
    to [0, N], but no index can reach N), so early windows repeat frame 0.
    """
    n, L = int(num_frames), int(max_context)
    if n <= 0:
        raise ValueError("an episode without frames has no windows")
    k = max(1, int(L / num_context))
    if n > L:
        f_max = int(L + segment * (n - L)) - 1
        f = int(rng.integers(f_max - L, f_max))
    else:
        L = (n - 1) // k * k
        f = L
    candidates = np.arange(f - L, f)
    if var_time:
        ctx = np.sort(rng.choice(candidates, size=min(num_context, len(candidates)), replace=False)).tolist()
    else:
        ctx = list(range(f - L, f, k))
    if not ctx:
        ctx = [0]
    if len(ctx) < num_context:
        ctx = [ctx[0]] * (num_context - len(ctx)) + ctx
    return np.clip(np.sort(np.array(ctx + [f], dtype=np.int64)), 0, n - 1)


def uniform_window(target: int, num_context: int, stride: int) -> np.ndarray:
    """``[target - num_context * stride, ..., target - stride, target]``."""
    return target - stride * np.arange(num_context, -1, -1, dtype=np.int64)


def full_seq_window(num_frames: int, rng: np.random.Generator, num_context: int = 8) -> np.ndarray:
    """``num_context`` sorted distinct frames from [0, N - 1) + the last frame, left-padded like ``dexwm``."""
    pool = np.arange(max(num_frames - 1, 0))
    ctx = [0]
    if len(pool):
        ctx = np.sort(rng.choice(pool, size=min(num_context, len(pool)), replace=False)).tolist()
    if len(ctx) < num_context:
        ctx = [ctx[0]] * (num_context - len(ctx)) + ctx
    return np.array(ctx + [num_frames - 1], dtype=np.int64)


def window_indices(
    cfg: SamplerConfig, num_frames: int, fps: float, episode_id: str, window: int, seed: int = 0,
    epoch: int = 0,
) -> np.ndarray:
    """Frame indices (num_context + 1,) of window number ``window`` of an episode under ``cfg``."""
    if not 0 <= window < cfg.num_windows(num_frames):
        count = cfg.num_windows(num_frames)
        raise IndexError(f"episode {episode_id} has {count} windows, asked for {window}")
    if cfg.mode == "uniform":
        first = cfg.num_context * cfg.stride
        return uniform_window(first + window * cfg.target_step, cfg.num_context, cfg.stride)
    rng = window_rng(seed, epoch, episode_id, window)
    if cfg.mode == "full-seq":
        return full_seq_window(num_frames, rng, cfg.num_context)
    return dexwm_window(num_frames, cfg.segments[window], rng, cfg.num_context, cfg.context_frames(fps),
                        var_time=cfg.mode == "dexwm")


def episode_split(episode_id: str, val_fraction: float = 0.01, seed: int = 0) -> str:
    """``"val"`` for a deterministic ``val_fraction`` of episode ids (by hash), else ``"train"``."""
    if not 0.0 <= val_fraction <= 1.0:
        raise ValueError(f"val_fraction must be in [0, 1], got {val_fraction}")
    u = stable_hash(f"{seed}:{episode_id}") / 2.0**64
    return "val" if u < val_fraction else "train"
