"""The trainable world model (predictor + HC head), its construction and the loss of one batch."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..keypoints import ACTION_DIM
from .config import TrainConfig
from .encoders import FrozenEncoder, build_encoder
from .hc_head import HeatmapHead, hc_loss, hc_targets
from .model import PREDICTOR_SIZES, CDiTPredictor, PredictorConfig

#: HC head (dim, depth, heads): the released head for real sizes, a small one for ``tiny``.
HC_HEAD_SIZES = {"tiny": (64, 2, 4), "default": (256, 6, 16)}


class WorldModel(nn.Module):
    """Predictor + HC head (the trainable part; the frozen encoder stays outside DDP)."""

    def __init__(self, predictor: CDiTPredictor, head: HeatmapHead):
        super().__init__()
        self.predictor, self.head = predictor, head

    def forward(self, latents: torch.Tensor, actions: torch.Tensor, hc_keypoints: torch.Tensor,
                hc_visible: torch.Tensor, multistep: bool = False,
                rollout_pad: bool = True) -> dict[str, torch.Tensor]:
        """Losses for one batch: latents (B, T, P, D), actions (B, T-1, 132), hc_* of frames 0..T-1."""
        if multistep:
            pred = self.predictor.rollout(latents[:, 0], actions, pad=rollout_pad)
        else:
            pred = self.predictor(latents, actions)
        target = latents[:, 1:]
        loss_state = F.mse_loss(pred.float(), target.float())
        maps = self.head(pred)
        h, w = maps.shape[-2:]
        with torch.no_grad():
            tmaps = hc_targets(hc_keypoints[:, 1:], h, w)
        loss_hc = hc_loss(maps, tmaps, hc_visible[:, 1:])
        return {"loss_state": loss_state, "loss_hc": loss_hc}


def build_model(cfg: TrainConfig, device: torch.device,
                encoder: FrozenEncoder | None = None) -> tuple[FrozenEncoder, WorldModel]:
    """Frozen encoder (``cfg.encoder`` unless one is given) + predictor and HC head sized for its latents."""
    if cfg.model not in PREDICTOR_SIZES:
        raise ValueError(f"unknown model size {cfg.model!r}; choose one of {', '.join(PREDICTOR_SIZES)}")
    encoder = (encoder or build_encoder(cfg.encoder, cfg.encoder_weights, cfg.random_encoder_dim)).to(device)
    rows, cols = encoder.grid(cfg.image_height, cfg.image_width)
    pcfg = PredictorConfig(cfg.model, encoder.dim, cfg.num_frames, rows * cols, ACTION_DIM,
                           grad_checkpointing=cfg.grad_checkpointing)
    dim, depth, heads = HC_HEAD_SIZES["tiny" if cfg.model == "tiny" else "default"]
    head = HeatmapHead(encoder.dim, (rows, cols), dim, depth, heads, patch=encoder.patch_size,
                       decode=cfg.hc_decode)
    return encoder, WorldModel(CDiTPredictor(pcfg), head).to(device)


def compute_loss(encoder: FrozenEncoder, model: nn.Module, batch: dict[str, torch.Tensor],
                 cfg: TrainConfig) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``L_state + hc_weight * L_HC`` of a prepared batch (under bf16 autocast on CUDA) and its parts."""
    with autocast(batch["frames"].device):
        latents = encoder.encode(batch["frames"])
        losses = model(latents, batch["actions"], batch["hc_keypoints"], batch["hc_visible"],
                       multistep=cfg.multistep, rollout_pad=cfg.rollout_pad)
    return losses["loss_state"] + cfg.hc_weight * losses["loss_hc"], losses


def autocast(device: torch.device):
    """bf16 autocast on CUDA, a no-op elsewhere."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
