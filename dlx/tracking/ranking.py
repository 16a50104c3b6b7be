"""How a sweep's children are ranked, GridSearchCV-style: which child won (best_params_,
best_score_) and the results table (cv_results_). Pure Python over runs as dicts
(dlx/tracking/queries.py); the tracking writer ranks a sweep's children when it ends and logs
results.csv on the parent run, and `dlx runs --best` reads the winner (dlx/sweep/report.py)."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Any

FOLD = "fold_"  # a cross-validated run's per-fold metrics: fold_val_<metric> with step=fold
CV_MEAN, CV_STD = "cv_mean_", "cv_std_"  # and the folds' mean and spread: cv_mean_val_<metric>


def objective_key(monitor: str, cv_folds: int = 0) -> str:
    """The metric a sweep ranks by: the monitored val metric, or its cross-validated mean."""
    return f"{CV_MEAN}{monitor}" if cv_folds and cv_folds > 1 else monitor


def worst(mode: str) -> float:
    """The objective a failed point reports to its sweeper: the worst finite value, so that the
    sweeper ranks it last and goes on (a NaN or None would stop Optuna, hydra#2237)."""
    return sys.float_info.max if mode == "min" else -sys.float_info.max


def is_worst(value) -> bool:
    """Whether a job's objective is `worst`'s: the job failed."""
    return isinstance(value, (int, float)) and abs(value) == sys.float_info.max


def rung(child: dict[str, Any]) -> int:
    """The rung a sweep=halving candidate reached (0 for every child of other sweeps)."""
    return int(child["tags"].get("dlx.rung", 0))


def best(children: list[dict[str, Any]], key: str, mode: str) -> dict[str, Any] | None:
    """The finished child with the lowest (mode=min) or highest (max) `key`; of a halving
    search, the best of its last rung (as HalvingGridSearchCV's best_params_)."""
    scored = [c for c in children if c["status"] == "FINISHED" and key in c["metrics"]]
    if not scored:
        return None
    top = max(rung(c) for c in scored)
    pick = min if mode == "min" else max
    return pick([c for c in scored if rung(c) == top], key=lambda c: c["metrics"][key])


def swept_params(children: list[dict[str, Any]]) -> list[str]:
    """Params whose value differs between children: the axes of the sweep."""
    keys = sorted({k for c in children for k in c["params"]})
    return [k for k in keys if len({c["params"].get(k) for c in children}) > 1]


def results_table(children: list[dict[str, Any]], key: str, mode: str) -> list[dict[str, Any]]:
    """One row per child, best first (like GridSearchCV's cv_results_ ranked by rank_test_score;
    a halving search's by rung reached, then score, with a `rung` column): its swept params, its
    metrics (not the system/ ones) and, cross-validated, each fold's score (a child's "folds":
    {fold_<metric>: [value per fold]})."""
    axes = swept_params(children)
    metric_names = sorted({m for c in children for m in c["metrics"]
                           if not m.startswith(("system/", FOLD))})
    worst = float("inf") if mode == "min" else float("-inf")
    sign = 1 if mode == "min" else -1
    ordered = sorted(children, key=lambda c: (-rung(c), sign * c["metrics"].get(key, worst)))
    halving = any("dlx.rung" in c["tags"] for c in children)
    rows = []
    for rank, c in enumerate(ordered, 1):
        row = {"rank": rank if key in c["metrics"] and c["status"] == "FINISHED" else "",
               "run_id": c["run_id"], "run_name": c["run_name"], "status": c["status"],
               **({"rung": rung(c)} if halving else {})}
        row.update({k: c["params"].get(k, "") for k in axes})
        row.update({m: c["metrics"].get(m, "") for m in metric_names})
        for name, values in c.get("folds", {}).items():  # as cv_results_'s split<k>_test_score
            row.update({f"fold{k}_{name.removeprefix(FOLD)}": v for k, v in enumerate(values, 1)})
        row["overrides"] = c["tags"].get("dlx.overrides", "")
        rows.append(row)
    return rows


def write_csv(rows: list[dict[str, Any]], path: Path) -> Path:
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    return path
