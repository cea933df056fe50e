"""``dexdata train-reference --report RUN``: a run's curves and evaluation figures in one PNG.

Reads ``RUN/metrics.jsonl`` (required), ``RUN/config.json`` (title) and, when ``--eval`` has run,
``RUN/eval/metrics.json`` and ``RUN/eval/heatmaps.png``; writes ``RUN/report.png``:

* row 1: total loss ``L_state + hc_weight * L_HC``, ``L_state`` (latent MSE), ``L_HC`` (heatmap MSE),
  learning rate, against the optimiser step (losses and lr on log axes);
* row 2 (with an evaluation): latent error per open-loop rollout step (``l2_dexwm`` and ``l2``), PCK of
  the visible keypoints per rollout step at each pixel threshold, and the evaluation's heatmap figure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: (metrics.jsonl key, panel title) of the curve panels.
CURVES: tuple[tuple[str, str], ...] = (
    ("loss", "total loss"),
    ("loss_state", "state loss (latent MSE)"),
    ("loss_hc", "HC loss (heatmap MSE)"),
    ("lr", "learning rate"),
)
REPORT_NAME = "report.png"


@dataclass
class RunRecords:
    """What a run folder holds for the report."""

    metrics: list[dict[str, float]]
    config: dict[str, Any]
    evaluation: dict[str, Any] | None
    heatmaps: Path | None


def read_run(run_dir: str | Path) -> RunRecords:
    run = Path(run_dir)
    path = run / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no training metrics (is {run} a train-reference run folder?)")
    metrics = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            metrics.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{n}: not a JSON line ({exc.msg})") from None
    if not metrics:
        raise ValueError(f"{path}: no logged steps yet")
    config_path = run / "config.json"
    config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    eval_path = run / "eval" / "metrics.json"
    evaluation = json.loads(eval_path.read_text()) if eval_path.is_file() else None
    heatmaps = run / "eval" / "heatmaps.png"
    return RunRecords(metrics, config, evaluation, heatmaps if heatmaps.is_file() else None)


def _title(rec: RunRecords, run: Path) -> str:
    c = rec.config
    parts = [str(run)]
    if c:
        parts.append(f"model {c.get('model')}, encoder {c.get('encoder')}, batch {c.get('batch_size')}, "
                     f"{c.get('steps')} steps, hc_weight {c.get('hc_weight')}")
    if rec.evaluation:
        e = rec.evaluation
        parts.append(f"eval: step {e['step']}, {e['samples']} samples, {e['rollout_steps']} rollout steps")
    return "\n".join(parts)


def write_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Draw the run's report (see the module docstring); returns the PNG's path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = Path(run_dir)
    rec = read_run(run)
    target = Path(out) if out else run / REPORT_NAME
    rows = 2 if rec.evaluation or rec.heatmaps else 1
    fig = plt.figure(figsize=(18, 4.2 * rows + 0.8))
    grid = fig.add_gridspec(rows, 4)
    steps = [m["step"] for m in rec.metrics]
    for col, (key, title) in enumerate(CURVES):
        ax = fig.add_subplot(grid[0, col])
        values = [m.get(key, float("nan")) for m in rec.metrics]
        ax.plot(steps, values, marker="." if len(steps) < 50 else None)
        if all(v > 0 for v in values):
            ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    if rec.evaluation:
        per = rec.evaluation["per_step"]
        t = list(range(1, rec.evaluation["rollout_steps"] + 1))
        ax = fig.add_subplot(grid[1, 0])
        for key in ("l2_dexwm", "l2"):
            if key in per:
                ax.plot(t, per[key], marker="o", label=key)
        ax.set_title("latent error per rollout step")
        ax.set_xlabel("open-loop rollout step")
        ax.legend()
        ax.grid(alpha=0.3)
        ax = fig.add_subplot(grid[1, 1])
        pck_keys = sorted((k for k in per if k.startswith("pck_visible@")), key=lambda k: float(k.split("@")[1]))
        for key in pck_keys:
            ax.plot(t, per[key], marker="o", label=f"{key.split('@')[1]} px")
        ax.set_title("PCK of visible keypoints (%)")
        ax.set_xlabel("open-loop rollout step")
        ax.set_ylim(-2, 102)
        ax.legend(title="threshold")
        ax.grid(alpha=0.3)
    if rec.heatmaps:
        ax = fig.add_subplot(grid[1, 2:])
        ax.imshow(plt.imread(rec.heatmaps))
        ax.set_title("last rollout step (eval/heatmaps.png)")
        ax.axis("off")
    fig.suptitle(_title(rec, run), fontsize=10, ha="left", x=0.01)
    fig.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=80)
    plt.close(fig)
    return target
