"""Sweeps: a 27-point grid in one `dlx train -m` process against 27 separate `dlx train`
processes, and the fixed cost per point inside the source's grid.

    python benchmarks/sweep.py                 # 3x3x3 grid: optimizer.lr x dataset.batch_size x trainer.seed
    python benchmarks/sweep.py --overhead      # `dlx train -m sweep=grid`: per-point overhead
    python benchmarks/sweep.py --engines       # shared prefixes, halving, Optuna pruning

Both sides run the venv's `dlx` as a user would (subprocess, tracking on into a fresh SQLite store
in a temp dir, model=mlp dataset=digits trainer.epochs=1), one after
the other; the separate processes run sequentially. Wall time of the whole thing is measured
from outside. Also times `dlx --help` (process start-up, median of --help-runs).
Targets (reported, not asserted): the grid in one process <= 0.4x the wall time of 27
processes; `dlx --help` < 0.5 s.

--overhead runs the source's grid (`dlx train -m sweep=grid`: trainer.epochs {10,20,30} x
dataset.batch_size {32,64,128} x optimizer.lr {0.001,0.01,0.1}, the default CNN on digits,
tracked, models logged) and reads the store: a point's overhead is its run's wall time (start to
end, as the training process timed it) minus the time its epochs took (tag dlx.fit_seconds).
Target: median per-point overhead <= 0.3 s.

--engines runs, side by side: the source's grid with epoch prefixes shared (the default) and with
hydra.launcher.share_prefixes=false (every point trained on its own, as separate `dlx train` runs
train it) and compares every point's test metrics between the two; `sweep=halving` on the same
grid; `sweep=optuna` (20 trials, TPE seed 42, 10 epochs) with the median pruner and without.
Targets: shared <= 0.55x the unshared grid's wall, with bit-identical test metrics; halving
<= 0.3x the unshared grid, its best point's validation accuracy within 0.5 percentage points
of the grid's best; Optuna with pruning <= 0.6x without.
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

BASE = ["model=mlp", "dataset=digits", "trainer.epochs=1", "trainer.progress=false"]
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


def overhead(record: bool) -> None:
    """The source's 27-point grid in one process: per-point overhead from the runs it recorded,
    each point trained on its own (shared epoch prefixes off: a point that finishes inside a
    longer one's training has no wall of its own), and the sweep's wall with sharing on."""
    from dlx.tracking import queries

    alone = ["hydra.launcher.share_prefixes=false", "hydra.launcher.fuse=false"]
    walls = {}
    for how, extra in (("each point alone", alone), ("shared epoch prefixes (default)", [])):
        with tempfile.TemporaryDirectory(prefix="dlx-bench-") as tmp:
            walls[how] = dlx(["train", "-m", "sweep=grid", "trainer.progress=false", *extra],
                             Path(tmp))
            if extra:
                uri = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
                runs = queries.list_runs(uri, "dlx", limit=1000)
    children = [r for r in runs if r["tags"].get("dlx.kind") != "sweep"]
    fit = [float(r["tags"]["dlx.fit_seconds"]) for r in children]
    spans = [(r["end_time"] - r["start_time"]) / 1000 for r in children]
    per_point = sorted(s - f for s, f in zip(spans, fit))
    med = common.median(per_point)
    alone_wall = walls["each point alone"]
    rows = [["points", len(children), ""],
            ["sum of the points' epochs s (each point alone)", f"{sum(fit):.1f}", ""],
            ["median per-point overhead s (run wall - its epochs)", f"{med:.3f}",
             f"{'met' if med <= 0.3 else 'not met'}: <= 0.3"],
            ["per-point overhead range s", f"{per_point[0]:.3f}-{per_point[-1]:.3f}", ""],
            ["sweep wall s, each point alone (whole process)", f"{alone_wall:.1f}", ""],
            ["(that wall - sum of epochs) / points s", f"{(alone_wall - sum(fit)) / len(children):.3f}",
             "includes Hydra's per-job work, start-up and the sweep's report"],
            ["sweep wall s, shared epoch prefixes (default)",
             f"{walls['shared epoch prefixes (default)']:.1f}",
             "the 10- and 20-epoch points finish inside the 30-epoch point's training"]]
    text = common.table(["what", "value", "note"], rows)
    print(text)
    if record:
        note = ("The source's grid, `dlx train -m sweep=grid trainer.progress=false` (trainer.epochs "
                "{10,20,30} x dataset.batch_size {32,64,128} x optimizer.lr {0.001,0.01,0.1}, the "
                "default CNN on digits, tracked, models logged) in a fresh directory, once with "
                "`hydra.launcher.share_prefixes=false hydra.launcher.fuse=false` (per-point figures) "
                "and once as is. Command: `python benchmarks/sweep.py --overhead`.")
        common.record("Sweep: per-point overhead in the source's grid",
                      f"{common.header()}\n\n{note}\n\n{text}")


def _sweep(args: list[str], cwd: Path) -> tuple[float, list[dict]]:
    """`dlx train -m ARGS` in a fresh store: (wall s, its children as dicts)."""
    from dlx.tracking import queries

    cwd.mkdir(parents=True)
    wall = dlx(["train", "-m", *args, "trainer.progress=false"], cwd)
    runs = queries.list_runs(f"sqlite:///{cwd / 'mlflow.db'}", "dlx", limit=1000)
    return wall, [r for r in runs if r["tags"].get("dlx.kind") != "sweep"]


def engines(record: bool) -> None:
    from dlx.tracking.ranking import best

    def point(r):
        return tuple(r["params"][k] for k in ("trainer.epochs", "dataset.batch_size", "optimizer.lr"))

    with tempfile.TemporaryDirectory(prefix="dlx-bench-") as tmp:
        t = Path(tmp)
        shared, a = _sweep(["sweep=grid"], t / "shared")
        print(f"grid, shared prefixes: {shared:.1f} s", flush=True)
        alone, b = _sweep(["sweep=grid", "hydra.launcher.share_prefixes=false"], t / "alone")
        print(f"grid, every point alone: {alone:.1f} s", flush=True)
        halving, h = _sweep(["sweep=halving"], t / "halving")
        print(f"halving: {halving:.1f} s", flush=True)
        opt = ["sweep=optuna", "hydra.sweeper.n_trials=20", "trainer.epochs=10"]
        pruned, op = _sweep(opt, t / "pruned")
        print(f"optuna with pruning: {pruned:.1f} s", flush=True)
        full, _ = _sweep([*opt, "hydra.sweeper.pruner=null"], t / "unpruned")
        print(f"optuna without pruning: {full:.1f} s", flush=True)

    alone_by = {point(r): r for r in b}
    tests = [k for k in b[0]["metrics"] if k.startswith("test_")]
    same = sum(all(r["metrics"][k] == alone_by[point(r)]["metrics"][k] for k in tests) for r in a)
    grid_best = max(r["metrics"]["val_accuracy"] for r in b)
    halving_best = best(h, "val_loss", "min")["metrics"]["val_accuracy"]
    n_pruned = sum(r["tags"].get("dlx.pruned") == "true" for r in op)
    rows = [["grid (27 points), shared prefixes", f"{shared:.1f}", f"x{shared / alone:.2f} (<= 0.55)",
             f"{same}/{len(a)} points' test metrics bit-identical to the unshared grid's"],
            ["grid, every point alone", f"{alone:.1f}", "x1.00", ""],
            ["sweep=halving (9 candidates, 10 -> 30 epochs)", f"{halving:.1f}",
             f"x{halving / alone:.2f} (<= 0.30)",
             f"best val_accuracy {halving_best:.4f} vs the grid's best {grid_best:.4f} "
             f"({100 * (grid_best - halving_best):+.2f} pp; <= 0.5)"],
            ["sweep=optuna, 20 trials, median pruner", f"{pruned:.1f}", f"x{pruned / full:.2f} (<= 0.60)",
             f"{n_pruned} of {len(op)} trials pruned"],
            ["sweep=optuna, 20 trials, no pruner", f"{full:.1f}", "x1.00", ""]]
    text = common.table(["sweep", "wall s", "ratio (target)", "check"], rows)
    print(text)
    if record:
        note = ("The source's grid (`sweep=grid`: trainer.epochs {10,20,30} x dataset.batch_size "
                "{32,64,128} x optimizer.lr {0.001,0.01,0.1}, the default CNN on digits) in one "
                "`dlx train -m` process each, tracked, fresh store, one after the other; the optuna "
                "rows search optimizer.lr (log) x dataset.batch_size at trainer.epochs=10. Command: "
                "`python benchmarks/sweep.py --engines`.")
        common.record("Sweeps that cost less than their points", f"{common.header()}\n\n{note}\n\n{text}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--help-runs", type=int, default=10, help="times to run `dlx --help`")
    p.add_argument("--overhead", action="store_true", help="per-point overhead of sweep=grid")
    p.add_argument("--engines", action="store_true", help="shared prefixes, halving, pruning")
    p.add_argument("--no-record", action="store_true", help="print only; leave RESULTS.md alone")
    args = p.parse_args()
    if args.overhead:
        overhead(not args.no_record)
        return
    if args.engines:
        engines(not args.no_record)
        return

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
