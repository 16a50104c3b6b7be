"""The GridSearchCV-style report of a sweep: which child won, and a results table and plot.

Pure Python over the rows `tracking.children` returns; callbacks.SweepTracking writes the files and
tracking logs them on the parent run.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any


def objective_key(monitor: str, cv_folds: int = 0) -> str:
    """The metric a sweep ranks by: the monitored val metric, or its cross-validated mean."""
    return f"cv_mean_{monitor}" if cv_folds and cv_folds > 1 else monitor


def best(children: list[dict[str, Any]], key: str, mode: str) -> dict[str, Any] | None:
    """The finished child with the lowest (mode=min) or highest (max) `key`."""
    scored = [c for c in children if c["status"] == "FINISHED" and key in c["metrics"]]
    if not scored:
        return None
    pick = min if mode == "min" else max
    return pick(scored, key=lambda c: c["metrics"][key])


def swept_params(children: list[dict[str, Any]]) -> list[str]:
    """Params whose value differs between children: the axes of the sweep."""
    keys = sorted({k for c in children for k in c["params"]})
    return [k for k in keys if len({c["params"].get(k) for c in children}) > 1]


def results_table(children: list[dict[str, Any]], key: str, mode: str) -> list[dict[str, Any]]:
    """One row per child, best first (like GridSearchCV's cv_results_ ranked by rank_test_score)."""
    axes = swept_params(children)
    metric_names = sorted({m for c in children for m in c["metrics"]})
    worst = float("inf") if mode == "min" else float("-inf")
    sign = 1 if mode == "min" else -1
    ordered = sorted(children, key=lambda c: sign * c["metrics"].get(key, worst))
    rows = []
    for rank, c in enumerate(ordered, 1):
        row = {"rank": rank if key in c["metrics"] and c["status"] == "FINISHED" else "",
               "run_id": c["run_id"], "run_name": c["run_name"], "status": c["status"]}
        row.update({k: c["params"].get(k, "") for k in axes})
        row.update({m: c["metrics"].get(m, "") for m in metric_names})
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


def plot_objective(rows: list[dict[str, Any]], axes: list[str], key: str, path: Path) -> Path | None:
    """One panel per swept parameter: the objective of every finished child against its value."""
    points = [r for r in rows if r.get(key) not in ("", None)]
    if not axes or not points:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, panels = plt.subplots(1, len(axes), figsize=(4 * len(axes), 3.2), squeeze=False)
    for ax, name in zip(panels[0], axes):
        values = [r[name] for r in points]
        try:  # numeric axes on a numeric (log for lr) scale, others as categories
            xs = [float(v) for v in values]
            if name.endswith(".lr") and min(xs) > 0:
                ax.set_xscale("log")
        except ValueError:
            xs = values
        ax.scatter(xs, [float(r[key]) for r in points])
        ax.set_xlabel(name)
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
