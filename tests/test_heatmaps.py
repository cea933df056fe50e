"""DexWM preprocessing geometry, HC keypoint projection and heatmap targets (dexwm.md §5, §6.3)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from dexhands_data.geometry import Intrinsics
from dexhands_data.images import decode_jpeg, encode_jpeg
from dexhands_data.keypoints import HC_POSE_ROWS
from dexhands_data.loader.crop import CropGeometry, project_hc_keypoints, visible_in_crop
from dexhands_data.loader.heatmaps import heatmap_targets
from dexhands_data.loader.normalize import normalize_frames
from window_data import real_frames

EGODEX_K = Intrinsics(736.6339, 736.6339, 960.0, 540.0, 1920, 1080)


def test_crop_geometry_general_formula():
    g = CropGeometry.for_source(1920, 1080)
    assert (g.resized_width, g.resized_height, g.crop_x, g.crop_y) == (398, 224, 3, 0)
    u = np.array([0.0, 17.3, 960.0, 1919.9, -50.0])
    v = np.array([0.0, 5.5, 540.0, 1079.0, 1200.0])
    uv = g.source_to_crop(np.stack([u, v], -1))
    np.testing.assert_array_equal(uv[:, 0], u / 1920 * 398 - 3)  # the released EgoDex expression, bit for bit
    np.testing.assert_array_equal(uv[:, 1], v / 1080 * 224)
    np.testing.assert_allclose(uv[:, 0], u * 398 / 1920 - 3, rtol=0, atol=1e-12)
    droid = CropGeometry.for_source(1280, 720)  # DROID exterior: also 398x224
    assert (droid.resized_width, droid.resized_height, droid.crop_x) == (398, 224, 3)
    tall = CropGeometry.for_source(960, 600)  # narrower than 392:224 -> width to 392, crop rows
    assert (tall.resized_width, tall.resized_height, tall.crop_x, tall.crop_y) == (392, 245, 0, 10)
    patch16 = CropGeometry.for_source(1920, 1080, out_width=384)
    assert patch16.crop_x == 7
    with pytest.raises(ValueError):
        CropGeometry.for_source(0, 10)


def test_crop_image_matches_released_preprocessing(shared_data):
    src = real_frames(shared_data)[5]  # real 1280x720 RGB frame
    g = CropGeometry.for_source(src.shape[1], src.shape[0])
    size = (int(224 * src.shape[1] / src.shape[0]), 224)
    direct = cv2.resize(src, size, interpolation=cv2.INTER_LINEAR)[:, 3:-3]
    np.testing.assert_array_equal(g.crop_image(src), direct)
    # from the stored short-side-224 JPEG: no second resize, same crop up to JPEG loss
    stored = decode_jpeg(encode_jpeg(src))
    assert stored.shape == (224, 398, 3)
    crop = g.crop_image(stored)
    assert crop.shape == (224, 392, 3)
    assert np.abs(crop.astype(int) - direct.astype(int)).mean() < 3.0
    x = normalize_frames(crop[None])
    assert x.shape == (1, 3, 224, 392) and x.dtype == torch.float32
    # the released pipeline: torch.Tensor(img).permute / 255, then torchvision Normalize (float32): bit-equal
    ref = torch.Tensor(crop.copy()).permute(2, 0, 1)[None] / 255.0
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    ref = (ref - mean) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    assert torch.equal(x, ref)


def test_projection_into_crop_and_visibility():
    rng = np.random.default_rng(0)
    kp = np.zeros((3, 2, 21, 3))
    kp[..., 0] = rng.uniform(-0.3, 0.3, (3, 2, 21))
    kp[..., 1] = rng.uniform(-0.2, 0.2, (3, 2, 21))
    kp[..., 2] = rng.uniform(0.3, 0.8, (3, 2, 21))
    flat = kp.reshape(3, 42, 3)
    flat[0, HC_POSE_ROWS[0]] = [2.0, 0.0, 0.5]  # far right: off-image
    flat[0, HC_POSE_ROWS[1]] = [0.0, -1.0, 0.5]  # above the image
    flat[0, HC_POSE_ROWS[2]] = [0.0, 0.0, -0.5]  # behind the camera
    valid = np.ones((3, 2), bool)
    valid[2, 1] = False
    g = CropGeometry.for_source(1920, 1080)
    uv, vis = project_hc_keypoints(kp, valid, EGODEX_K.K, g)
    assert uv.shape == (3, 12, 2) and uv.dtype == np.float32 and vis.shape == (3, 12)
    p = flat[:, list(HC_POSE_ROWS)]
    u = 736.6339 * p[..., 0] / p[..., 2] + 960.0
    v = 736.6339 * p[..., 1] / p[..., 2] + 540.0
    expected = np.stack([u * 398 / 1920 - 3, v * 224 / 1080], -1)
    front = p[..., 2] > 0
    front[2, 6:] = False
    np.testing.assert_allclose(uv[front], expected[front], rtol=1e-6)
    eu, ev = expected[..., 0], expected[..., 1]
    inside = (eu > 0) & (eu < 392) & (ev > 0) & (ev < 224)
    np.testing.assert_array_equal(vis, inside & front)
    assert not vis[0, :3].any() and vis[1].sum() >= 6
    assert not vis[2, 6:].any() and np.isnan(uv[2, 6:]).all()
    assert np.isnan(uv[0, 2]).all()  # behind the camera: no pixel
    np.testing.assert_array_equal(visible_in_crop(np.array([[0.0, 5.0], [391.99, 223.99], [392.0, 5.0]])),
                                  [False, True, False])


def released_belief_map(points, width=392, height=224, sigma=2):
    """dexwm.md §6.3's create_belief_map, written out point by point."""
    out = np.zeros((len(points), height, width))
    w = int(sigma * 2)
    for k, (pu, pv) in enumerate(points):
        iu, iv = int(pu), int(pv)
        if iu - w >= 0 and iu + w + 1 < width and iv - w >= 0 and iv + w + 1 < height:
            for i in range(iu - w, iu + w + 1):
                for j in range(iv - w, iv + w + 1):
                    out[k, j, i] = np.exp(-(((i - iu) ** 2 + (j - iv) ** 2) / (2 * sigma**2)))
    return torch.Tensor(out)


def test_heatmap_targets_match_released_maps_exactly():
    pts = np.array([
        [100.7, 50.2], [2.0, 2.0], [1.99, 100.0], [386.5, 100.0], [387.0, 100.0], [200.0, 218.9],
        [200.0, 219.0], [-0.5, 10.0], [391.5, 223.5], [45.0, 2.0], [300.3, 150.9], [10.0, 200.0],
    ])
    ref = released_belief_map(pts)
    ours = heatmap_targets(torch.tensor(pts, dtype=torch.float32))
    assert ours.shape == (12, 224, 392) and ours.dtype == torch.float32
    assert torch.equal(ours, ref)
    assert ours[0].max() == 1.0 and ours[0].sum() > 0 and (ours[0] > 0).sum() == 81
    assert ours[2].sum() == 0 and ours[4].sum() == 0 and ours[6].sum() == 0  # window crosses the border
    batched = heatmap_targets(torch.tensor(np.stack([pts, pts[::-1]]), dtype=torch.float32).view(2, 1, 12, 2))
    assert batched.shape == (2, 1, 12, 224, 392) and torch.equal(batched[1, 0], ref.flip(0))
    nan = heatmap_targets(torch.tensor([[np.nan, np.nan]]))
    assert nan.sum() == 0
