"""TensorBoard event files of a training run, beside ``metrics.jsonl`` in the run folder.

Each logged record (one ``metrics.jsonl`` line) becomes one scalar per :data:`SCALAR_TAGS` entry at its
step. ``tensorboard --logdir RUN_DIR`` (or a folder of runs) shows the curves. A resumed run purges the
events after its checkpoint's step, as it truncates ``metrics.jsonl``, so the curves do not double back.
"""

from __future__ import annotations

from pathlib import Path

#: metrics.jsonl key -> TensorBoard tag.
SCALAR_TAGS: dict[str, str] = {
    "loss": "loss/total",
    "loss_state": "loss/state",
    "loss_hc": "loss/hc",
    "lr": "train/lr",
    "grad_norm": "train/grad_norm",
    "steps_per_s": "speed/steps_per_s",
    "samples_per_s": "speed/samples_per_s",
    "max_memory_gb": "memory/max_allocated_gb",
}


class EventLog:
    """Writes TensorBoard scalars into ``run_dir`` (rank 0 only); ``resume_step`` > 0 discards the
    events of steps after it left by the interrupted run."""

    def __init__(self, run_dir: str | Path, resume_step: int = 0):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(run_dir), purge_step=resume_step + 1 if resume_step else None)

    def log(self, record: dict[str, float]) -> None:
        step = int(record["step"])
        for key, tag in SCALAR_TAGS.items():
            if key in record:
                self.writer.add_scalar(tag, float(record[key]), step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
