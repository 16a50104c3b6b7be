"""The source material's tuning step, GridSearchCV(cv=5) over epochs x batch_size x learning_rate,
run through scikit-learn's GridSearchCV on skorch and through `dlx train -m sweep=grid
trainer.cv_folds=5`, as whole processes on the same data (scikit-learn's digits, dlx's splits).

    python benchmarks/gridsearch.py            # both sides, the section in RESULTS.md
    python benchmarks/gridsearch.py --quick    # a 2x2x2 grid, cv=3: a check that both sides run

GridSearchCV side: `NeuralNetClassifier(dlx's default CNN, Adam, CrossEntropyLoss,
train_split=None)` with param_grid {max_epochs: [10, 20, 30], batch_size: [32, 64, 128],
lr: [0.001, 0.01, 0.1]}, cv = the same StratifiedKFold(5, shuffle, seed 42) dlx uses, scored by
accuracy, refit=True, n_jobs=None (the source's call), on train+val; the winner scored on the
test split. skorch is an optional peer (`pip install skorch`): without it only dlx's side runs.
dlx side: the same grid, ranked by the folds' mean val_accuracy (trainer.monitor=val_accuracy),
tracked into a fresh SQLite store, the winner refit on train+val and tested (trainer.cv_refit=best).
Target (reported, not asserted): dlx wall <= 0.35x GridSearchCV's, its winner's test accuracy
within 0.005 of GridSearchCV's winner's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common

GRID = {"trainer.epochs": [10, 20, 30], "dataset.batch_size": [32, 64, 128],
        "optimizer.lr": [0.001, 0.01, 0.1]}
QUICK = {"trainer.epochs": [1, 2], "dataset.batch_size": [64, 128], "optimizer.lr": [0.001, 0.01]}
SKORCH = {"trainer.epochs": "max_epochs", "dataset.batch_size": "batch_size", "optimizer.lr": "lr"}
RANK = ["trainer.monitor=val_accuracy", "trainer.monitor_mode=max"]  # as GridSearchCV's accuracy


def peer(grid: dict, folds: int) -> dict:
    """GridSearchCV on skorch in this process (the benchmark starts it as its own process)."""
    import numpy as np
    import torch
    from skorch import NeuralNetClassifier
    from sklearn.model_selection import GridSearchCV, StratifiedKFold

    from dlx import models
    from dlx.data import registry

    cfg, _ = common.compose(["dataset=digits", "model=cnn"], Path(tempfile.mkdtemp()))
    data = registry.load(cfg.dataset)
    x = torch.cat([data.train[0], data.val[0]]).numpy().astype(np.float32)
    y = torch.cat([data.train[1], data.val[1]]).numpy().astype(np.int64)
    spec = data.spec

    class Net(torch.nn.Module):  # dlx's default CNN, as skorch builds a module from kwargs
        def __init__(self):
            super().__init__()
            self.net = models.build(cfg.model, spec)

        def forward(self, x):
            return self.net(x)

    torch.manual_seed(42)
    net = NeuralNetClassifier(Net, criterion=torch.nn.CrossEntropyLoss, optimizer=torch.optim.Adam,
                              train_split=None, iterator_train__shuffle=True, device="cpu",
                              verbose=0)
    search = GridSearchCV(net, {SKORCH[k]: v for k, v in grid.items()}, refit=True,
                          cv=StratifiedKFold(folds, shuffle=True, random_state=cfg.dataset.split_seed))
    search.fit(x, y)
    test = float(search.best_estimator_.score(data.test[0].numpy().astype(np.float32),
                                              data.test[1].numpy()))
    return {"best_params": search.best_params_, "best_score": float(search.best_score_),
            "test_accuracy": test, "fits": len(search.cv_results_["params"]) * folds + 1}


def run(args: list[str], cwd: Path) -> tuple[float, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "HYDRA_FULL_ERROR")}
    start = time.perf_counter()
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return seconds, proc.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a 2x2x2 grid with cv=3")
    ap.add_argument("--peer", action="store_true", help=argparse.SUPPRESS)  # the GridSearchCV side
    ap.add_argument("--no-record", action="store_true", help="print only, leave RESULTS.md")
    opts = ap.parse_args()
    grid, folds = (QUICK, 3) if opts.quick else (GRID, 5)
    if opts.peer:
        print(json.dumps(peer(grid, folds)))
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        axes = [f"{k}={','.join(str(v) for v in values)}" for k, values in grid.items()]
        wall, _ = run([str(common.BIN / "dlx"), "train", "-m", "sweep=grid", *axes,
                       f"trainer.cv_folds={folds}", *RANK, "trainer.progress=false"], Path(tmp))
        _, out = run([str(common.BIN / "dlx"), "runs", "--best", "--json"], Path(tmp))
        best = json.loads(out)
        networks = len(grid["dataset.batch_size"]) * len(grid["optimizer.lr"])  # epochs: milestones
        dlx_row = [f"`dlx train -m sweep=grid trainer.cv_folds={folds}`", f"{wall:.1f}",
                   f"{networks * folds} (to {max(grid['trainer.epochs'])} epochs, scored at each "
                   "epoch point) + 1 refit", best["test"]["test_accuracy"],
                   ", ".join(f"{k}={v}" for k, v in best["best_params"].items())]
        print("dlx:", dlx_row, flush=True)
    try:
        import skorch  # noqa: F401
    except ImportError:
        peer_row = None
        print("skorch is not installed (pip install skorch): GridSearchCV's side skipped")
    else:
        wall_peer, out = run([sys.executable, __file__, "--peer", *(["--quick"] if opts.quick else [])],
                             Path.cwd())
        got = json.loads(out.strip().splitlines()[-1])
        peer_row = [f"skorch NeuralNetClassifier + GridSearchCV(cv={folds})", f"{wall_peer:.1f}",
                    f"{got['fits'] - 1} + 1 refit", got["test_accuracy"],
                    ", ".join(f"{k}={v}" for k, v in sorted(got["best_params"].items()))]
        print("GridSearchCV:", peer_row, flush=True)
        rows.append(peer_row)
    rows.append(dlx_row)
    for r in rows:
        r[3] = f"{r[3]:.4f}"
    quick = " --quick" if opts.quick else ""
    body = [common.header(), "", f"Command: `python benchmarks/gridsearch.py{quick}`; "
            "the default CNN on digits (train+val pooled for the folds, the test split held out), "
            "whole processes, one after the other.", "",
            common.table(["what", "wall s", "fits", "winner's test accuracy", "winner"], rows)]
    if peer_row:
        ratio = float(dlx_row[1]) / float(peer_row[1])
        gap = abs(float(dlx_row[3]) - float(peer_row[3]))
        body += ["", f"dlx / GridSearchCV wall: **x{ratio:.2f}** (target <= x0.35); winners' test "
                 f"accuracy differ by {gap:.4f} (target <= 0.005)."]
    text = "\n".join(body)
    print(text)
    if not opts.no_record and not opts.quick:
        common.record("GridSearchCV(cv=5): skorch + scikit-learn vs dlx", text)


if __name__ == "__main__":
    main()
