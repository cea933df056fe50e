"""Training-step throughput of the reference DexWM trainer (model only; the loader has its own benchmark).

Each step = frozen-encoder forward + predictor/HC-head forward and backward + clip + AdamW step, on synthetic
batches already on the device (frames (B, 9, 3, H, W), actions, HC keypoints with ~70 % visible).

* CUDA present: sizes S and B (``--sizes``) at batch 16, 224 x 392, bf16 autocast, with and without
  ``torch.compile``; encoder DINOv2 ViT-L/14 **architecture with random weights** (same FLOPs as the real
  one; pass ``--encoder-weights`` to load real ones). Reports steps/s, samples/s, peak memory and model FLOPs
  utilisation (MFU = analytic useful FLOPs per second / ``--peak-tflops``, default 989 = H100 SXM dense bf16).
* CPU only: the ``tiny`` model with the weight-free ``random`` encoder (NOT DINOv2), float32.

    python benchmarks/bench_train.py                 # auto: GPU sizes S,B or CPU tiny
    python benchmarks/bench_train.py --device cpu --threads 1 --height 56 --width 98
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from dexhands_data.train.encoders import DINOV2_SPECS, DinoV2Encoder, load_dinov2
from dexhands_data.train.config import TrainConfig
from dexhands_data.train.world_model import HC_HEAD_SIZES, build_model, compute_loss
from dexhands_data.train.model import PREDICTOR_SIZES


def vit_flops(tokens: int, dim: int, depth: int, mlp_ratio: float) -> float:
    """Forward FLOPs of ``depth`` pre-norm ViT blocks over ``tokens`` tokens (multiply-add = 2 FLOPs)."""
    per = 2 * tokens * (4 * dim * dim + 2 * mlp_ratio * dim * dim) + 4 * tokens * tokens * dim
    return depth * per


def step_flops(cfg: TrainConfig, enc_dim: int, enc_depth: int, patches: int) -> dict[str, float]:
    """Useful FLOPs of one training step: encoder forward + 3 x (predictor + HC head forward)."""
    b, t = cfg.batch_size, cfg.num_frames
    s = t - 1  # predicted slots = context frames used as keys
    depth, d, _ = PREDICTOR_SIZES[cfg.model]
    enc = 0.0
    if cfg.encoder != "random":
        enc = b * t * (vit_flops(patches + 1, enc_dim, enc_depth, 4.0) + 2 * patches * 3 * 14 * 14 * enc_dim)
    else:
        enc = b * t * 2 * patches * 3 * 14 * 14 * enc_dim
    sp = s * patches
    per_block = 2 * sp * 4 * d * d + 4 * s * patches * patches * d  # self-attention: qkv + out, scores
    per_block += 2 * sp * 2 * d * d + 2 * sp * 2 * d * d  # cross-attention q + out, k/v of the context
    per_block += 4 * d * patches * patches * s * (s + 1) / 2  # cross scores + values over frames 0..i-1 only
    per_block += 2 * sp * 2 * 2.0 * d * d  # MLP ratio 2
    pred = b * (depth * per_block + 2 * sp * d * d)
    if d != enc_dim:
        pred += b * 2 * (2 * sp * d * enc_dim)
    hd, hdepth, _ = HC_HEAD_SIZES["tiny" if cfg.model == "tiny" else "default"]
    head = b * s * (2 * patches * enc_dim * hd + vit_flops(patches, hd, hdepth, 4.0)
                    + 2 * patches * hd * 196 * 12)
    return {"encoder": enc, "predictor": pred, "head": head, "train_step": enc + 3 * (pred + head)}


def synthetic_batch(cfg: TrainConfig, device: torch.device) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    b, t, h, w = cfg.batch_size, cfg.num_frames, cfg.image_height, cfg.image_width
    batch = {"frames": torch.randn(b, t, 3, h, w, generator=g),
             "actions": 0.01 * torch.randn(b, t - 1, 132, generator=g),
             "hc_keypoints": torch.rand(b, t, 12, 2, generator=g) * torch.tensor([w, h]),
             "hc_visible": torch.rand(b, t, 12, generator=g) < 0.7}
    return {k: v.to(device) for k, v in batch.items()}


def bench(cfg: TrainConfig, device: torch.device, compile_: bool, steps: int, warmup: int,
          encoder_weights: str | None) -> dict:
    torch.manual_seed(0)
    encoder = None
    if cfg.encoder != "random":  # DINOv2 architecture; random weights unless real ones are given
        encoder = load_dinov2(cfg.encoder, encoder_weights) if encoder_weights else DinoV2Encoder(cfg.encoder)
    encoder, model = build_model(cfg, device, encoder)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-5)
    train_model = torch.compile(model) if compile_ else model
    batch = synthetic_batch(cfg, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()

    def step():
        loss, _ = compute_loss(encoder, train_model, batch, cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss

    t0 = time.perf_counter()
    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t_warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = step()
    loss.item()
    if device.type == "cuda":
        torch.cuda.synchronize()
    dt = (time.perf_counter() - t0) / steps
    patches = (cfg.image_height // 14) * (cfg.image_width // 14)
    spec = DINOV2_SPECS.get(cfg.encoder)
    flops = step_flops(cfg, encoder.dim, spec.depth if spec else 0, patches)
    out = {"model": cfg.model, "encoder": cfg.encoder, "compile": compile_, "batch": cfg.batch_size,
           "image": f"{cfg.image_height}x{cfg.image_width}", "frames": cfg.num_frames, "device": str(device),
           "threads": torch.get_num_threads(), "steps_per_s": 1 / dt, "samples_per_s": cfg.batch_size / dt,
           "warmup_s": t_warm, "params_M": sum(p.numel() for p in model.parameters()) / 1e6,
           "tflop_per_step": flops["train_step"] / 1e12}
    if device.type == "cuda":
        out["peak_memory_gb"] = torch.cuda.max_memory_allocated() / 2**30
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--sizes", default=None, help="comma list (default: S,B on GPU, tiny on CPU)")
    ap.add_argument("--batch", type=int, default=None, help="default 16 on GPU, 4 on CPU")
    ap.add_argument("--height", type=int, default=224)
    ap.add_argument("--width", type=int, default=392)
    ap.add_argument("--encoder", default=None, help="default dinov2_vitl14 on GPU, random on CPU")
    ap.add_argument("--encoder-weights", default=None)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--peak-tflops", type=float, default=989.0)
    ap.add_argument("--no-compile", action="store_true", help="GPU: skip the torch.compile runs")
    args = ap.parse_args()
    device = torch.device(args.device)
    gpu = device.type == "cuda"
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = (args.sizes or ("S,B" if gpu else "tiny")).split(",")
    modes = [False] if not gpu or args.no_compile else [False, True]
    for size in sizes:
        for compile_ in modes:
            cfg = TrainConfig(model=size, encoder=args.encoder or ("dinov2_vitl14" if gpu else "random"),
                              random_encoder_dim=64, batch_size=args.batch or (16 if gpu else 4),
                              image_height=args.height, image_width=args.width)
            steps = args.steps or (20 if gpu else 5)
            res = bench(cfg, device, compile_, steps, 3 if gpu else 1, args.encoder_weights)
            if gpu:
                res["mfu"] = res["tflop_per_step"] * res["steps_per_s"] / args.peak_tflops
            print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
