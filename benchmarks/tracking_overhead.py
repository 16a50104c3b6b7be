"""Tracking overhead: the same run with tracking.enabled=false, tracked, and tracked with the model.

    python benchmarks/tracking_overhead.py              # model=cnn dataset=digits, 10 epochs, 5 repeats

Two ways, both reported:
- warm, in one process: `dlx.run.train(cfg, runtime)` on a config composed as `dlx train` composes it, and
  the tracking writer drained after it (until the run is in the store), timed; the modes take
  turns after one untimed warm-up each. What a run inside a sweep pays.
- whole process: `dlx train ...` started from the shell, in a directory whose ./mlflow.db exists
  (created by the warm-up), timed from outside. What a user's `dlx train` pays: the imports and
  the tracking writer's start included.
"tracked" logs params, per-epoch metrics, test metrics, report and plots; "+ model" adds the
model (its weights and model.json); "+ system metrics" adds MLflow's system metrics, sampled by
the tracking writer (the defaults). Overhead = (mode - untracked) / mode. Targets (reported, not
asserted): tracking <= 3% of wall time; system metrics <= 1% (the last two rows' difference).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

MODES = {
    "untracked": ["tracking.enabled=false"],
    "tracked": ["tracking.log_model=false", "tracking.system_metrics=false"],
    "tracked + model": ["tracking.log_model=true", "tracking.system_metrics=false"],
    "tracked + model + system metrics (default)": [],
}


def warm(base: list[str], repeats: int, tmp: Path) -> dict[str, list[float]]:
    from dlx.run import train
    from dlx.tracking import client

    times: dict[str, list[float]] = {m: [] for m in MODES}
    n = 0
    for repeat in range(repeats + 1):  # repeat 0: the untimed warm-up
        for mode, extra in MODES.items():
            n += 1
            cfg, runtime = common.compose([*base, *extra], tmp / "runs" / str(n))
            start = time.perf_counter()
            train(cfg, runtime)
            if client.running():
                client.writer().drain()  # the run is in the store
            seconds = time.perf_counter() - start
            if repeat:
                times[mode].append(seconds)
            print(f"warm, {'warm-up' if not repeat else f'repeat {repeat}'}, {mode}: "
                  f"{seconds:.2f} s", flush=True)
    client.shutdown()
    return times


def whole(base: list[str], repeats: int, tmp: Path) -> dict[str, list[float]]:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "HYDRA_FULL_ERROR")}
    cwd = tmp / "whole"
    cwd.mkdir()
    times: dict[str, list[float]] = {m: [] for m in MODES}
    for repeat in range(repeats + 1):
        for mode, extra in MODES.items():
            argv = [str(common.BIN / "dlx"), "train", *base, *extra, "trainer.progress=false"]
            start = time.perf_counter()
            proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
            seconds = time.perf_counter() - start
            if proc.returncode:
                sys.exit(f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stderr}")
            if repeat:
                times[mode].append(seconds)
            print(f"whole process, {'warm-up' if not repeat else f'repeat {repeat}'}, {mode}: "
                  f"{seconds:.2f} s", flush=True)
    return times


def rows(label: str, times: dict[str, list[float]]) -> list[list]:
    off = common.median(times["untracked"])
    out = []
    for mode, values in times.items():
        t = common.median(values)
        out.append([label, mode, f"{t:.2f}", f"{min(values):.2f}-{max(values):.2f}",
                    "" if mode == "untracked" else f"{t - off:+.2f} s ({(t - off) / t:+.1%})"])
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=10, help="trainer.epochs of each run")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per mode")
    p.add_argument("--no-record", action="store_true", help="print only; leave RESULTS.md alone")
    p.add_argument("overrides", nargs="*", help="more overrides (default: model=cnn dataset=digits)")
    args = p.parse_args()

    base = ["model=cnn", "dataset=digits", f"trainer.epochs={args.epochs}", "trainer.device=cpu",
            *args.overrides]
    with tempfile.TemporaryDirectory(prefix="dlx-bench-") as tmp:
        store = [f"tracking.uri=sqlite:///{Path(tmp) / 'mlflow.db'}"]
        in_process = warm([*base, *store], args.repeats, Path(tmp))
        processes = whole(base, args.repeats, Path(tmp))
    text = common.table(["how", "mode", "median wall s", "wall range s",
                         "overhead (of tracked wall)"],
                        rows("warm, one process", in_process) + rows("whole process", processes))
    print(text)
    if not args.no_record:
        note = (f"`{' '.join(base)}`, {args.repeats} timed runs per mode after one warm-up each; "
                "warm: `dlx.run.train(cfg, runtime)` plus draining the tracking writer, in one process; "
                "whole process: `dlx train` from the shell with an existing ./mlflow.db. Command: "
                f"`{' '.join(['python', 'benchmarks/tracking_overhead.py', *sys.argv[1:]])}`. "
                "Targets: tracked - untracked <= 3% of the tracked run's wall time; system metrics "
                "(the last row against the one before) <= 1%.")
        common.record("Tracking overhead", f"{common.header()}\n\n{note}\n\n{text}")


if __name__ == "__main__":
    main()
