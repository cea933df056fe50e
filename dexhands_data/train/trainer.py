"""The reference DexWM trainer: one readable module (config, data, loop, checkpoints, evaluation).

Model and losses follow dexwm.md §6-8: a frozen encoder turns the window's frames into patch latents; the
CDiT predictor (``model.py``) predicts frames 1..T-1 teacher-forced in parallel (or, with ``multistep``,
by a differentiable open-loop rollout from the true first frame); the HC head (``hc_head.py``) decodes the
predicted latents into 12 keypoint heatmaps. Loss ``L = L_state + hc_weight * L_HC`` (hc_weight 100):
``L_state`` = MSE between predicted and true latents over (B, T-1, P, D); ``L_HC`` = masked heatmap MSE with
Gaussian targets built on the device. Optimiser AdamW (weight decay 1e-5), lr schedule ``onecycle`` (released
code: OneCycleLR, pct_start 0, max 1e-4, div 25, final div 1e3, i.e. a cosine from 1e-4 to 4e-9) or
``cosine`` (paper: 1e-4 -> 1e-7), gradient clipping, bf16 autocast on CUDA.

Data come only through ``dexhands_data.loader`` (windows of T frames, the batch dict of docs/trainer.md).

Run folder::

    RUN_DIR/config.json            the resolved TrainConfig
    RUN_DIR/metrics.jsonl          one JSON object per logged step: step, loss, loss_state, loss_hc, lr, ...
    RUN_DIR/checkpoints/step_XXXXXXX.pt   model, optimiser, scheduler, data position, RNG states
    RUN_DIR/eval/metrics.json, eval/heatmaps.png   written by --eval

Multi-GPU: ``torchrun --nproc_per_node=8 -m dexhands_data.cli.main train-reference ...`` (DDP; the per-GPU
batch is ``batch_size``; rank 0 logs and checkpoints). Resume: the same command with ``--resume``; the run
continues bit-for-bit (same sample order and RNG) when the dataset's samples depend only on their index.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from .encoders import FrozenEncoder, build_encoder
from .hc_head import PCK_THRESHOLDS_PX, HeatmapHead, argmax_coords, hc_loss, hc_targets, pck
from .model import PREDICTOR_SIZES, CDiTPredictor, PredictorConfig

ACTION_DIM = 132
#: HC head (dim, depth, heads): the released head for real sizes, a small one for ``tiny``.
HC_HEAD_SIZES = {"tiny": (64, 2, 4), "default": (256, 6, 16)}


@dataclass
class TrainConfig:
    """Everything a run depends on; dumped to RUN_DIR/config.json."""

    data: str = ""  # dataset root written by dexdata (e.g. ./dexwm-actions)
    out: str = "runs/dexwm"
    split: str = "train"
    eval_split: str = "val"  # "val": held-out episodes of `split` (episode hash); else another dataset split
    val_fraction: float = 0.01  # share of episodes held out when eval_split == "val"
    convention: str = "dexwm-official"  # action convention of the loader (relative | dexwm-official)
    sampler: str = "dexwm"  # training windows: dexwm (released var_time) | full-seq (fine-tuning) | uniform
    model: str = "XL"  # tiny | S | B | L | XL
    encoder: str = "dinov2_vitl14"  # random (NOT DINOv2) | dinov2_vits14 | dinov2_vitb14 | dinov2_vitl14
    encoder_weights: str | None = None  # local torch-hub .pth or transformers folder
    random_encoder_dim: int = 384
    image_height: int = 224  # frames are resized to this if the loader delivers another size
    image_width: int = 392
    num_context: int = 8  # window = num_context + 1 frames
    steps: int = 1000
    batch_size: int = 16  # per process
    lr: float = 1e-4
    schedule: str = "onecycle"  # onecycle (released code) | cosine (paper, lr -> min_lr)
    min_lr: float = 1e-7
    weight_decay: float = 1e-5
    grad_clip: float = 1.0
    hc_weight: float = 100.0
    hc_decode: str = "paper"  # paper (16x28 tokens) | code (16x16 then resize)
    multistep: bool = False  # rollout fine-tuning: back-propagate through the open-loop rollout
    rollout_pad: bool = True  # pad the rollout context with copies of frame 0 (released behaviour)
    init_from: str | None = None  # weights-only start (e.g. fine-tuning from a pre-training checkpoint)
    seed: int = 0
    num_workers: int = 0
    log_every: int = 10
    ckpt_every: int = 500
    keep_checkpoints: int = 2
    compile: bool = False
    grad_checkpointing: bool = False
    resume: bool = False
    eval_rollout: int = 8  # open-loop steps in --eval (window of eval_rollout + 1 frames)
    eval_stride: int = 6  # frames between rollout steps in --eval (0.2 s at 30 Hz)
    eval_batches: int = 10

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    @property
    def num_frames(self) -> int:
        return self.num_context + 1


# ---------------------------------------------------------------------------------------------- distributed
@dataclass(frozen=True)
class Dist:
    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed() -> Dist:
    """DDP from torchrun's env vars (WORLD_SIZE, RANK, LOCAL_RANK); single process otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    rank = dist.get_rank() if world > 1 else 0
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return Dist(rank, world, torch.device("cuda", local))
    return Dist(rank, world, torch.device("cpu"))


# ------------------------------------------------------------------------------------------------------ data
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


# ----------------------------------------------------------------------------------------------------- model
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


def make_scheduler(cfg: TrainConfig, opt: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
    if cfg.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=cfg.lr, total_steps=cfg.steps + 1, pct_start=0.0, div_factor=25.0,
            final_div_factor=1e3, anneal_strategy="cos", cycle_momentum=False)
    if cfg.schedule == "cosine":
        ratio = cfg.min_lr / cfg.lr
        return torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: ratio + (1 - ratio) * 0.5 * (1 + math.cos(math.pi * min(s, cfg.steps) / cfg.steps))
        )
    raise ValueError(f"unknown schedule {cfg.schedule!r} (onecycle | cosine)")


# ----------------------------------------------------------------------------------------------- checkpoints
def _rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def checkpoint_paths(out: str | Path) -> list[Path]:
    """Checkpoints of a run folder, oldest first."""
    return sorted((Path(out) / "checkpoints").glob("step_*.pt"))


def save_checkpoint(path: Path, **state: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


# ------------------------------------------------------------------------------------------------------ train
def _truncate_metrics(path: Path, last_step: int) -> None:
    """Keep only the lines up to ``last_step`` (a resumed run rewrites the steps after its checkpoint)."""
    if path.exists():
        lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
        keep = [ln for ln in lines if json.loads(ln)["step"] <= last_step]
        path.write_text("".join(ln + "\n" for ln in keep))


def train(cfg: TrainConfig, dataset: Dataset | None = None) -> list[dict[str, float]]:
    """Train for ``cfg.steps`` optimiser steps; returns the logged metrics (rank 0)."""
    env = setup_distributed()
    out = Path(cfg.out)
    torch.manual_seed(cfg.seed + env.rank)
    np.random.seed(cfg.seed + env.rank)
    random.seed(cfg.seed + env.rank)
    encoder, model = build_model(cfg, env.device)
    if cfg.encoder == "random" and env.main:
        print("[train-reference] encoder 'random' is a fixed random patch projection, NOT DINOv2 "
              "(smoke runs only)")
    if cfg.init_from:
        model.load_state_dict(torch.load(cfg.init_from, map_location="cpu", weights_only=False)["model"])
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = make_scheduler(cfg, opt)
    step, position = 0, 0
    ckpts = checkpoint_paths(out)
    if cfg.resume and ckpts:
        state = torch.load(ckpts[-1], map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        step, position = state["step"], state["data_position"]
        _set_rng_state(state["rng"][min(env.rank, len(state["rng"]) - 1)])
        if env.main:
            print(f"[train-reference] resumed from {ckpts[-1]} at step {step}")
    elif ckpts:
        raise FileExistsError(f"{out}: already holds checkpoints; pass --resume or choose another --out")
    if env.main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")
        _truncate_metrics(out / "metrics.jsonl", step)

    train_model: nn.Module = model
    if env.world > 1:
        ids = [env.device.index] if env.device.type == "cuda" else None
        train_model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    if cfg.compile:
        train_model = torch.compile(train_model)

    ds = EpochIndexed(dataset if dataset is not None else open_windows(cfg, train=True))
    if len(ds) == 0:
        raise ValueError(f"{cfg.data}: split {cfg.split!r} has no training windows")
    sampler = ResumableSampler(len(ds), cfg.seed, env.rank, env.world, position)
    loader = DataLoader(ds, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.num_workers,
                        pin_memory=env.device.type == "cuda", drop_last=True,
                        generator=torch.Generator().manual_seed(cfg.seed + position))
    logged: list[dict[str, float]] = []
    global_batch = cfg.batch_size * env.world
    data_iter = iter(loader)
    t_last, steps_since = time.perf_counter(), 0
    model.train()
    while step < cfg.steps:
        batch = prepare_batch(next(data_iter), cfg, env.device)
        loss, losses = compute_loss(encoder, train_model, batch, cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        lr = opt.param_groups[0]["lr"]
        opt.step()
        sched.step()
        step += 1
        position += global_batch
        steps_since += 1
        if step % cfg.log_every == 0 or step == cfg.steps:
            if env.device.type == "cuda":
                torch.cuda.synchronize()
            dt = time.perf_counter() - t_last
            parts = torch.stack([loss, losses["loss_state"], losses["loss_hc"]]).detach().float()
            if env.world > 1:  # log the mean over ranks
                dist.all_reduce(parts)
                parts /= env.world
            total, state_l, hc_l = parts.tolist()
            rec = {"step": step, "loss": total, "loss_state": state_l, "loss_hc": hc_l, "lr": lr,
                   "grad_norm": grad_norm.item(),
                   "steps_per_s": steps_since / dt, "samples_per_s": steps_since * global_batch / dt}
            if env.device.type == "cuda":
                rec["max_memory_gb"] = torch.cuda.max_memory_allocated() / 2**30
            if env.main:
                logged.append(rec)
                with open(out / "metrics.jsonl", "a") as f:
                    f.write(json.dumps(rec) + "\n")
                print(f"[train-reference] step {step}/{cfg.steps} loss {rec['loss']:.5f} "
                      f"(state {rec['loss_state']:.5f}, hc {rec['loss_hc']:.3e}) lr {lr:.2e} "
                      f"{rec['steps_per_s']:.2f} steps/s {rec['samples_per_s']:.1f} samples/s", flush=True)
            t_last, steps_since = time.perf_counter(), 0
        if step % cfg.ckpt_every == 0 or step == cfg.steps:
            rng = [_rng_state()]
            if env.world > 1:
                gathered: list[Any] = [None] * env.world
                dist.all_gather_object(gathered, rng[0])
                rng = gathered
            if env.main:
                save_checkpoint(out / "checkpoints" / f"step_{step:07d}.pt", step=step,
                                data_position=position, model=model.state_dict(), optimizer=opt.state_dict(),
                                scheduler=sched.state_dict(), rng=rng, config=asdict(cfg))
                for old in checkpoint_paths(out)[: -cfg.keep_checkpoints]:
                    old.unlink()
    if env.world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return logged


# ------------------------------------------------------------------------------------------------------- eval
@torch.no_grad()
def evaluate(cfg: TrainConfig, dataset: Dataset | None = None,
             checkpoint: str | None = None) -> dict[str, Any]:
    """Open-loop rollouts of ``eval_rollout`` steps from the true first frame with the true actions.

    Metrics per rollout step (averaged over samples), their value at the last step and their mean:
    ``l2_dexwm`` = mean |pred - true| over (B, P, D) (what the released code calls "L2": a mean absolute
    element difference); ``l2`` = mean over (B, P) of the Euclidean norm over D (a true L2); PCK@{2.5, 5,
    10, 20} px of the heatmap head's argmax, ``pck_visible@t`` (denominator: visible keypoints) and
    ``pck_all12@t`` (released denominator 12). Writes RUN_DIR/eval/metrics.json and eval/heatmaps.png.
    """
    env = setup_distributed()
    ckpt_path = Path(checkpoint) if checkpoint else (checkpoint_paths(cfg.out) or [None])[-1]
    if ckpt_path is None:
        raise FileNotFoundError(f"{cfg.out}: no checkpoint to evaluate (train first or pass --checkpoint)")
    state = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    # the model as trained; data, evaluation options and weights location as given now
    overrides = {k: getattr(cfg, k) for k in ("data", "out", "eval_rollout", "eval_batches", "eval_split",
                                              "eval_stride", "batch_size", "num_workers")}
    overrides["encoder_weights"] = cfg.encoder_weights or state["config"]["encoder_weights"]
    run_cfg = TrainConfig.from_dict({**state["config"], **overrides})
    encoder, model = build_model(run_cfg, env.device)
    model.load_state_dict(state["model"])
    model.eval()
    n = run_cfg.eval_rollout
    ds = dataset if dataset is not None else open_windows(run_cfg, train=False)
    loader = DataLoader(ds, batch_size=run_cfg.batch_size, shuffle=False, num_workers=run_cfg.num_workers)
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, torch.Tensor] = {}
    first = None
    for bi, raw in enumerate(loader):
        if bi >= run_cfg.eval_batches:
            break
        batch = prepare_batch(raw, run_cfg, env.device)
        with autocast(env.device):
            z = encoder.encode(batch["frames"][:, : n + 1])
            pred = model.predictor.rollout(z[:, 0], batch["actions"][:, :n], pad=run_cfg.rollout_pad).float()
            maps = model.head(pred).float()
        true = z[:, 1 : n + 1].float()
        h, w = maps.shape[-2:]
        tmaps = hc_targets(batch["hc_keypoints"][:, 1 : n + 1], h, w)
        per = {"l2_dexwm": (pred - true).abs().mean(dim=(-2, -1)), "l2": (pred - true).norm(dim=-1).mean(-1)}
        per.update(pck(maps, tmaps, batch["hc_visible"][:, 1 : n + 1]))
        for k, v in per.items():  # v: (B, n); NaN = no visible keypoint in that sample
            ok = torch.isfinite(v)
            sums[k] = sums.get(k, 0) + torch.where(ok, v, 0).sum(0).double().cpu()
            counts[k] = counts.get(k, 0) + ok.sum(0).double().cpu()
        if first is None:
            first = (batch["frames"][0, n].float().cpu(), maps[0, -1].cpu(), tmaps[0, -1].cpu(),
                     batch["hc_visible"][0, n].cpu())
    if first is None:
        raise ValueError(f"{cfg.data}: no {n + 1}-frame windows to evaluate in split {run_cfg.eval_split!r} "
                         f"(val = the held-out {run_cfg.val_fraction:.0%} of the episodes; "
                         "try --eval-split train)")
    per_step = {k: (sums[k] / counts[k]).tolist() for k in sums}
    result = {"checkpoint": str(ckpt_path), "step": state["step"], "rollout_steps": n,
              "samples": int(counts["l2"][0].item()), "encoder": run_cfg.encoder,
              "definitions": {"l2_dexwm": "mean absolute element difference of latents (released 'L2')",
                              "l2": "mean over samples and patches of the Euclidean norm over latent dims",
                              "pck_visible": "% correct among visible keypoints with a target map",
                              "pck_all12": "% correct over all 12 keypoints (released denominator)",
                              "pck_thresholds_px": list(PCK_THRESHOLDS_PX)},
              "per_step": per_step,
              "last": {k: v[-1] for k, v in per_step.items()},
              "mean": {k: float(np.nanmean(v)) for k, v in per_step.items()}}
    if env.main:
        out = Path(cfg.out) / "eval"
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
        save_heatmap_figure(out / "heatmaps.png", *first)
        result["figure"] = str(out / "heatmaps.png")
        print(f"[train-reference] eval {n} steps on {result['samples']} samples: "
              f"L2(DexWM) last {result['last']['l2_dexwm']:.4f} mean {result['mean']['l2_dexwm']:.4f}; "
              f"PCK@20 visible last {result['last']['pck_visible@20']:.1f}% "
              f"all-12 last {result['last']['pck_all12@20']:.1f}%", flush=True)
    return result


def save_heatmap_figure(path: Path, frame: torch.Tensor, pred: torch.Tensor, true: torch.Tensor,
                        visible: torch.Tensor) -> None:
    """Frame with true (circles) and predicted (crosses) keypoints, and max-over-channel heatmaps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
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
