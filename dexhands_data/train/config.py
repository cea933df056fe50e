"""The reference trainer's configuration: everything a run depends on (dumped to RUN_DIR/config.json)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


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
