"""The reference DexWM trainer's loop (config ``config.py``, data ``data.py``, model and loss
``world_model.py``, checkpoints ``checkpoints.py``, DDP ``distributed.py``, ``--eval`` ``evaluation.py``,
figures ``figures.py``).

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
    RUN_DIR/events.out.tfevents.*  the same scalars for TensorBoard (``event_log.py``)
    RUN_DIR/checkpoints/step_XXXXXXX.pt   model, optimiser, scheduler, data position, RNG states
    RUN_DIR/eval/metrics.json, eval/heatmaps.png   written by --eval
    RUN_DIR/report.png             curves + evaluation figures, written by --report (``report.py``)

Multi-GPU: ``torchrun --nproc_per_node=8 -m dexhands_data.cli.main train-reference ...`` (DDP; the per-GPU
batch is ``batch_size``; rank 0 logs and checkpoints). Resume: the same command with ``--resume``; the run
continues bit-for-bit (same sample order and RNG) when the dataset's samples depend only on their index.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .checkpoints import checkpoint_paths, rng_state, save_checkpoint, set_rng_state
from .config import TrainConfig
from .data import EpochIndexed, ResumableSampler, open_windows, prepare_batch
from .distributed import setup_distributed
from .event_log import EventLog
from .world_model import build_model, compute_loss


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
        set_rng_state(state["rng"][min(env.rank, len(state["rng"]) - 1)])
        if env.main:
            print(f"[train-reference] resumed from {ckpts[-1]} at step {step}")
    elif ckpts:
        raise FileExistsError(f"{out}: already holds checkpoints; pass --resume or choose another --out")
    if env.main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")
        _truncate_metrics(out / "metrics.jsonl", step)
        events = EventLog(out, resume_step=step)

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
                events.log(rec)
                print(f"[train-reference] step {step}/{cfg.steps} loss {rec['loss']:.5f} "
                      f"(state {rec['loss_state']:.5f}, hc {rec['loss_hc']:.3e}) lr {lr:.2e} "
                      f"{rec['steps_per_s']:.2f} steps/s {rec['samples_per_s']:.1f} samples/s", flush=True)
            t_last, steps_since = time.perf_counter(), 0
        if step % cfg.ckpt_every == 0 or step == cfg.steps:
            rng = [rng_state()]
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
    if env.main:
        events.close()
    if env.world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return logged
