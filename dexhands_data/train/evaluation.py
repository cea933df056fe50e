"""``--eval``: open-loop rollouts of a trained checkpoint, latent L2 and heatmap PCK per rollout step."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .checkpoints import checkpoint_paths
from .config import TrainConfig
from .data import open_windows, prepare_batch
from .distributed import setup_distributed
from .figures import save_heatmap_figure
from .hc_head import PCK_THRESHOLDS_PX, hc_targets, pck
from .world_model import autocast, build_model


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
