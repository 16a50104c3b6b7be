"""Whole process, as a user runs it from the shell: the plain PyTorch script against `dlx train`.

    python benchmarks/process_race.py                   # 1 and 20 epochs, 5 timed runs each
    python benchmarks/process_race.py --runs 3 --epochs 1 --no-record

For each epoch count E the three commands below run in turn (plain, dlx existing store, dlx fresh
store, plain, ...), one untimed warm-up round first, then --runs timed rounds:

    python benchmarks/plain_digits.py E                     (the same data, model, optimizer)
    dlx train trainer.epochs=E trainer.progress=false       (the defaults: tracked, model logged)

The plain script and "dlx, fresh store" get a new empty working directory for every run; a fresh
dlx run therefore creates and migrates a new ./mlflow.db (a new user's first run). "dlx, existing
store" reuses one working directory from the warm-up on, so ./mlflow.db is already there (what a
returning user pays). Wall time is time.perf_counter() around subprocess.run, CPU time the
resource.getrusage(RUSAGE_CHILDREN) user+system delta (the child and what it waited for). The
figures are medians; dlx / plain is the median of the per-round ratios. The venv's `dlx` and this
interpreter are used; MLFLOW_TRACKING_URI and HYDRA_FULL_ERROR are removed from the environment.
Targets (reported, not asserted): 1 epoch, dlx <= x1.15 the plain script's wall time;
20 epochs, dlx <= x1.0.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

PLAIN = Path(__file__).resolve().parent / "plain_digits.py"
TARGETS = {1: 1.15, 20: 1.0}  # epochs -> max dlx / plain wall time
VARIANTS = ["plain script", "dlx, existing store", "dlx, fresh store"]


def commands(epochs: int) -> dict[str, list[str]]:
    """The argv of each variant (the two dlx variants differ only in their working directory)."""
    dlx = [str(common.BIN / "dlx"), "train", f"trainer.epochs={epochs}", "trainer.progress=false"]
    return {"plain script": [sys.executable, str(PLAIN), str(epochs)],
            "dlx, existing store": dlx, "dlx, fresh store": dlx}


def shown(epochs: int) -> dict[str, str]:
    """The commands as a user types them, for the report."""
    return {"plain script": f"python benchmarks/plain_digits.py {epochs}",
            "dlx": f"dlx train trainer.epochs={epochs} trainer.progress=false"}


def run(argv: list[str], cwd: Path) -> tuple[float, float]:
    """Run argv in cwd; (wall seconds, CPU seconds of the child). A failure stops the benchmark."""
    wall, cpu, _ = common.timed(argv, cwd)
    return wall, cpu


def race(epochs: int, runs: int, tmp: Path) -> dict[str, dict[str, list[float]]]:
    """Warm-up round + `runs` timed rounds of the three variants, in turn; their wall/CPU times."""
    argvs = commands(epochs)
    existing = tmp / f"e{epochs}-existing"  # one dir for all of this variant's runs, warm-up included
    existing.mkdir()
    out = {v: {"wall": [], "cpu": []} for v in VARIANTS}
    n = 0
    for round_ in range(runs + 1):  # round 0: the untimed warm-up
        for variant in VARIANTS:
            if variant == "dlx, existing store":
                cwd = existing
            else:
                n += 1
                cwd = tmp / f"e{epochs}-{n}"
                cwd.mkdir()
            wall, cpu = run(argvs[variant], cwd)
            if cwd != existing:
                shutil.rmtree(cwd, ignore_errors=True)
            if round_:
                out[variant]["wall"].append(wall)
                out[variant]["cpu"].append(cpu)
            print(f"{epochs} epoch(s), {'warm-up' if not round_ else f'run {round_}'}, {variant}: "
                  f"{wall:.2f} s wall, {cpu:.2f} s CPU", flush=True)
        if not round_ and not (existing / "mlflow.db").exists():
            print(f"warning: no ./mlflow.db after dlx's warm-up in {existing}: the 'existing store' "
                  "variant may not be reusing a store (has the default tracking.uri changed?)",
                  file=sys.stderr, flush=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5, help="timed runs of each command per epoch count")
    p.add_argument("--epochs", default="1,20", help="comma-separated epoch counts (default 1,20)")
    p.add_argument("--no-record", action="store_true", help="print only; leave RESULTS.md alone")
    args = p.parse_args()
    epoch_list = [int(e) for e in args.epochs.split(",") if e.strip()]
    if args.runs < 1 or not epoch_list or min(epoch_list) < 1:
        p.error("--runs and every --epochs value must be >= 1")

    results = {}
    with tempfile.TemporaryDirectory(prefix="dlx-race-") as tmp:
        for epochs in epoch_list:
            results[epochs] = race(epochs, args.runs, Path(tmp))

    rows, verdicts = [], []
    for epochs, times in results.items():
        plain = times["plain script"]["wall"]
        target = TARGETS.get(epochs)
        for variant in VARIANTS:
            wall, cpu = times[variant]["wall"], times[variant]["cpu"]
            ratio = ""
            if variant != "plain script":
                r = common.median([d / q for d, q in zip(wall, plain)])
                ratio = f"x{r:.2f}"
                if target is not None:
                    ratio += f" ({'met' if r <= target else 'not met'}: <= x{target:.2f})"
                    verdicts.append(f"{epochs} epoch(s), {variant}: x{r:.2f} "
                                    f"({'met' if r <= target else 'not met'})")
            rows.append([epochs, variant, f"{common.median(wall):.2f}",
                         f"{min(wall):.2f}-{max(wall):.2f}", f"{common.median(cpu):.2f}", ratio])
    text = common.table(["epochs", "command", "median wall s", "wall range s", "median CPU s",
                         "dlx / plain wall (target)"], rows)
    print(text)
    if not args.no_record:
        cmds = "\n".join(f"    {c}" for e in epoch_list for c in shown(e).values())
        note = (f"Each command as a user runs it from the shell, a new process every time, "
                f"{args.runs} timed runs each after one untimed warm-up round, the commands taking "
                "turns (plain, dlx existing store, dlx fresh store, ...). The plain script and "
                "\"dlx, fresh store\" run in a new empty directory each time (dlx creates and "
                "migrates a new ./mlflow.db: a new user's first run); \"dlx, existing store\" "
                "reuses one directory, so ./mlflow.db exists from the warm-up on (a returning "
                "user). Wall: time.perf_counter() around subprocess.run; CPU: "
                "getrusage(RUSAGE_CHILDREN) user+system. dlx / plain is the median of the "
                "per-round ratios. Commands:\n\n"
                f"{cmds}\n\n"
                f"Benchmark: `{' '.join(['python', 'benchmarks/process_race.py', *sys.argv[1:]])}`. "
                "Targets: 1 epoch, dlx <= x1.15 the plain script's wall time; 20 epochs, "
                "dlx <= x1.0.")
        summary = ("Result: " + "; ".join(verdicts) + ".") if verdicts else ""
        common.record("Whole process: plain script vs dlx train",
                      f"{common.header()}\n\n{note}\n\n{text}\n\n{summary}")


if __name__ == "__main__":
    main()
