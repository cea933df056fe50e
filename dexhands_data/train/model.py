"""DexWM predictor: a conditional DiT (CDiT) that regresses the next frame's frozen-encoder patch latents.

Follows dexwm.md §6.2 (paper + released code):

* Tokens: T slots x P patches. Context (keys/values) = clean latents of frames 0..T-2 (after an optional
  ``input_proj`` when the encoder width differs from the predictor width) + a learnable ``pos_embed``
  (T, P, d) ~ N(0, 0.02). Queries are shifted one slot: slot i starts from frame i-1 (with frame i-1's
  position embedding, as in the released code) and predicts frame i; slot 0 has no target and is not
  computed (its output never reaches another slot).
* Each block: self-attention within the slot's own frame; cross-attention from slot i to every token of
  clean frames 0..i-1 (block-causal mask); MLP (ratio 2.0, GELU-tanh). LayerNorms without affine, eps 1e-6;
  attention with a packed QKV projection with bias; separate self/cross attention weights.
* Conditioning (AdaLN-Zero) from the raw action: c = [0, a_0->1, ..., a_{T-2}->{T-1}] (B, T, A), one
  ``SiLU -> Linear(A -> 11 d)`` per block giving shift/scale/gate (self-attn), shift/scale (context norm,
  modulated with the context frame's own c_j), shift/scale/gate (cross-attn), shift/scale/gate (MLP).
  No action MLP, no time embedding. adaLN layers and the final linear are zero-initialised (and so is the
  ``output_proj`` bias), so a fresh predictor outputs exactly 0.
* Teacher forcing (:meth:`CDiTPredictor.forward`) predicts all T-1 target slots in parallel;
  :meth:`CDiTPredictor.predict_next` computes only the last slot (the released ``is_eval`` masks) and
  :meth:`CDiTPredictor.rollout` runs the open-loop autoregressive rollout (left-padding with copies of the
  first frame and zero actions, keeping the T-1 latest frames as context).

Attention uses ``torch.nn.functional.scaled_dot_product_attention``: self-attention by folding frames into
the batch, cross-attention with an explicit boolean block mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn

#: (depth, width, heads) per size; S/B/L/XL from the paper's Tab. 5, ``tiny`` for CPU tests.
PREDICTOR_SIZES: dict[str, tuple[int, int, int]] = {
    "tiny": (2, 64, 4),
    "S": (12, 384, 6),
    "B": (12, 768, 12),
    "L": (24, 1024, 16),
    "XL": (32, 1024, 16),
}


@dataclass(frozen=True)
class PredictorConfig:
    """Predictor shape. ``num_frames`` = T window slots (context + 1); ``num_patches`` = P per frame."""

    size: str = "XL"
    encoder_dim: int = 1024
    num_frames: int = 9
    num_patches: int = 448
    action_dim: int = 132
    mlp_ratio: float = 2.0
    grad_checkpointing: bool = False

    @property
    def depth(self) -> int:
        return PREDICTOR_SIZES[self.size][0]

    @property
    def width(self) -> int:
        return PREDICTOR_SIZES[self.size][1]

    @property
    def heads(self) -> int:
        return PREDICTOR_SIZES[self.size][2]


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """x (B, S, P, d); shift, scale (B, S, d): one modulation per slot, broadcast over its patches."""
    return x * (1 + scale.unsqueeze(-2)) + shift.unsqueeze(-2)


class PackedAttention(nn.Module):
    """Multi-head attention with one packed (3d x d) QKV projection with bias and an output projection."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.packed_proj = nn.Linear(dim, 3 * dim, bias=True)
        self.out_proj = nn.Linear(dim, dim, bias=True)

    def _split(self, t: torch.Tensor) -> torch.Tensor:
        return t.unflatten(-1, (self.heads, -1)).transpose(-3, -2)  # (N, L, d) -> (N, h, L, d/h)

    def forward(self, x: torch.Tensor, ctx: torch.Tensor | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """Self-attention over ``x`` (N, L, d) if ``ctx`` is None, else cross-attention to ``ctx`` (N, M, d).

        ``mask`` (L, M) bool: True where a query may attend to a key.
        """
        if ctx is None:
            q, k, v = self.packed_proj(x).chunk(3, dim=-1)
        else:
            wq, wkv = self.packed_proj.weight.split([x.shape[-1], 2 * x.shape[-1]])
            bq, bkv = self.packed_proj.bias.split([x.shape[-1], 2 * x.shape[-1]])
            q = F.linear(x, wq, bq)
            k, v = F.linear(ctx, wkv, bkv).chunk(2, dim=-1)
        out = F.scaled_dot_product_attention(self._split(q), self._split(k), self._split(v), attn_mask=mask)
        return self.out_proj(out.transpose(-3, -2).flatten(-2))


class CDiTBlock(nn.Module):
    """Self-attention within a frame, cross-attention to earlier clean frames, MLP; AdaLN-Zero modulated."""

    def __init__(self, dim: int, heads: int, action_dim: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = PackedAttention(dim, heads)
        self.norm_cond = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.cross_attn = PackedAttention(dim, heads)
        self.norm3 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(action_dim, 11 * dim, bias=True))

    def forward(self, x: torch.Tensor, ctx: torch.Tensor, c_q: torch.Tensor, c_ctx: torch.Tensor,
                mask: torch.Tensor | None) -> torch.Tensor:
        """x (B, S, P, d) query slots; ctx (B, K, P, d) clean context; c_q (B, S, A); c_ctx (B, K, A)."""
        b, s, p, d = x.shape
        w = self.adaLN_modulation[1]
        mod_q = self.adaLN_modulation(c_q).chunk(11, dim=-1)
        shift_msa, scale_msa, gate_msa = mod_q[0:3]
        shift_ca, scale_ca, gate_ca = mod_q[5:8]
        shift_mlp, scale_mlp, gate_mlp = mod_q[8:11]
        # context-norm shift/scale (vectors 3 and 4) from each context frame's own c_j
        mod_ctx = F.linear(F.silu(c_ctx), w.weight[3 * d : 5 * d], w.bias[3 * d : 5 * d])
        shift_ctx, scale_ctx = mod_ctx.chunk(2, dim=-1)

        h = modulate(self.norm1(x), shift_msa, scale_msa).reshape(b * s, p, d)
        x = x + gate_msa.unsqueeze(-2) * self.attn(h).reshape(b, s, p, d)

        kv = modulate(self.norm_cond(ctx), shift_ctx, scale_ctx).flatten(1, 2)
        h = modulate(self.norm2(x), shift_ca, scale_ca).flatten(1, 2)
        x = x + gate_ca.unsqueeze(-2) * self.cross_attn(h, kv, mask).reshape(b, s, p, d)

        h = modulate(self.norm3(x), shift_mlp, scale_mlp)
        return x + gate_mlp.unsqueeze(-2) * self.mlp(h)


class FinalLayer(nn.Module):
    """adaLN (shift, scale) on a non-affine LayerNorm, then Linear(d -> d); zero-initialised."""

    def __init__(self, dim: int, action_dim: int):
        super().__init__()
        self.norm_final = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(dim, dim, bias=True)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(action_dim, 2 * dim, bias=True))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=-1)
        return self.linear(modulate(self.norm_final(x), shift, scale))


class CDiTPredictor(nn.Module):
    """The DexWM CDiT predictor over frozen-encoder latents (see the module docstring)."""

    def __init__(self, cfg: PredictorConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.width
        if d != cfg.encoder_dim:
            self.input_proj = nn.Linear(cfg.encoder_dim, d)
            self.output_proj = nn.Linear(d, cfg.encoder_dim)
        self.pos_embed = nn.Parameter(torch.zeros(cfg.num_frames, cfg.num_patches, d))
        self.blocks = nn.ModuleList(
            CDiTBlock(d, cfg.heads, cfg.action_dim, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.final_layer = FinalLayer(d, cfg.action_dim)
        self.initialize_weights()

    def initialize_weights(self) -> None:
        nn.init.normal_(self.pos_embed, std=0.02)
        zero = [blk.adaLN_modulation[-1] for blk in self.blocks]
        zero += [self.final_layer.adaLN_modulation[-1], self.final_layer.linear]
        for layer in zero:
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        if hasattr(self, "output_proj"):
            nn.init.zeros_(self.output_proj.bias)

    def _embed(self, latents: torch.Tensor) -> torch.Tensor:
        """(B, K, P, D_enc) clean latents of frames 0..K-1 -> (B, K, P, d) with position embeddings 0..K-1."""
        x = self.input_proj(latents) if hasattr(self, "input_proj") else latents
        return x + self.pos_embed[: latents.shape[1]].to(x.dtype)

    def _run(self, query: torch.Tensor, ctx: torch.Tensor, c_q: torch.Tensor, c_ctx: torch.Tensor,
             first_slot: int) -> torch.Tensor:
        """Run the blocks for query slots first_slot, first_slot + 1, ... (slot i sees frames 0..i-1)."""
        s, k, p = query.shape[1], ctx.shape[1], ctx.shape[2]
        mask = None
        if first_slot < k:  # some slot must not see every context frame: block-causal mask (S*P, K*P)
            slots = torch.arange(first_slot, first_slot + s, device=ctx.device)
            allowed = torch.arange(k, device=ctx.device)[None, :] < slots[:, None]
            mask = allowed.repeat_interleave(p, 0).repeat_interleave(p, 1)
        x = query
        for block in self.blocks:
            if self.cfg.grad_checkpointing and self.training and torch.is_grad_enabled():
                x = torch.utils.checkpoint.checkpoint(block, x, ctx, c_q, c_ctx, mask, use_reentrant=False)
            else:
                x = block(x, ctx, c_q, c_ctx, mask)
        x = self.final_layer(x, c_q)
        return self.output_proj(x) if hasattr(self, "output_proj") else x

    def forward(self, latents: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Teacher-forced prediction of every target slot.

        latents (B, T, P, D_enc) clean encodings of the window; actions (B, T-1, A) raw actions a_{i->i+1}.
        Returns (B, T-1, P, D_enc): entry i-1 is the prediction of frame i from frames 0..i-1.
        """
        t = latents.shape[1]
        if actions.shape[1] != t - 1:
            raise ValueError(f"expected {t - 1} actions for {t} frames, got {actions.shape[1]}")
        ctx = self._embed(latents[:, :-1])  # frames 0..T-2; frame T-1 is never attended to
        c_ctx = torch.cat([torch.zeros_like(actions[:, :1]), actions[:, :-1]], dim=1)
        return self._run(ctx, ctx, actions, c_ctx, first_slot=1)

    def predict_next(self, context: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Prediction of frame K from context frames 0..K-1 (B, K, P, D_enc) and actions (B, K, A).

        actions[:, j] leads from frame j to frame j+1 (the last one leads to the predicted frame). Only the
        last slot is computed; equals ``forward``'s slot K given the same context. Returns (B, P, D_enc).
        """
        k = context.shape[1]
        if k > self.cfg.num_frames - 1:
            raise ValueError(f"at most {self.cfg.num_frames - 1} context frames, got {k}")
        ctx = self._embed(context)
        c_ctx = torch.cat([torch.zeros_like(actions[:, :1]), actions[:, :-1]], dim=1)
        return self._run(ctx[:, -1:], ctx, actions[:, -1:], c_ctx, first_slot=k)[:, 0]

    def rollout(self, first: torch.Tensor, actions: torch.Tensor, pad: bool = True) -> torch.Tensor:
        """Open-loop autoregressive rollout from the true first frame's latents ``first`` (B, P, D_enc).

        actions (B, N, A): a_{n->n+1}. Keeps the T-1 latest frames as context; with ``pad`` (released
        behaviour) the context starts as T-1 copies of the first frame joined by zero actions. Differentiable
        (used by multistep fine-tuning). Returns (B, N, P, D_enc) predictions of frames 1..N.
        """
        k = self.cfg.num_frames - 1
        frames = [first] * (k if pad else 1)
        acts = [torch.zeros_like(actions[:, 0])] * (len(frames) - 1)
        preds = []
        for n in range(actions.shape[1]):
            acts.append(actions[:, n])
            z = self.predict_next(torch.stack(frames[-k:], 1), torch.stack(acts[-k:], 1))
            frames.append(z)
            preds.append(z)
        return torch.stack(preds, 1)
