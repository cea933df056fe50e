"""Honest units end to end: a ground-truth episode and its VO counterpart (the same rotations, the
translation in an unknown unit, ``translation_metric`` False) written, loaded and windowed."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

import dexhands_data
from dexhands_data.actions import compute_actions
from dexhands_data.geometry import se3_inverse
from dexhands_data.loader.hf import load_episodes, load_stats
from dexhands_data.loader.sampling import SamplerConfig
from dexhands_data.loader.windows import WindowConfig, WindowDataset
from window_data import build, episode

N = 20
VO_SCALE = 3.7  # the unknown unit of the VO translation, relative to metres


def vo_counterpart(gt, episode_id: str, scale: float):
    """What a perfect monocular VO would give: the true rotations, translations times ``scale``."""
    T = gt.camera.T_world_cam.copy()
    T[:, :3, 3] *= scale
    camera = replace(gt.camera, T_world_cam=T, translation_metric=False, estimator="vo-like")
    return replace(gt, ref=replace(gt.ref, episode_id=episode_id), camera=camera)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("units") / "dexwm-actions"
    gt = episode("gt", n=N, seed=5, missing={0: [4]})
    eps = {"gt": gt, "vo": vo_counterpart(gt, "vo", VO_SCALE), "vo2": vo_counterpart(gt, "vo2", 0.25)}
    build(root, {("videos", "train", "s0"): list(eps.values())})
    train = dexhands_data.load(root, split="train", cache_dir=str(tmp_path_factory.mktemp("cache")))
    return root, train, eps


def windows(dataset, convention: str, normalize: bool = False):
    root, train, _ = dataset
    cfg = WindowConfig(sampler=SamplerConfig(mode="uniform", num_context=4, stride=2), convention=convention,
                       frames="none", normalize_actions=normalize)
    wd = WindowDataset(train, load_episodes(root), cfg, load_stats(root) if normalize else None)
    return {wd.episodes[wd.locate(i)[0]][0]: wd[i] for i in range(len(wd)) if wd.locate(i)[1] == 0}


def test_relative_vo_rows_are_rotation_compensated_and_masked(dataset):
    _, _, eps = dataset
    w = windows(dataset, "relative")
    gt, vo, vo2 = w["gt"], w["vo"], w["vo2"]
    idx = gt["frame_indices"].numpy()
    assert (vo["frame_indices"].numpy() == idx).all()
    # ground truth: the metric formula, every dimension but the missing hand's is data
    ep = eps["gt"]
    args = (ep.hands.keypoints_cam, ep.hands.valid, ep.camera.T_world_cam, ep.camera.valid, idx)
    expected = np.nan_to_num(compute_actions("relative", *args).reshape(-1, 132))
    np.testing.assert_array_equal(gt["actions"].numpy(), expected)
    assert gt["action_mask"][:, 126:].all()
    # VO: keypoint rows R_ab x_b - x_a by hand, whatever the unit of the translation
    mask = vo["action_mask"].numpy().reshape(-1, 44, 3)
    assert not mask[:, 42].any() and mask[:, 43].all()
    a = vo["actions"].numpy().reshape(-1, 44, 3)
    T = ep.camera.T_world_cam
    for s, (i, j) in enumerate(zip(idx[:-1], idx[1:])):
        R_ab = (se3_inverse(T[i]) @ T[j])[:3, :3]
        kp_i, kp_j = (ep.hands.keypoints_cam[k].reshape(42, 3).astype(np.float64) for k in (i, j))
        by_hand = kp_j @ R_ab.T - kp_i
        rows = mask[s, :42, 0]
        np.testing.assert_allclose(a[s, :42][rows], by_hand[rows], atol=1e-6)
        assert (a[s, :42][~rows] == 0).all()
    assert (a[:, 42] == 0).all()
    np.testing.assert_array_equal(vo["actions"].numpy(), vo2["actions"].numpy())  # scale-free
    np.testing.assert_allclose(a[:, 43], gt["actions"].numpy().reshape(-1, 44, 3)[:, 43], atol=1e-7)
    # and the metric keypoint rows differ from the rotation-only ones (the camera translates)
    assert np.abs(gt["actions"].numpy()[:, 63:126] - vo["actions"].numpy()[:, 63:126]).max() > 1e-3


def test_official_gt_unchanged_vo_world_from_rotation_only(dataset):
    _, _, eps = dataset
    w = windows(dataset, "dexwm-official")
    ep = eps["gt"]
    idx = w["gt"]["frame_indices"].numpy()
    args = (ep.hands.keypoints_cam, ep.hands.valid, ep.camera.T_world_cam, ep.camera.valid, idx)
    official = compute_actions("dexwm-official", *args).reshape(-1, 132)
    mask = w["gt"]["action_mask"].numpy()
    np.testing.assert_array_equal(w["gt"]["actions"].numpy()[mask], official[mask])
    vo, vo2 = w["vo"], w["vo2"]
    np.testing.assert_array_equal(vo["actions"].numpy(), vo2["actions"].numpy())
    assert not vo["action_mask"].numpy().reshape(-1, 44, 3)[:, 42].any()
    # frame k in the first camera through R_{k0 k} only
    poses = vo["poses"].numpy()
    T = ep.camera.T_world_cam
    R_0k = (se3_inverse(T[idx[0]]) @ T[idx[2]])[:3, :3]
    kp = ep.hands.keypoints_cam[idx[2], 1].astype(np.float64)
    np.testing.assert_allclose(poses[2, 21:42], kp @ R_0k.T, atol=1e-6)


def test_stats_skip_masked_dimensions_and_normalised_masked_dims_are_zero(dataset):
    root, _, _ = dataset
    stats = json.loads((root / "meta/stats.json").read_text())
    for convention in ("relative", "dexwm-official"):
        count = np.array(stats[f"action/{convention}"]["count"])
        assert (count[126:129] == N - 1).all()  # camera position: the ground-truth steps only
        assert (count[129:132] == 3 * (N - 1)).all()  # camera rotation: every episode
        assert (count[:3] == 3 * (N - 3)).all()  # left hand missing at frame 4: two steps lost per episode
    w = windows(dataset, "relative", normalize=True)
    vo = w["vo"]
    assert (vo["actions"].numpy()[~vo["action_mask"].numpy()] == 0).all()
    assert (vo["actions"].numpy()[:, 126:129] == 0).all()
