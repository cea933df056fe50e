"""Figures of the reference trainer (matplotlib, imported on use)."""

from __future__ import annotations

from pathlib import Path

import torch

from ..images import IMAGENET_MEAN, IMAGENET_STD
from .hc_head import argmax_coords


def save_heatmap_figure(path: Path, frame: torch.Tensor, pred: torch.Tensor, true: torch.Tensor,
                        visible: torch.Tensor) -> None:
    """Frame with true (circles) and predicted (crosses) keypoints, and max-over-channel heatmaps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    img = (frame * std + mean).clamp(0, 1).permute(1, 2, 0).numpy()
    puv, tuv = argmax_coords(pred).numpy(), argmax_coords(true).numpy()
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.6))
    axes[0].imshow(img)
    for k in range(pred.shape[0]):
        color = plt.cm.tab20(k / 12)
        if bool(visible[k]) and true[k].max() > 0:
            axes[0].scatter(*tuv[k], s=40, facecolors="none", edgecolors=[color])
            axes[0].scatter(*puv[k], s=40, marker="x", c=[color])
    axes[0].set_title("last rollout step: true (o) vs predicted (x)")
    axes[1].imshow(true.amax(0).numpy(), cmap="magma")
    axes[1].set_title("true heatmaps (max over 12)")
    axes[2].imshow(pred.amax(0).numpy(), cmap="magma")
    axes[2].set_title("predicted heatmaps (max over 12)")
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
