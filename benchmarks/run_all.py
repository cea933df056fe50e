"""Run every benchmark of this folder one after another (``make bench``); each prints its own table.

Timings are only comparable on a quiet machine: run nothing else meanwhile, and paste the tables
into docs/benchmarks.md together with the machine they ran on.
"""

from __future__ import annotations

import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
BENCHMARKS = [
    ["bench_hands.py", "--nc"],
    ["bench_vo.py", "--nc"],
    ["bench_extract.py"],
    ["bench_gt_sources.py"],
    ["bench_droid.py"],
    ["bench_windows.py"],
    ["bench_train.py"],
    ["bench_hamer.py"],
    ["bench_fidelity.py", "--no-doc"],  # accuracy vs ground truth; write docs/fidelity.md with --label
]


def main() -> int:
    print(f"# {platform.node()}: {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    failed = 0
    for script, *args in BENCHMARKS:
        print(f"\n## {script} {' '.join(args)}", flush=True)
        t0 = time.perf_counter()
        code = subprocess.call([sys.executable, str(HERE / script), *args])
        print(f"(exit {code}, {time.perf_counter() - t0:.0f} s)", flush=True)
        failed += code != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
