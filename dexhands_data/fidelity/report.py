"""The ``dexdata score`` report: rich tables (hands, motion, camera; one row per episode + ALL) and JSON."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ScoreReport:
    """Figures (:func:`~.score.figures` dicts) of each scored episode and of all pooled, the episodes
    that failed with their reasons, and the recording keys found in one dataset only."""

    est: str
    gt: str
    strides: tuple[int, ...]
    episodes: list[dict]
    overall: dict | None
    failed: dict[str, str] = field(default_factory=dict)
    only_est: list[str] = field(default_factory=list)
    only_gt: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"est": self.est, "gt": self.gt, "strides": list(self.strides), "overall": self.overall,
                "episodes": self.episodes, "failed": self.failed, "only_est": self.only_est,
                "only_gt": self.only_gt}


def fmt(x, digits: int = 1, pct: bool = False) -> str:
    if x is None:
        return "-"
    return f"{100 * x:.{digits}f}" if pct else f"{x:.{digits}f}"


def _rows(report: ScoreReport) -> list[dict]:
    pooled = report.overall is not None and len(report.episodes) > 1
    return report.episodes + ([report.overall] if pooled else [])


def hands_table(report: ScoreReport):
    from rich.table import Table

    t = Table(title=f"hands: {report.est} vs ground truth {report.gt}")
    cols = ("recording", "frames", "GT in view", "detected %", "side ok %", "2D px", "MPJPE mm", "root mm",
            "PA-MPJPE mm", "wrist depth err %", "depth bias %", "est 3D->2D px")
    for c in cols:
        t.add_column(c, justify="left" if c == "recording" else "right")
    for f in _rows(report):
        h = f["hands"]
        t.add_row(f["name"], str(f["frames"]), str(h["gt_hands_in_view"]), fmt(h["detection"], 1, True),
                  fmt(h["side_correct"], 1, True), fmt(h["kp2d_px"]), fmt(h["mpjpe_cam_mm"]),
                  fmt(h["mpjpe_root_mm"]), fmt(h["pa_mpjpe_mm"]), fmt(h["wrist_depth_error_pct"]),
                  fmt(h["wrist_depth_bias_pct"], 1), fmt(h["est_reprojection_px"]))
    return t


def motion_table(report: ScoreReport):
    from rich.table import Table

    t = Table(title="hand keypoint motion over a stride (in the pair's first camera; medians)")
    for c in ("recording", "stride", "motion", "samples", "error mm", "true motion mm", "scale",
              "scale-aligned error mm"):
        t.add_column(c, justify="left" if c in ("recording", "motion") else "right")
    for f in _rows(report):
        for stride, variants in f["motion"].items():
            for variant, m in variants.items():
                t.add_row(f["name"], stride, variant.replace("_", " "), str(m["samples"]), fmt(m["error_mm"]),
                          fmt(m["true_mm"]), fmt(m["scale"], 2), fmt(m["scale_aligned_error_mm"]))
    return t


def camera_table(report: ScoreReport):
    from rich.table import Table

    t = Table(title="camera motion (medians over frame pairs)")
    for c in ("recording", "stride", "pairs", "rotation err deg", "true rotation deg", "pairs moved >1 cm",
              "direction err deg", "scale err %", "rotation err at end deg"):
        t.add_column(c, justify="left" if c == "recording" else "right")
    for f in _rows(report):
        cam = f["camera"]
        if cam is None:
            t.add_row(f["name"], "-", "no camera poses in the estimate", *["-"] * 6)
            continue
        for stride, c in cam["strides"].items():
            t.add_row(f["name"], stride, str(c["pairs"]), fmt(c["rotation_error_deg"], 2),
                      fmt(c["true_rotation_deg"], 2), str(c["translated_pairs"]),
                      fmt(c["direction_error_deg"]),
                      fmt(c["scale_error_pct"]), fmt(cam["end_rotation_error_deg"], 2))
    return t


def wide_console():
    """A rich console; piped or logged output gets 200 columns instead of squeezing tables to 80."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=200)


def print_report(report: ScoreReport, console=None) -> None:
    console = console or wide_console()
    if report.overall is not None:
        for table in (hands_table(report), motion_table(report), camera_table(report)):
            console.print(table)
    for name, error in sorted(report.failed.items()):
        console.print(f"[red]failed[/red] {name}: {error}", highlight=False)
    for note in sorted({n for f in report.episodes for n in f["notes"]}):
        console.print(f"note: {note}", highlight=False)
    if report.only_est or report.only_gt:
        console.print(f"recordings only in {report.est}: {len(report.only_est)}; only in {report.gt}: "
                      f"{len(report.only_gt)}", highlight=False)
