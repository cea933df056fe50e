"""Writer -> load -> DexWM windows gives back exactly what was written; streaming == map-style."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import dexhands_data
from dexhands_data.actions import compute_actions, window_poses
from dexhands_data.images import decode_jpeg
from dexhands_data.loader.crop import CropGeometry, project_hc_keypoints
from dexhands_data.loader.normalize import normalize_frames, normalize_on_device
from dexhands_data.loader.hf import load_episodes, load_stats
from dexhands_data.loader.sampling import SamplerConfig
from dexhands_data.loader import windows as windows_module
from dexhands_data.loader.windows import StreamingWindowDataset, WindowConfig, WindowDataset
from dexhands_data.records import EpisodeError
from dexhands_data.schema import fixed_list_to_numpy
from window_data import build, episode, jpeg_frames

N = 24


@pytest.fixture(scope="module")
def written(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("w") / "dexwm-actions"
    eps = {
        "a": episode("a", n=N, seed=1, images=jpeg_frames(shared_data, N), missing={0: [3, 4, 5]},
                     camera_invalid=(7,)),
        "b": episode("b", n=N, seed=2, images=jpeg_frames(shared_data, N, offset=3),
                     missing={1: list(range(10, 24))}),
        "c": episode("c", n=18, seed=3, images=jpeg_frames(shared_data, 18, offset=5), fps=15.0,
                     source="droid", embodiment="parallel_gripper",
                     T_opencv_source=np.diag([1.0, -1.0, -1.0, 1.0])),
    }
    build(root, {("egodex", "train", "s0"): [eps["a"], eps["b"]], ("droid", "train", "s0"): [eps["c"]]})
    return root, eps


@pytest.fixture(scope="module")
def train(written, tmp_path_factory):
    root, _ = written
    return dexhands_data.load(root, split="train", cache_dir=str(tmp_path_factory.mktemp("cache")))


CFG = WindowConfig(sampler=SamplerConfig(mode="dexwm", max_context=12), seed=7)


def test_round_trip_exact(written, train):
    root, eps = written
    wd = WindowDataset(train, load_episodes(root), CFG)
    assert [e[0] for e in wd.episodes] == ["c", "a", "b"]  # shard order: data/droid before data/egodex
    assert len(wd) == 30  # 10 segments per episode
    for i in range(len(wd)):
        s = wd[i]
        k, _ = wd.locate(i)
        ep = eps[wd.episodes[k][0]]
        idx = s["frame_indices"].numpy()
        assert s["frames"].shape == (9, 3, 224, 392) and s["frames"].dtype == torch.float32
        assert s["actions"].shape == (8, 132) and s["actions"].dtype == torch.float32
        assert s["poses"].shape == (9, 44, 3) and s["hand_valid"].dtype == torch.bool
        assert s["hc_keypoints"].shape == (9, 12, 2) and s["hc_visible"].shape == (9, 12)
        assert s["timestamps"].dtype == torch.float64 and s["episode_index"].item() == k
        np.testing.assert_array_equal(s["frame_gaps"].numpy(), np.diff(idx))
        np.testing.assert_array_equal(s["timestamps"].numpy(), ep.timestamps[idx])
        np.testing.assert_array_equal(s["hand_valid"].numpy(), ep.hands.valid[idx])
        np.testing.assert_array_equal(s["camera_valid"].numpy(), ep.camera.valid[idx])
        args = (ep.hands.keypoints_cam, ep.hands.valid, ep.camera.T_world_cam, ep.camera.valid, idx)
        expected = np.nan_to_num(compute_actions("relative", *args).reshape(8, 132))
        np.testing.assert_array_equal(s["actions"].numpy(), expected)
        poses = np.nan_to_num(window_poses("relative", *args)).astype(np.float32)
        np.testing.assert_array_equal(s["poses"].numpy(), poses)
        crops = [CropGeometry.for_source(1920, 1080).crop_image(decode_jpeg(ep.images[j])) for j in idx]
        assert torch.equal(s["frames"], normalize_frames(np.stack(crops)))
        uv, vis = project_hc_keypoints(ep.hands.keypoints_cam[idx], ep.hands.valid[idx], ep.intrinsics.K,
                                       CropGeometry.for_source(1920, 1080))
        np.testing.assert_array_equal(s["hc_visible"].numpy(), vis & (ep.embodiment == "human"))
        np.testing.assert_array_equal(s["hc_keypoints"].numpy(), np.nan_to_num(uv))
    # NaN / validity semantics: a missing hand is NaN in storage, 0 in the batch, flagged by hand_valid
    row = train.with_format("numpy")[18 + 4]  # episode a (after c's 18 rows), frame 4: left hand missing
    assert row["episode_id"] == "a" and not row["hand_valid"][0] and np.isnan(row["keypoints_cam"][0]).all()
    # T_world_cam is float64 on disk; the windows read Arrow directly (datasets' numpy format gives float32)
    table = train.with_format("arrow")[22:23]
    assert fixed_list_to_numpy(table.column("T_world_cam"), (4, 4)).dtype == np.float64


def test_missing_hand_and_unknown_camera_masks(written, train):
    root, eps = written
    cfg = WindowConfig(sampler=SamplerConfig(mode="uniform", num_context=8, stride=1), frames="none")
    wd = WindowDataset(train, load_episodes(root), cfg)
    k = [e[0] for e in wd.episodes].index("a")
    s = wd[int(wd._offsets[k])]  # window 0..8 of episode a: left hand missing at 3-5, camera unknown at 7
    assert "frames" not in s
    np.testing.assert_array_equal(s["frame_indices"].numpy(), np.arange(9))
    assert not s["hand_valid"][3:6, 0].any() and s["hand_valid"][:, 1].all()
    assert (s["poses"][3:6, :21] == 0).all() and not s["hc_visible"][3:6, :6].any()
    assert (s["actions"][2:6].view(4, 44, 3)[:, :21] == 0).all()
    assert not s["camera_valid"][7] and (s["actions"][6:8].view(2, 44, 3)[:, 42:] == 0).all()
    assert (s["actions"][0].view(44, 3)[42:] != 0).any()


def test_dexwm_official_windows_use_recorded_axis_change(written, train):
    root, eps = written
    cfg = WindowConfig(sampler=SamplerConfig(mode="dexwm", max_context=12), convention="dexwm-official",
                       seed=1, frames="none")
    wd = WindowDataset(train, load_episodes(root), cfg)
    s = wd[0]  # episode c, recorded T_opencv_source = diag(1, -1, -1, 1)
    ep = eps["c"]
    idx = s["frame_indices"].numpy()
    expected = compute_actions("dexwm-official", ep.hands.keypoints_cam, ep.hands.valid,
                               ep.camera.T_world_cam, ep.camera.valid, idx,
                               T_opencv_source=np.diag([1.0, -1.0, -1.0, 1.0]))
    np.testing.assert_array_equal(s["actions"].numpy(), expected.reshape(8, 132))
    angles = s["actions"].view(8, 44, 3)[:, 43]
    assert ((angles >= 0) & (angles < 2 * np.pi)).all()
    assert not s["hc_visible"].any()  # gripper pseudo-hand: no HC targets, as released
    every = WindowDataset(train, load_episodes(root), WindowConfig(sampler=cfg.sampler, frames="none",
                                                                    hc_embodiments=None))
    assert every[0]["hc_visible"].any()


def test_streaming_equals_map_style_and_determinism(written, train):
    root, _ = written
    episodes = load_episodes(root)
    mapped = WindowDataset(train, episodes, CFG)
    stream = dexhands_data.load(root, split="train", streaming=True)
    streamed = list(StreamingWindowDataset(stream, episodes, CFG, batch_size=10))  # episodes span batches
    assert len(streamed) == len(mapped)
    for i, s in enumerate(streamed):
        m = mapped[i]
        assert s.keys() == m.keys()
        for key in s:
            assert torch.equal(s[key], m[key]), key
    again = WindowDataset(train, episodes, CFG)
    assert all(np.array_equal(again.indices(i), mapped.indices(i)) for i in range(len(mapped)))
    other = WindowDataset(train, episodes, WindowConfig(sampler=CFG.sampler, seed=8))
    assert any(not np.array_equal(other.indices(i), mapped.indices(i)) for i in range(len(mapped)))
    mapped.set_epoch(1)
    assert any(not np.array_equal(again.indices(i), mapped.indices(i)) for i in range(len(mapped)))


def test_episode_level_train_val_split(written, train):
    root, _ = written
    episodes = load_episodes(root)
    base = dict(sampler=SamplerConfig(mode="uniform", num_context=8), frames="none", val_fraction=0.5, seed=3)
    tr = WindowDataset(train, episodes, WindowConfig(split="train", **base))
    va = WindowDataset(train, episodes, WindowConfig(split="val", **base))
    names_tr, names_va = {e[0] for e in tr.episodes}, {e[0] for e in va.episodes}
    assert names_tr.isdisjoint(names_va) and names_tr | names_va == {"a", "b", "c"}
    assert names_tr and names_va
    st = StreamingWindowDataset(dexhands_data.load(root, split="train", streaming=True), episodes,
                                WindowConfig(split="val", **base))
    assert {int(s["episode_index"]) for s in st} == set(range(len(names_va)))
    assert len(list(st)) == len(va)


def test_normalisation_with_stats_and_dataloader(written, train):
    root, _ = written
    stats = load_stats(root)
    cfg = WindowConfig(sampler=SamplerConfig(mode="uniform", num_context=8, target_step=4),
                       normalize_actions=True)
    raw = WindowDataset(train, load_episodes(root), WindowConfig(sampler=cfg.sampler))
    norm = WindowDataset(train, load_episodes(root), cfg, stats)
    mean = np.array([0.0 if v is None else v for v in stats["action/relative"]["mean"]], np.float32)
    std = np.array([1.0 if v is None else max(v, 1e-6) for v in stats["action/relative"]["std"]], np.float32)
    mask = raw[3]["action_mask"].numpy()
    assert mask.shape == (8, 132) and not mask.all()  # the window has a missing hand
    np.testing.assert_array_equal(norm[3]["action_mask"].numpy(), mask)
    expected = np.where(mask, (raw[3]["actions"].numpy() - mean) / std, 0.0)
    np.testing.assert_allclose(norm[3]["actions"].numpy(), expected, rtol=1e-6)
    # a masked dimension is 0, not the -mean/std a zero-filled value would become
    assert (norm[3]["actions"].numpy()[~mask] == 0).all() and (mean[~mask.all(axis=0)] != 0).any()
    loader = DataLoader(norm, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(0))
    batch = next(iter(loader))
    assert batch["frames"].shape == (4, 9, 3, 224, 392) and batch["actions"].shape == (4, 8, 132)
    assert batch["hc_visible"].shape == (4, 9, 12) and batch["episode_index"].shape == (4,)
    official_cfg = WindowConfig(sampler=cfg.sampler, convention="dexwm-official", normalize_actions=True)
    official = WindowDataset(train, load_episodes(root), official_cfg, stats)  # the writer stores both conventions
    assert np.isfinite(official[3]["actions"].numpy()).all()
    without = {k: v for k, v in stats.items() if k != "action/dexwm-official"}
    with pytest.raises(KeyError, match="action/dexwm-official"):
        WindowDataset(train, None, official_cfg, without)


def test_windows_from_path_and_frames_errors(written, tmp_path):
    root, eps = written
    windows_from = functools.partial(windows_module.windows_from, cache_dir=str(tmp_path / "cache"))
    sampler = SamplerConfig(mode="uniform", target_step=8)
    wd = windows_from(root, WindowConfig(sampler=sampler, frames="uint8"))
    s = wd[0]
    assert s["frames"].dtype == torch.uint8 and s["frames"].shape == (9, 3, 224, 392)
    as_float = windows_from(root, WindowConfig(sampler=sampler))[0]["frames"]
    assert torch.equal(normalize_on_device(s["frames"]), as_float)
    st = windows_from(root, WindowConfig(sampler=sampler, frames="uint8"), streaming=True)
    assert torch.equal(next(iter(st))["frames"], s["frames"])
    # a dataset without embedded frames: windows need frames="none"
    bare = build(tmp_path / "bare", {("videos", "train", "s0"): [episode("x", n=12)]})
    ds = windows_from(bare, WindowConfig(sampler=SamplerConfig(mode="uniform")))
    with pytest.raises(EpisodeError, match="no embedded image"):
        ds[0]
    ok = windows_from(bare, WindowConfig(sampler=SamplerConfig(mode="uniform"), frames="none"))
    assert len(ok) == 4 and ok[3]["hc_visible"].any()
    assert json.loads((bare / "meta/info.json").read_text())["total_frames"] == 12


def test_dataloader_workers_cover_every_window_once(written, train):
    root, _ = written
    cfg = WindowConfig(sampler=SamplerConfig(mode="uniform", target_step=5), frames="none")
    episodes = load_episodes(root)
    mapped = WindowDataset(train, episodes, cfg)
    one = [(int(s["episode_index"]), s["frame_indices"].tolist())
           for s in DataLoader(mapped, batch_size=None)]
    two = [(int(s["episode_index"]), s["frame_indices"].tolist())
           for s in DataLoader(mapped, batch_size=None, num_workers=2)]
    assert one == two
    stream = StreamingWindowDataset(dexhands_data.load(root, split="train", streaming=True), episodes, cfg)
    streamed = [(int(s["episode_index"]), s["frame_indices"].tolist())
                for s in DataLoader(stream, batch_size=None, num_workers=2)]
    assert sorted(streamed) == sorted(one)


def test_episode_spans_across_chunks_and_errors():
    import pyarrow as pa

    from dexhands_data.dataset.episodes import episode_spans

    ids = pa.chunked_array([["a", "a", "b"], ["b", "b"], ["c"], [], ["c", "d"]])
    assert episode_spans(ids) == [("a", 0, 2), ("b", 2, 5), ("c", 5, 7), ("d", 7, 8)]
    with pytest.raises(EpisodeError, match="non-adjacent"):
        episode_spans(pa.chunked_array([["a", "b"], ["a"]]))


def test_corrupt_jpeg_names_episode_and_frame(tmp_path):
    bad = episode("z", n=10, images=[b"\xff\xd8junk"] * 10)
    root = build(tmp_path / "dexwm-actions", {("videos", "train", "s0"): [bad]})
    ds = dexhands_data.load(root, split="train", cache_dir=str(tmp_path / "cache"))
    wd = WindowDataset(ds, load_episodes(root), WindowConfig(sampler=SamplerConfig(mode="uniform")))
    with pytest.raises(EpisodeError, match="episode z frame 1: image is not a decodable JPEG"):
        wd[1]
