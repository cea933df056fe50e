"""Frozen image encoders for the reference trainer: frames -> patch latents.

Two families, one interface (:class:`FrozenEncoder`): ``encode(frames)`` maps ImageNet-normalised frames
(..., 3, H, W) float to patch latents (..., P, D) with P = (H // 14) * (W // 14) in row-major patch order.

* ``dinov2_vits14`` / ``dinov2_vitb14`` / ``dinov2_vitl14``: DINOv2 (no registers) re-implemented in plain
  torch and loaded from a LOCAL checkpoint, either the torch-hub file ``dinov2_vit?14_pretrain.pth`` or a
  transformers-format folder (``config.json`` + ``model.safetensors`` / ``pytorch_model.bin``, e.g. a
  snapshot of ``facebook/dinov2-large``). Output: ``x_norm_patchtokens`` (final LayerNorm, CLS dropped),
  as DexWM uses (dexwm.md §6.1). Nothing is downloaded: a missing file raises an error naming what to get.
* ``random``: :class:`RandomPatchEncoder`, a weight-free frozen encoder for offline tests and smoke runs.
  It is **not DINOv2** and its latents carry no semantics: a fixed random projection of 14x14 pixel
  patches (weights drawn from a seeded CPU generator, so identical everywhere) followed by a LayerNorm.
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

PATCH_SIZE = 14


@dataclass(frozen=True)
class DinoSpec:
    dim: int
    depth: int
    heads: int
    hf_name: str


DINOV2_SPECS: dict[str, DinoSpec] = {
    "dinov2_vits14": DinoSpec(384, 12, 6, "facebook/dinov2-small"),
    "dinov2_vitb14": DinoSpec(768, 12, 12, "facebook/dinov2-base"),
    "dinov2_vitl14": DinoSpec(1024, 24, 16, "facebook/dinov2-large"),
}
ENCODER_NAMES: tuple[str, ...] = ("random", *DINOV2_SPECS)


class FrozenEncoder(nn.Module):
    """A frozen, eval-mode encoder; subclasses implement ``_encode(x (N, 3, H, W)) -> (N, P, D)``."""

    dim: int
    name: str
    patch_size: int = PATCH_SIZE

    def grid(self, height: int, width: int) -> tuple[int, int]:
        """Patch grid (rows, cols) for an image of ``height`` x ``width`` pixels."""
        if height % self.patch_size or width % self.patch_size:
            raise ValueError(f"image {height}x{width} is not a multiple of the patch size {self.patch_size}")
        return height // self.patch_size, width // self.patch_size

    def train(self, mode: bool = True) -> "FrozenEncoder":
        return super().train(False)  # always eval: frozen

    @torch.no_grad()
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """frames (..., 3, H, W) ImageNet-normalised -> latents (..., P, D), no gradient."""
        lead = frames.shape[:-3]
        x = frames.reshape(-1, *frames.shape[-3:])
        z = self._encode(x)
        return z.reshape(*lead, *z.shape[-2:])

    def _encode(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class RandomPatchEncoder(FrozenEncoder):
    """NOT DINOv2. A fixed random-projection patch embedding (patch 14, stride 14) + LayerNorm (no affine).

    Weights are N(0, 1/(3*14*14)) from ``torch.Generator().manual_seed(seed)`` on CPU, so every machine
    gets the same encoder without a weights file. They are buffers (not parameters, not in checkpoints).
    """

    def __init__(self, dim: int = 384, seed: int = 0):
        super().__init__()
        self.dim, self.name, self.seed = dim, "random", seed
        g = torch.Generator().manual_seed(seed)
        fan_in = 3 * PATCH_SIZE * PATCH_SIZE
        w = torch.randn(dim, 3, PATCH_SIZE, PATCH_SIZE, generator=g) / math.sqrt(fan_in)
        self.register_buffer("weight", w, persistent=False)

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        z = F.conv2d(x, self.weight.to(x.dtype), stride=PATCH_SIZE).flatten(2).transpose(1, 2)
        return F.layer_norm(z, (self.dim,), eps=1e-6)


class _DinoBlock(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.ls1 = nn.Parameter(torch.ones(dim))
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)
        self.ls2 = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(n, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(n, t, d)
        x = x + self.ls1 * self.proj(a)
        return x + self.ls2 * self.fc2(F.gelu(self.fc1(self.norm2(x))))


class DinoV2Encoder(FrozenEncoder):
    """DINOv2 ViT-{S,B,L}/14 without registers; returns ``x_norm_patchtokens``.

    Position embeddings (trained at 37x37 patches) are resized bicubically to the patch grid: the hub rule
    (scale factor (rows + 0.1)/37, (cols + 0.1)/37) for hub checkpoints, the transformers rule (target size)
    for transformers folders, so each format reproduces its own reference implementation.
    """

    def __init__(self, name: str, interpolate_offset: float = 0.1):
        super().__init__()
        spec = DINOV2_SPECS[name]
        self.name, self.dim, self.interpolate_offset = name, spec.dim, interpolate_offset
        self.patch_embed = nn.Conv2d(3, spec.dim, PATCH_SIZE, PATCH_SIZE)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, spec.dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + 37 * 37, spec.dim))
        self.blocks = nn.ModuleList(_DinoBlock(spec.dim, spec.heads) for _ in range(spec.depth))
        self.norm = nn.LayerNorm(spec.dim, eps=1e-6)
        self.requires_grad_(False)

    def _pos_embed(self, rows: int, cols: int, dtype: torch.dtype) -> torch.Tensor:
        pe = self.pos_embed.float()
        m = int(math.isqrt(pe.shape[1] - 1))
        grid = pe[:, 1:].reshape(1, m, m, -1).permute(0, 3, 1, 2)
        if (rows, cols) != (m, m):
            if self.interpolate_offset:
                scale = ((rows + self.interpolate_offset) / m, (cols + self.interpolate_offset) / m)
                grid = F.interpolate(grid, scale_factor=scale, mode="bicubic", antialias=False)
            else:
                grid = F.interpolate(grid, size=(rows, cols), mode="bicubic", align_corners=False)
        grid = grid.permute(0, 2, 3, 1).reshape(1, rows * cols, -1)
        return torch.cat([pe[:, :1], grid], dim=1).to(dtype)

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        rows, cols = self.grid(x.shape[-2], x.shape[-1])
        z = self.patch_embed(x).flatten(2).transpose(1, 2)
        z = torch.cat([self.cls_token.expand(z.shape[0], -1, -1).to(z.dtype), z], dim=1)
        z = z + self._pos_embed(rows, cols, z.dtype)
        for block in self.blocks:
            z = block(z)
        return self.norm(z)[:, 1:]

    # ---- loading ---------------------------------------------------------------------------------------
    def load_hub_state_dict(self, sd: dict[str, torch.Tensor]) -> None:
        """Load a torch-hub ``dinov2_vit?14_pretrain.pth`` state dict (``blocks.i.attn.qkv.weight``...)."""
        out = {"cls_token": sd["cls_token"], "pos_embed": sd["pos_embed"], "norm.weight": sd["norm.weight"],
               "norm.bias": sd["norm.bias"], "patch_embed.weight": sd["patch_embed.proj.weight"],
               "patch_embed.bias": sd["patch_embed.proj.bias"]}
        for i in range(len(self.blocks)):
            p = f"blocks.{i}."
            for ours, theirs in (("norm1", "norm1"), ("qkv", "attn.qkv"), ("proj", "attn.proj"),
                                 ("norm2", "norm2"), ("fc1", "mlp.fc1"), ("fc2", "mlp.fc2")):
                for t in ("weight", "bias"):
                    out[f"{p}{ours}.{t}"] = sd[f"{p}{theirs}.{t}"]
            out[p + "ls1"], out[p + "ls2"] = sd[p + "ls1.gamma"], sd[p + "ls2.gamma"]
        self.load_state_dict({k: v.float() for k, v in out.items()}, strict=True)

    def load_hf_state_dict(self, sd: dict[str, torch.Tensor]) -> None:
        """Load a transformers ``Dinov2Model`` state dict (keys ``encoder.layer.i.attention...``)."""
        sd = {k.removeprefix("dinov2."): v for k, v in sd.items()}
        out = {"cls_token": sd["embeddings.cls_token"], "pos_embed": sd["embeddings.position_embeddings"],
               "patch_embed.weight": sd["embeddings.patch_embeddings.projection.weight"],
               "patch_embed.bias": sd["embeddings.patch_embeddings.projection.bias"],
               "norm.weight": sd["layernorm.weight"], "norm.bias": sd["layernorm.bias"]}
        for i in range(len(self.blocks)):
            p, h = f"blocks.{i}.", f"encoder.layer.{i}."
            att = h + "attention.attention."
            for t in ("weight", "bias"):
                out[f"{p}qkv.{t}"] = torch.cat([sd[f"{att}{n}.{t}"] for n in ("query", "key", "value")])
                out[f"{p}proj.{t}"] = sd[f"{h}attention.output.dense.{t}"]
                for ours, theirs in (("norm1", "norm1"), ("norm2", "norm2"), ("fc1", "mlp.fc1"),
                                     ("fc2", "mlp.fc2")):
                    out[f"{p}{ours}.{t}"] = sd[f"{h}{theirs}.{t}"]
            out[p + "ls1"], out[p + "ls2"] = sd[h + "layer_scale1.lambda1"], sd[h + "layer_scale2.lambda1"]
        self.load_state_dict({k: v.float() for k, v in out.items()}, strict=True)


_ST_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64}


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """Minimal reader of the safetensors format (8-byte little-endian header size, JSON header, raw data)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for key, info in header.items():
        if key == "__metadata__":
            continue
        if info["dtype"] not in _ST_DTYPES:
            raise ValueError(f"{path}: unsupported safetensors dtype {info['dtype']} for {key}")
        a, b = info["data_offsets"]
        buf = bytearray(data[a:b])
        t = torch.frombuffer(buf, dtype=_ST_DTYPES[info["dtype"]]) if b > a else torch.empty(0)
        out[key] = t.reshape(info["shape"]).clone()
    return out


def _search_dirs() -> list[Path]:
    torch_home = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch"))
    hf_home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    return [torch_home / "hub" / "checkpoints", hf_home / "hub"]


def _find_weights(name: str, weights: str | None) -> tuple[str, Path]:
    """Resolve ``weights`` (file or folder, or None = default caches) to ("hub"|"hf", path)."""
    hub_file = f"{name}_pretrain.pth"
    candidates = [Path(weights).expanduser()] if weights else _search_dirs()
    for c in candidates:
        if c.is_file():
            return ("hf", c.parent) if c.name in ("model.safetensors", "pytorch_model.bin") else ("hub", c)
        for sub in (c, c / "checkpoints", c / "hub" / "checkpoints"):
            if (sub / hub_file).is_file():
                return "hub", sub / hub_file
        if (c / "config.json").is_file():
            return "hf", c
        repo = c / ("models--" + DINOV2_SPECS[name].hf_name.replace("/", "--")) / "snapshots"
        for snap in sorted(repo.glob("*")) if repo.is_dir() else []:
            if (snap / "config.json").is_file():
                return "hf", snap
    where = weights or " or ".join(str(c) for c in candidates)
    raise FileNotFoundError(
        f"{name}: no local weights found in {where}. Download either the torch-hub checkpoint "
        f"https://dl.fbaipublicfiles.com/dinov2/{name}/{hub_file} or the transformers folder "
        f"`huggingface-cli download {DINOV2_SPECS[name].hf_name}`, and pass its path with --encoder-weights. "
        "For offline smoke runs use --encoder random (NOT DINOv2)."
    )


def load_dinov2(name: str, weights: str | None = None) -> DinoV2Encoder:
    """Build ``name`` and load its weights from a local hub file / transformers folder (see module doc)."""
    fmt, path = _find_weights(name, weights)
    if fmt == "hub":
        enc = DinoV2Encoder(name, interpolate_offset=0.1)
        enc.load_hub_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    else:
        cfg = json.loads((path / "config.json").read_text())
        spec = DINOV2_SPECS[name]
        if (cfg.get("hidden_size"), cfg.get("num_hidden_layers")) != (spec.dim, spec.depth):
            raise ValueError(f"{path}/config.json: hidden_size/num_hidden_layers do not match {name}")
        if cfg.get("num_register_tokens", 0) or cfg.get("use_swiglu_ffn", False):
            raise ValueError(f"{path}/config.json: registers / SwiGLU variants are not supported")
        enc = DinoV2Encoder(name, interpolate_offset=0.0)
        st = path / "model.safetensors"
        if st.is_file():
            sd = read_safetensors(st)
        else:
            sd = torch.load(path / "pytorch_model.bin", map_location="cpu", weights_only=True)
        enc.load_hf_state_dict(sd)
    enc.weights_path = str(path)
    return enc.eval()


def build_encoder(name: str, weights: str | None = None, random_dim: int = 384) -> FrozenEncoder:
    """Encoder by name: ``random`` (NOT DINOv2, no weights) or ``dinov2_vit{s,b,l}14`` (local weights)."""
    if name == "random":
        return RandomPatchEncoder(random_dim).eval()
    if name in DINOV2_SPECS:
        return load_dinov2(name, weights)
    raise ValueError(f"unknown encoder {name!r}; choose one of {', '.join(ENCODER_NAMES)}")

