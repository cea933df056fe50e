"""Hand-consistency (HC) keypoint head, its loss and the PCK metric (dexwm.md §6.3, §8).

The head maps (predicted) patch latents (..., P, D) of one frame to 12 heatmaps (..., 12, H, W) in the
order left [wrist, thumb, index, middle, ring, little tips], then right; H x W is the training image (224 x
392 by default), pixel (0, 0) at the top-left. Architecture: Linear(D -> dim) + learnable position embedding,
``depth`` pre-norm transformer blocks (LayerNorm, MHA with qkv bias, MLP ratio 4 with exact GELU), a final
LayerNorm and Linear(dim -> 14*14*12) un-patchified into pixels.

``decode="paper"`` decodes the 16 x 28 token grid directly (the paper); ``decode="code"`` reproduces the
released code: tokens are bilinearly resized to a square rows x rows grid (16 x 16), decoded to 224 x 224 and
the maps bilinearly resized to 224 x 392.

Targets are built on the device by :func:`dexhands_data.loader.heatmaps.heatmap_targets` (sigma = 2 px,
9 x 9 window, zero map near the border) from the batch's ``hc_keypoints``; never stored.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..loader.heatmaps import HEATMAP_SIGMA, heatmap_targets

NUM_HC_KEYPOINTS = 12
PCK_THRESHOLDS_PX: tuple[float, ...] = (2.5, 5.0, 10.0, 20.0)


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(n, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        x = x + self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(n, t, d))
        return x + self.mlp(self.norm2(x))


class HeatmapHead(nn.Module):
    """Latents (..., rows*cols, encoder_dim) -> heatmaps (..., 12, rows*patch, cols*patch)."""

    def __init__(self, encoder_dim: int, grid: tuple[int, int] = (16, 28), dim: int = 256, depth: int = 6,
                 heads: int = 16, mlp_ratio: float = 4.0, patch: int = 14, decode: str = "paper",
                 num_keypoints: int = NUM_HC_KEYPOINTS):
        super().__init__()
        if decode not in ("paper", "code"):
            raise ValueError(f"decode must be 'paper' or 'code', got {decode!r}")
        self.grid, self.patch, self.decode, self.num_keypoints = tuple(grid), patch, decode, num_keypoints
        self.out_grid = self.grid if decode == "paper" else (grid[0], grid[0])
        self.input_proj = nn.Linear(encoder_dim, dim)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.out_grid[0] * self.out_grid[1], dim))
        self.blocks = nn.ModuleList(_Block(dim, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, patch * patch * num_keypoints)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    @property
    def image_size(self) -> tuple[int, int]:
        return self.grid[0] * self.patch, self.grid[1] * self.patch

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        lead, (p, d) = latents.shape[:-2], latents.shape[-2:]
        rows, cols = self.grid
        if p != rows * cols:
            raise ValueError(f"expected {rows * cols} patches ({rows}x{cols}), got {p}")
        x = self.input_proj(latents.reshape(-1, p, d))
        n, dim = x.shape[0], x.shape[-1]
        if self.out_grid != self.grid:
            x = x.transpose(1, 2).reshape(n, dim, rows, cols)
            x = F.interpolate(x, size=self.out_grid, mode="bilinear", align_corners=False)
            x = x.flatten(2).transpose(1, 2)
        x = x + self.pos_embed.to(x.dtype)
        for block in self.blocks:
            x = block(x)
        x = self.head(self.norm(x))  # (n, gr*gc, patch*patch*K), channel fastest as (p1 p2 c)
        gr, gc, k, s = *self.out_grid, self.num_keypoints, self.patch
        maps = x.view(n, gr, gc, s, s, k).permute(0, 5, 1, 3, 2, 4).reshape(n, k, gr * s, gc * s)
        if self.out_grid != self.grid:
            maps = F.interpolate(maps, size=self.image_size, mode="bilinear", align_corners=False)
        return maps.reshape(*lead, k, *maps.shape[-2:])


def hc_targets(hc_keypoints: torch.Tensor, height: int, width: int,
               sigma: float = HEATMAP_SIGMA) -> torch.Tensor:
    """Gaussian heatmap targets (..., 12, height, width) on the device of ``hc_keypoints`` (..., 12, 2) px."""
    return heatmap_targets(hc_keypoints.float(), height=height, width=width, sigma=sigma)


def hc_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """L_HC = mean over (..., 12) of valid * mean over (H, W) of (pred - target)^2.

    Invalid channels contribute 0 but still count in the outer mean (released rule).
    """
    per_map = (pred.float() - target.float()).square().mean(dim=(-2, -1))
    return (per_map * valid.to(per_map.dtype)).mean()


def argmax_coords(maps: torch.Tensor) -> torch.Tensor:
    """(u, v) pixel (..., K, 2) float of each map's maximum (..., K, H, W); an all-zero map gives (0, 0)."""
    w = maps.shape[-1]
    idx = maps.flatten(-2).argmax(dim=-1)
    return torch.stack([idx % w, idx // w], dim=-1).float()


def pck(pred_maps: torch.Tensor, target_maps: torch.Tensor, visible: torch.Tensor,
        thresholds: tuple[float, ...] = PCK_THRESHOLDS_PX) -> dict[str, torch.Tensor]:
    """PCK (%) per sample (...,) at each threshold, under two denominator rules.

    The true location is the argmax of the target map (as released). A keypoint counts as correct when
    its true location lies strictly inside the image (0 < u < W, 0 < v < H) and the argmax of the predicted
    map is within the threshold (Euclidean, px).

    * ``pck_visible@t``: correct / number of keypoints that are visible and have a non-empty target map
      (NaN for a sample without any).
    * ``pck_all12@t``: correct / 12 (the released denominator, counting invisible keypoints).
    """
    h, w = target_maps.shape[-2:]
    gt = argmax_coords(target_maps)
    dist = (argmax_coords(pred_maps) - gt).norm(dim=-1)
    inside = (gt[..., 0] > 0) & (gt[..., 0] < w) & (gt[..., 1] > 0) & (gt[..., 1] < h)
    has_target = target_maps.flatten(-2).amax(dim=-1) > 0
    counted = visible.bool() & has_target
    out = {}
    for t in thresholds:
        ok = (dist <= t) & inside
        out[f"pck_all12@{t:g}"] = 100.0 * ok.float().sum(-1) / ok.shape[-1]
        out[f"pck_visible@{t:g}"] = 100.0 * (ok & counted).float().sum(-1) / counted.float().sum(-1)
    return out
