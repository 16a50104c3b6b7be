"""`dlx runs --best`: the winner of a sweep with its parameters, score and test report, as
GridSearchCV's best_params_ / best_score_ (the ranking itself: dlx/tracking/ranking.py)."""

from __future__ import annotations

from typing import Any

from dlx.errors import DlxError
from dlx.tracking.ranking import swept_params


# ---------------------------------------------------------------------- the best of a sweep
def best_of(uri: str, experiment: str, sweep_id: str | None) -> dict[str, Any]:
    """`dlx runs --best`: the winning child of a sweep (the newest one unless `sweep_id`), with
    its swept parameters, its score and its test metrics and classification report."""
    from dlx.tracking import queries

    if sweep_id is None:
        parents = [r for r in queries.list_runs(uri, experiment, limit=1000)
                   if r["tags"].get("dlx.kind") == "sweep"]
        if not parents:
            raise DlxError(f"no sweep in experiment {experiment!r}: run `dlx train -m ...` first")
        sweep_id = max(parents, key=lambda r: r["start_time"])["run_id"]
    parent = queries.get_run(uri, sweep_id)
    best_id = parent["tags"].get("dlx.best_run_id")
    if not best_id:
        raise DlxError(f"sweep {sweep_id} has no finished child to rank")
    key = parent["tags"]["dlx.objective"]
    child = queries.get_run(uri, best_id)
    siblings = queries.children_of(uri, sweep_id)
    axes = swept_params(siblings) or sorted(child["params"])
    return {"sweep_run_id": sweep_id, "n_children": len(siblings), "best_run_id": best_id,
            "best_run_name": child["run_name"],
            "best_params": {k: child["params"].get(k) for k in axes},
            "best_score": {key: child["metrics"].get(key)},
            "test": {k: v for k, v in child["metrics"].items() if k.startswith("test_")},
            "classification_report": queries.json_artifact(uri, best_id,
                                                           "classification_report.json")}
