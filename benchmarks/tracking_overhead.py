"""MLflow tracking overhead: the same `dlx.run.train(cfg)` with tracking.enabled=true and false.

    python benchmarks/tracking_overhead.py               # model=cnn dataset=digits, 10 epochs, 5 repeats

In one process, on a config composed as `dlx train` composes it. Each mode runs once untimed
(imports, the SQLite store's creation, the dataset read), then --repeats times, the modes taking
turns; the figure is the median wall time of the train() call (and its CPU time, steadier on a
busy machine). "tracked" logs params, per-epoch metrics, test metrics and the artifacts
(tracking.log_model=false); "tracked + model" adds mlflow.pytorch.log_model (pt2), reported
apart. Overhead = (tracked - untracked) / tracked.
Target (reported, not asserted): overhead <= 3% of wall time.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

MODES = {
    "untracked": ["tracking.enabled=false"],
    "tracked": ["tracking.enabled=true", "tracking.log_model=false"],
    "tracked + model": ["tracking.enabled=true", "tracking.log_model=true"],
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=10, help="trainer.epochs of each run")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per mode")
    p.add_argument("--no-model", action="store_true", help="skip the 'tracked + model' mode")
    p.add_argument("--no-record", action="store_true", help="print only; leave RESULTS.md alone")
    p.add_argument("overrides", nargs="*", help="more overrides, e.g. model=mlp (default: model=cnn "
                   "dataset=digits)")
    args = p.parse_args()

    from dlx.run import train

    modes = {k: v for k, v in MODES.items() if not (args.no_model and k == "tracked + model")}
    times: dict[str, list[float]] = {m: [] for m in modes}  # wall seconds
    cpu: dict[str, list[float]] = {m: [] for m in modes}  # this process's CPU seconds, all threads
    with tempfile.TemporaryDirectory(prefix="dlx-bench-") as tmp:
        base = ["model=cnn", "dataset=digits", f"trainer.epochs={args.epochs}", "trainer.device=cpu",
                f"tracking.uri=sqlite:///{Path(tmp) / 'mlflow.db'}", *args.overrides]
        n = 0
        for repeat in range(args.repeats + 1):  # repeat 0: the untimed warm-up
            for mode, extra in modes.items():
                n += 1
                cfg = common.compose([*base, *extra], Path(tmp, "runs", str(n)))
                start, start_cpu = time.perf_counter(), time.process_time()
                train(cfg)
                seconds = time.perf_counter() - start
                if repeat:
                    times[mode].append(seconds)
                    cpu[mode].append(time.process_time() - start_cpu)
                print(f"{'warm-up' if not repeat else f'repeat {repeat}'} {mode}: {seconds:.2f} s",
                      flush=True)

    off, off_cpu = common.median(times["untracked"]), common.median(cpu["untracked"])
    rows = []
    for mode, values in times.items():
        t, c = common.median(values), common.median(cpu[mode])
        rows.append([mode, f"{t:.2f}", f"{min(values):.2f}-{max(values):.2f}",
                     "" if mode == "untracked" else f"{t - off:+.2f} s ({(t - off) / t:+.1%})",
                     f"{c:.2f}", "" if mode == "untracked" else f"{(c - off_cpu) / c:+.1%}"])
    text = common.table(["mode", "median wall s", "wall range s", "overhead (of tracked wall)",
                         "median CPU s", "CPU overhead"], rows)
    print(text)
    if not args.no_record:
        note = (f"`{' '.join(base[:4] + args.overrides)}`, {args.repeats} timed runs "
                f"per mode after one warm-up each. Command: "
                f"`{' '.join(['python', 'benchmarks/tracking_overhead.py', *sys.argv[1:]])}`. "
                "Target: tracked - untracked <= 3% of the tracked run's wall time.")
        common.record("Tracking overhead", f"{common.header()}\n\n{note}\n\n{text}")


if __name__ == "__main__":
    main()
