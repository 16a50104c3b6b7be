"""A 27-point grid in one `dlx train -m` process against 27 separate `dlx train` processes.

    python benchmarks/sweep.py                 # 3x3x3 grid: optimizer.lr x dataset.batch_size x trainer.seed

Both sides run the venv's `dlx` as a user would (subprocess, tracking on into a fresh SQLite store
in a temp dir, model=mlp dataset=digits trainer.epochs=1 tracking.log_model=false), one after
the other; the separate processes run sequentially. Wall time of the whole thing is measured
from outside. Also times `dlx --help` (process start-up, median of --help-runs).
Targets (reported, not asserted): the grid in one process <= 0.4x the wall time of 27
processes; `dlx --help` < 0.5 s.
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

BASE = ["model=mlp", "dataset=digits", "trainer.epochs=1", "trainer.progress=false",
        "tracking.log_model=false"]
GRID = {"optimizer.lr": ["0.001", "0.01", "0.1"], "dataset.batch_size": ["32", "64", "128"],
        "trainer.seed": ["1", "2", "3"]}


def dlx(args: list[str], cwd: Path) -> float:
    """Run `dlx ARGS` in cwd; its wall time in seconds (a failure stops the benchmark)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "HYDRA_FULL_ERROR")}
    start = time.perf_counter()
    proc = subprocess.run([str(common.BIN / "dlx"), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, check=False)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"dlx {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--help-runs", type=int, default=10, help="times to run `dlx --help`")
    p.add_argument("--no-record", action="store_true", help="print only; leave RESULTS.md alone")
    args = p.parse_args()

    points = [[f"{k}={v}" for k, v in zip(GRID, values)] for values in itertools.product(*GRID.values())]
    with tempfile.TemporaryDirectory(prefix="dlx-bench-") as tmp:
        one_dir, many_dir = Path(tmp, "multirun"), Path(tmp, "separate")
        one_dir.mkdir()
        many_dir.mkdir()
        helps = [dlx(["--help"], Path(tmp)) for _ in range(args.help_runs)]
        print(f"dlx --help: median {common.median(helps):.3f} s over {len(helps)} runs", flush=True)

        grid = [f"{k}={','.join(v)}" for k, v in GRID.items()]
        one = dlx(["train", "-m", *BASE, *grid], one_dir)
        print(f"1 process, {len(points)} jobs: {one:.1f} s", flush=True)
        many = sum(dlx(["train", *BASE, *point], many_dir) for point in points)
        print(f"{len(points)} processes: {many:.1f} s", flush=True)

    rows = [[f"`dlx train -m` ({len(points)} jobs, 1 process)", f"{one:.1f}", f"{one / len(points):.2f}"],
            [f"{len(points)} x `dlx train` (sequential)", f"{many:.1f}", f"{many / len(points):.2f}"]]
    text = common.table(["what", "wall s", "s per point"], rows)
    text += (f"\n\nOne process / separate processes: **x{one / many:.2f}** (target <= x0.40).\n\n"
             f"`dlx --help`: median **{common.median(helps):.3f} s** over {len(helps)} runs, whole "
             f"process (min {min(helps):.3f}, max {max(helps):.3f}; target < 0.5 s).")
    print(text)
    if not args.no_record:
        axes = " x ".join(f"{k}={{{', '.join(v)}}}" for k, v in GRID.items())
        note = (f"Grid: {axes} with `{' '.join(BASE)}`, tracking on (one SQLite store per side). "
                f"Command: `{' '.join(['python', 'benchmarks/sweep.py', *sys.argv[1:]])}`.")
        common.record("Sweep: one process vs separate processes", f"{common.header()}\n\n{note}\n\n{text}")


if __name__ == "__main__":
    main()
