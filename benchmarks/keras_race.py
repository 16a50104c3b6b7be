"""Whole processes against the source's own stack: the source material's tf.keras examples
(benchmarks/keras_source.py, on TensorFlow) against the dlx preset of each, as a user starts them
from the shell.

    python benchmarks/keras_race.py                          # every example, 3 timed rounds
    python benchmarks/keras_race.py --only mnist_cnn --runs 5
    python benchmarks/keras_race.py --tf-python /path/to/venv/bin/python

    linear       Dense(1), SGD, MSE, 1000 epochs on 100 points
                 dlx: +experiment=seed_linear_regression
    logistic     Dense(1, sigmoid), SGD lr 0.5, BCE, 1000 epochs
                 dlx: +experiment=seed_logistic_regression trainer.epochs=1000
    mnist_cnn    Keras' MNIST CNN, Adam, 2 epochs on 60k 28x28 images
                 dlx: +experiment=seed_mnist_cnn_keras trainer.epochs=2
    cifar10_cnn  the CIFAR-10 CNN, Adam, batch 64, 1 epoch on 50k 32x32x3 images
                 dlx: +experiment=seed_cifar10_cnn trainer.epochs=1

The images are MNIST- and CIFAR-format files written once (benchmarks/common.py), which both
sides read. TensorFlow is an optional peer: this interpreter's when it has `tensorflow`, else
--tf-python's (e.g. a venv with `pip install tensorflow-cpu`); without it only dlx's side runs.
The two commands take turns (tf, dlx, tf, dlx, ...), one untimed warm-up round first; dlx runs
in one working folder, so its ./mlflow.db exists after the warm-up (a returning user: the run is
tracked and its model logged). Wall: time.perf_counter() around the process; CPU: its
getrusage(RUSAGE_CHILDREN) user+system. dlx / TF is the median of the per-round ratios.
Targets (reported, not asserted): mnist_cnn <= x0.67 TensorFlow's wall; linear and logistic
< x0.25.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

SOURCE = Path(__file__).resolve().parent / "keras_source.py"
TARGETS = {"linear": 0.25, "logistic": 0.25, "mnist_cnn": 0.67}
EXAMPLES = {  # example -> (its tf.keras arguments, dlx's overrides, data)
    "linear": (["linear", "1000"], ["+experiment=seed_linear_regression"], None),
    "logistic": (["logistic", "1000"], ["+experiment=seed_logistic_regression",
                                        "trainer.epochs=1000"], None),
    "mnist_cnn": (["mnist_cnn", "2"], ["+experiment=seed_mnist_cnn_keras", "trainer.epochs=2"],
                  "mnist"),
    "cifar10_cnn": (["cifar10_cnn", "1"], ["+experiment=seed_cifar10_cnn", "trainer.epochs=1",
                                           "dataset.verify=false"], "cifar10"),
}


def tf_python(given: str | None) -> str | None:
    """The interpreter that has TensorFlow, or None (its side is skipped)."""
    for python in ([given] if given else [sys.executable]):
        ok = subprocess.run([python, "-c", "import tensorflow"], capture_output=True, check=False)
        if ok.returncode == 0:
            return python
    return None


def accuracy(output: str) -> str:
    """The test accuracy a side printed (dlx: test_accuracy=..., tf.keras: Test accuracy: ...)."""
    found = re.search(r"test_accuracy=([\d.]+)|Test accuracy:\s*([\d.]+)|accuracy:\s*([\d.]+)$",
                      output, re.MULTILINE)
    value = next((g for g in found.groups() if g), "") if found else ""
    return f"{float(value):.4f}" if value else ""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--only", default=",".join(EXAMPLES), help="comma-separated examples")
    p.add_argument("--tf-python", help="an interpreter with TensorFlow (default: this one)")
    p.add_argument("--no-record", action="store_true", help="print only; leave RESULTS.md alone")
    args = p.parse_args()
    chosen = [e.strip() for e in args.only.split(",") if e.strip()]
    unknown = set(chosen) - set(EXAMPLES)
    if unknown or args.runs < 1:
        p.error(f"unknown example(s) {', '.join(sorted(unknown))}" if unknown else "--runs >= 1")
    tf = tf_python(args.tf_python)
    if tf is None:
        print("TensorFlow is not installed here (pip install tensorflow-cpu, or --tf-python): "
              "the tf.keras side is skipped", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="dlx-keras-") as tmp:
        tmp = Path(tmp)
        data = {}
        for example in chosen:
            tf_args, overrides, kind = EXAMPLES[example]
            if kind and kind not in data:
                data[kind] = (common.write_mnist if kind == "mnist" else common.write_cifar10)(
                    tmp / kind)
            root = [str(data[kind])] if kind else []
            sides = {"dlx": [str(common.BIN / "dlx"), "train", *overrides, *(
                [f"dataset.root={root[0]}"] if root else []), "trainer.progress=false"]}
            if tf:
                sides = {"tf.keras": [tf, str(SOURCE), *tf_args, *root], **sides}
            work = tmp / f"work-{example}"
            work.mkdir()
            times = {s: {"wall": [], "cpu": [], "acc": ""} for s in sides}
            for round_ in range(args.runs + 1):
                for side, argv in sides.items():
                    wall, cpu, out = common.timed(argv, work, {"TF_CPP_MIN_LOG_LEVEL": "2"})
                    print(f"{example}, {'warm-up' if not round_ else f'run {round_}'}, {side}: "
                          f"{wall:.2f} s wall, {cpu:.2f} s CPU", flush=True)
                    if round_:
                        times[side]["wall"].append(wall)
                        times[side]["cpu"].append(cpu)
                        times[side]["acc"] = accuracy(out)
            d = times["dlx"]
            shown = lambda t: f"{common.median(t['wall']):.1f} ({common.median(t['cpu']):.1f})"  # noqa: E731
            row = [example, *(["", ""] if not tf else [shown(times["tf.keras"]),
                                                       times["tf.keras"]["acc"]]),
                   shown(d), d["acc"]]
            if tf:
                t = times["tf.keras"]
                wall_ratio = common.median([a / b for a, b in zip(d["wall"], t["wall"])])
                cpu_ratio = common.median([a / b for a, b in zip(d["cpu"], t["cpu"])])
                target = TARGETS.get(example)
                verdict = f" ({'met' if wall_ratio <= target else 'not met'}: <= x{target})" \
                    if target else ""
                row += [f"x{wall_ratio:.2f}{verdict}", f"x{cpu_ratio:.2f}"]
            else:
                row += ["", ""]
            rows.append(row)
    text = common.table(["example", "tf.keras wall s (CPU s)", "tf.keras test acc",
                         "dlx wall s (CPU s)", "dlx test acc", "dlx / TF wall (target)",
                         "dlx / TF CPU"], rows)
    print(text)
    if not args.no_record:
        version = "" if not tf else subprocess.run(
            [tf, "-c", "import tensorflow as t; print(t.__version__)"], capture_output=True,
            text=True, check=False).stdout.strip()
        note = (f"Whole processes, {args.runs} timed rounds after one warm-up, the two sides taking "
                f"turns; TensorFlow {version or 'not installed (its side skipped)'}. "
                "Medians; dlx / TF is the median of the per-round ratios. Benchmark: "
                f"`python benchmarks/keras_race.py {' '.join(sys.argv[1:])}`. The examples and "
                "how each side is run: the docstring of benchmarks/keras_race.py.")
        common.record("The source's stack: tf.keras vs dlx (cpu)",
                      f"{common.header()}\n\n{note}\n\n{text}")


if __name__ == "__main__":
    main()
