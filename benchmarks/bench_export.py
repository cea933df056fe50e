"""Speed of ``dexdata export``: episodes/s, frames/s and MB/s written, both formats, with and without video.

Builds a dataset of ``--episodes`` DROID episodes (the real crowndata episode, 166 steps, written in the
raw layout under distinct folders, converted with ``--pseudo-hand dexwm-official`` and 224-px frames),
then times in this process:

* ``dexwm-egodex`` (raw DROID layout for these episodes) and ``lerobot``, each ``--no-video`` and with
  video (embedded JPEGs decoded and re-encoded as H.264);
* with ``--nc``: the real EgoDex episodes of ``egodex_real_nc`` (non-commercial) as a human dataset,
  exported to the EgoDex layout from the embedded frames and with ``--videos-from`` (source MP4 copied).

Reports wall time and process CPU time (the per-core figure on a shared machine).

    python benchmarks/bench_export.py --episodes 8 [--nc]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from droid_fixtures import load_episode, write_raw_episode  # noqa: E402

from dexhands_data.cli.main import main as dexdata  # noqa: E402
from dexhands_data.export.run import ExportOptions, run_export  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def build_droid(tmp: Path, episodes: int) -> Path:
    ep = load_episode(SHARED)
    raw = tmp / "droid_raw"
    for i in range(episodes):
        write_raw_episode(raw, ep if i % 2 == 0 else ep.reversed(),
                          rel=f"RAIL/success/2023-04-17/Mon_Apr_17_14:48:{i:02d}_2023",
                          uuid=f"RAIL+bench{i:04d}")
    ds = tmp / "droid_ds"
    code = dexdata(["convert-droid", "--input", str(raw), "--out", str(ds), "--pseudo-hand", "dexwm-official",
                    "--executor", "local", "--no-progress", "--frame-size", "224"])
    assert code == 0, code
    return ds


def build_egodex(tmp: Path) -> Path:
    ds = tmp / "egodex_ds"
    dexdata(["extract", "--source", "egodex", "--input", str(SHARED / "egodex_real_nc"), "--out", str(ds),
             "--executor", "local", "--no-progress", "--frame-size", "224"])
    return ds


def timed_export(label: str, opts: ExportOptions) -> dict:
    w, c = time.perf_counter(), time.process_time()
    summary = run_export(opts)
    wall, cpu = time.perf_counter() - w, time.process_time() - c
    n = summary.count("exported")
    mb = summary.bytes_written / 1e6
    return {"case": label, "episodes": n, "wall_s": wall, "cpu_s": cpu, "ep_per_s": n / wall,
            "MB": mb, "MB_per_s": mb / wall, "failed": summary.count("failed")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=8)
    ap.add_argument("--nc", action="store_true", help="also the non-commercial EgoDex sample")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-export-") as d:
        tmp = Path(d)
        droid = build_droid(tmp, args.episodes)
        frames = 166 * args.episodes
        for fmt in ("dexwm-egodex", "lerobot"):
            for video in (False, True):
                label = f"DROID x{args.episodes} -> {fmt}, {'video' if video else 'no video'}"
                opts = ExportOptions(str(droid), fmt, str(tmp / f"out-{fmt}-{video}"), video=video)
                r = timed_export(label, opts)
                r["frames_per_s"] = frames / r["wall_s"]
                rows.append(r)
        if args.nc:
            ego = build_egodex(tmp)
            frames = 94 + 171
            cases = (("embedded frames", {}),
                     ("--videos-from (MP4 copied)", {"videos_from": str(SHARED / "egodex_real_nc")}))
            for label, extra in cases:
                opts = ExportOptions(str(ego), "dexwm-egodex", str(tmp / f"ego-{len(rows)}"), **extra)
                r = timed_export(f"EgoDex real x2 -> dexwm-egodex, {label}", opts)
                r["frames_per_s"] = frames / r["wall_s"]
                rows.append(r)
    print("| case | episodes | wall s | CPU s | episodes/s | frames/s | MB written | MB/s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['case']} | {r['episodes']} | {r['wall_s']:.2f} | {r['cpu_s']:.2f} | "
              f"{r['ep_per_s']:.2f} | "
              f"{r['frames_per_s']:.0f} | {r['MB']:.2f} | {r['MB_per_s']:.2f} |")


if __name__ == "__main__":
    main()
