"""What the trainer reads: the loader's windows, a resumable sample order, and a batch on the device."""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Sampler

from .config import TrainConfig


def open_windows(cfg: TrainConfig, train: bool) -> Dataset:
    """The loader's map-style windows dataset (the only way the trainer reads data).

    Training: ``cfg.sampler`` windows of ``num_context + 1`` frames from split ``cfg.split`` (minus the
    held-out episodes when ``eval_split == "val"``). Evaluation: uniform windows of ``eval_rollout + 1``
    frames every ``eval_stride`` frames, non-overlapping, from the held-out episodes or ``eval_split``.
    """
    from ..loader.hf import load, load_episodes
    from ..loader.sampling import SamplerConfig
    from ..loader.windows import WindowConfig, WindowDataset

    holdout = cfg.eval_split == "val"
    hf_split = cfg.split if (train or holdout) else cfg.eval_split
    episode_split = ("train" if train else "val") if holdout else None
    if train:
        sampler = SamplerConfig(mode=cfg.sampler, num_context=cfg.num_context)
    else:
        n = cfg.eval_rollout
        sampler = SamplerConfig(mode="uniform", num_context=n, stride=cfg.eval_stride,
                                target_step=n * cfg.eval_stride)
    wcfg = WindowConfig(sampler=sampler, convention=cfg.convention, seed=cfg.seed, split=episode_split,
                        val_fraction=cfg.val_fraction, out_height=cfg.image_height, out_width=cfg.image_width)
    return WindowDataset(load(cfg.data, split=hf_split), load_episodes(cfg.data), wcfg)


class EpochIndexed(Dataset):
    """Wraps a windows dataset so that the sampler's (epoch, index) keys also set the window draw's epoch."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        epoch, i = key
        if hasattr(self.dataset, "set_epoch") and getattr(self.dataset, "epoch", None) != epoch:
            self.dataset.set_epoch(epoch)
        return self.dataset[i]


class ResumableSampler(Sampler[tuple[int, int]]):
    """Deterministic infinite stream of (epoch, index) keys: the epochs' orders ``randperm(n, seed + epoch)``
    concatenated; rank r takes stream positions r, r + world, ... ``position`` (a multiple of world) counts
    the keys consumed by all ranks, so a resumed run restarts exactly where it stopped (the loader draws
    windows from (seed, epoch, episode, window), not from process RNG).
    """

    def __init__(self, n: int, seed: int, rank: int = 0, world: int = 1, position: int = 0):
        self.n, self.seed, self.rank, self.world, self.position = n, seed, rank, world, position

    def __iter__(self) -> Iterator[tuple[int, int]]:
        p, epoch, order = self.position + self.rank, -1, []
        while True:
            e, i = divmod(p, self.n)
            if e != epoch:
                gen = torch.Generator().manual_seed(self.seed + e)
                epoch, order = e, torch.randperm(self.n, generator=gen).tolist()
            yield epoch, order[i]
            p += self.world

    def __len__(self) -> int:  # infinite stream; DataLoader only needs a number
        return 2**62


def prepare_batch(batch: dict[str, torch.Tensor], cfg: TrainConfig,
                  device: torch.device) -> dict[str, torch.Tensor]:
    """Move to ``device``; resize frames to the configured image size (keypoints scaled alike); zero the
    action dimensions ``action_mask`` marks as not data (a missing hand, an unknown camera, non-metric
    translation), so the loss never learns from them."""
    out = {k: v.to(device, non_blocking=True) for k, v in batch.items() if isinstance(v, torch.Tensor)}
    h, w = out["frames"].shape[-2:]
    if (h, w) != (cfg.image_height, cfg.image_width):
        b, t = out["frames"].shape[:2]
        frames = F.interpolate(out["frames"].flatten(0, 1), size=(cfg.image_height, cfg.image_width),
                               mode="bilinear", align_corners=False, antialias=True)
        out["frames"] = frames.view(b, t, 3, cfg.image_height, cfg.image_width)
        scale = torch.tensor([cfg.image_width / w, cfg.image_height / h], device=device)
        uv = out["hc_keypoints"] * scale
        u, v = uv[..., 0], uv[..., 1]
        inside = (u > 0) & (u < cfg.image_width) & (v > 0) & (v < cfg.image_height)
        out["hc_keypoints"], out["hc_visible"] = uv, out["hc_visible"].bool() & inside
    actions = torch.nan_to_num(out["actions"].float())
    if "action_mask" in out:  # masked dimensions carry no signal: zero input, so no gradient reaches their weights
        actions = actions * out["action_mask"].to(actions.dtype)
    out["actions"] = actions
    return out
