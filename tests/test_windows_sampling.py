"""Window samplers: the released rules of dexwm.md §3 (targets, context draw, clipping, padding),
uniform stride, full-seq, and the deterministic per-window RNG / episode split."""

from __future__ import annotations

import numpy as np
import pytest

from dexhands_data.loader.sampling import (
    DEXWM_SEGMENTS,
    SamplerConfig,
    dexwm_window,
    episode_split,
    full_seq_window,
    uniform_window,
    window_indices,
)


def test_segments_are_the_released_float_values():
    assert DEXWM_SEGMENTS == tuple(np.arange(1, 11) / 10)
    assert DEXWM_SEGMENTS[2] == 3 / 10 and int(120 + DEXWM_SEGMENTS[6] * 10) == 127


def test_long_episode_targets_and_distinct_sorted_context():
    n, L = 600, 120
    rng = np.random.default_rng(0)
    for s in DEXWM_SEGMENTS:
        f_max = int(L + s * (n - L)) - 1
        for _ in range(50):
            w = dexwm_window(n, s, rng, num_context=8, max_context=L)
            f, ctx = w[-1], w[:-1]
            assert len(w) == 9 and f_max - L <= f < f_max
            assert np.all(ctx >= f - L) and np.all(np.diff(w) >= 0) and ctx[-1] < f
            positive = ctx[ctx > 0]  # indices below 0 were clipped to frame 0 (f < L early in the clip)
            assert len(set(positive.tolist())) == len(positive)
            if f >= L:
                assert len(set(ctx.tolist())) == 8  # distinct: drawn without replacement
    # s = 1.0 reaches the end of the clip: f_max = N - 1, so the target is at most N - 2
    targets = [dexwm_window(n, 1.0, rng)[-1] for _ in range(400)]
    assert max(targets) == n - 2 and min(targets) >= n - 1 - L


def test_context_is_uniform_without_replacement():
    rng = np.random.default_rng(1)
    counts = np.zeros(120)
    for _ in range(3000):
        w = dexwm_window(1000, 0.5, rng)
        counts[(w[:-1] - (w[-1] - 120))] += 1
    assert counts.sum() == 3000 * 8
    assert counts.min() > 0.7 * counts.mean() and counts.max() < 1.3 * counts.mean()


def test_short_episode_rule_and_left_padding():
    rng = np.random.default_rng(2)
    # N <= L: k = 120 // 8 = 15, f = (N - 1) // 15 * 15, context from [0, f)
    w = dexwm_window(50, 0.1, rng)
    assert w[-1] == 45 and np.all(w[:-1] < 45) and len(set(w[:-1].tolist())) == 8
    w = dexwm_window(20, 0.7, rng)
    assert w[-1] == 15 and len(set(w[:-1].tolist())) == 8
    # f = 0: everything is frame 0
    np.testing.assert_array_equal(dexwm_window(10, 0.3, rng), np.zeros(9, int))
    # fewer candidates than 8 (small L): left-pad by repeating the first index
    w = dexwm_window(7, 0.5, rng, num_context=8, max_context=40)  # k = 5, f = 5, candidates 0..4
    np.testing.assert_array_equal(w, [0, 0, 0, 0, 1, 2, 3, 4, 5])
    fixed = dexwm_window(50, 0.1, rng, var_time=False)  # released fixed stride: range(f - L, f, k)
    # [0, 15, 30] left-padded to 8, then the target
    np.testing.assert_array_equal(fixed, [0, 0, 0, 0, 0, 0, 15, 30, 45])


def test_clipping_near_the_start_repeats_frame_zero():
    rng = np.random.default_rng(3)
    n = 125  # N > L with s = 0.1: f_max = int(120 + 0.5) - 1 = 119, f in [-1, 119)
    seen_zero_runs = False
    for _ in range(300):
        w = dexwm_window(n, 0.1, rng)
        assert w.min() >= 0 and w.max() <= n - 1 and np.all(np.diff(w) >= 0)
        if (w == 0).sum() >= 2:
            seen_zero_runs = True
    assert seen_zero_runs


def test_uniform_and_full_seq():
    np.testing.assert_array_equal(uniform_window(20, 8, 2), [4, 6, 8, 10, 12, 14, 16, 18, 20])
    cfg = SamplerConfig(mode="uniform", num_context=8, stride=2, target_step=3)
    assert cfg.num_windows(16) == 0 and cfg.num_windows(17) == 1 and cfg.num_windows(30) == 5
    np.testing.assert_array_equal(window_indices(cfg, 30, 30.0, "e", 4), uniform_window(16 + 12, 8, 2))
    with pytest.raises(IndexError):
        window_indices(cfg, 30, 30.0, "e", 5)
    w = full_seq_window(100, np.random.default_rng(0))
    assert w[-1] == 99 and len(set(w[:-1].tolist())) == 8 and np.all(np.diff(w) > 0)
    np.testing.assert_array_equal(full_seq_window(4, np.random.default_rng(0)), [0, 0, 0, 0, 0, 0, 1, 2, 3])


def test_max_context_from_fps_and_determinism():
    cfg = SamplerConfig()
    assert cfg.context_frames(30.0) == 120 and cfg.context_frames(15.0) == 60  # EgoDex / DROID: 4 s
    with pytest.raises(ValueError):
        cfg.context_frames(float("nan"))
    with pytest.raises(ValueError):
        SamplerConfig(mode="random")
    a = [window_indices(cfg, 900, 30.0, "ep-1", j, seed=0) for j in range(10)]
    b = [window_indices(cfg, 900, 30.0, "ep-1", j, seed=0) for j in reversed(range(10))][::-1]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))  # order-independent
    c = [window_indices(cfg, 900, 30.0, "ep-1", j, seed=1) for j in range(10)]
    assert any(not np.array_equal(x, y) for x, y in zip(a, c))
    assert window_indices(cfg, 900, 30.0, "ep-1", 9)[-1] >= 900 - 1 - 120  # last tenth of the clip


def test_episode_split_is_deterministic_and_proportional():
    ids = [f"episode-{i}" for i in range(4000)]
    val = [i for i in ids if episode_split(i, 0.1) == "val"]
    assert 300 < len(val) < 500
    assert val == [i for i in ids if episode_split(i, 0.1) == "val"]
    assert {episode_split(i, 0.0) for i in ids} == {"train"}
    assert {episode_split(i, 1.0) for i in ids} == {"val"}
    assert val != [i for i in ids if episode_split(i, 0.1, seed=1) == "val"]
