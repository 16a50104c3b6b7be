"""A sweep's parent run, in the tracking writer (dlx/tracking/writer.py carries out the messages):
started before any point (StartSweep), and at the end (FinishSweep) its children ranked
(dlx/tracking/ranking.py), results.csv and objective.png attached, the parent ended."""

from __future__ import annotations

import time
from pathlib import Path

from dlx.tracking import ERROR_TAG


def _now() -> int:
    return int(time.time() * 1000)


def start_sweep(handler, uri: str, experiment: str, name: str, tags: dict, params: dict,
                output_dir: str, run_id: str | None = None) -> str:
    """The sweep's parent run (or `run_id`, taken up); its children name it as their parent."""
    parent = handler.start_run("sweep", uri, experiment, name, tags, params, None, _now(),
                               output_dir, run_id=run_id)
    handler.runs[parent] = handler.runs.pop("sweep")
    return parent


def finish_sweep(handler, parent: str, objective: str, mode: str, sweep_dir: str,
                 lost: tuple = ()) -> dict:
    """Rank the children by `objective`, attach results.csv and objective.png, end the parent;
    the runs of `lost` points that no writer ended end KILLED, tagged with why. Answers the
    winner, the failed children (run name, error line, output dir) and the results table."""
    from mlflow.entities import RunTag

    from dlx import plots
    from dlx.tracking import ranking
    from dlx.tracking.queries import children

    run, key, why, store = handler.runs[parent], objective, dict(lost), handler.store
    rows = children(run["client"], parent)
    for r in rows:
        if r["status"] == "RUNNING" and r["tags"].get("dlx.output_dir") in why:
            ended = RunTag("dlx.ended_by", why[r["tags"]["dlx.output_dir"]])
            store.retry(run["client"].log_batch, r["run_id"], tags=[ended])
            store.retry(run["client"].set_terminated, r["run_id"], "KILLED", end_time=_now())
            r["status"], r["tags"]["dlx.ended_by"] = "KILLED", ended.value
    deadline = time.monotonic() + 60  # other processes' points (a shared Optuna study) whose
    while any(r["status"] == "RUNNING" for r in rows) and time.monotonic() < deadline:
        time.sleep(0.5)  # last records are still on their way through their writers
        rows = children(run["client"], parent)
    best = ranking.best(rows, key, mode)
    for r in rows:  # a cross-validated point's fold scores, fold by fold
        r["folds"] = {name: [h.value for h in sorted(run["client"].get_metric_history(
            r["run_id"], name), key=lambda h: h.step)]
            for name in r["metrics"] if name.startswith(ranking.FOLD)}
    table = ranking.results_table(rows, key, mode)
    folder = Path(sweep_dir)
    files = [ranking.write_csv(table, folder / "results.csv")]
    figure = plots.objective(table, ranking.swept_params(rows), key, folder / "objective.png")
    n_failed = sum(r["status"] != "FINISHED" for r in rows)
    tags = {"dlx.children": len(rows), "dlx.children_failed": n_failed, "dlx.objective": key}
    if best is not None:
        tags.update({"dlx.best_run_id": best["run_id"], "dlx.best_run_name": best["run_name"]})
        handler.log_metrics(parent, {f"best_{key}": best["metrics"][key]})
    handler.set_tags(parent, tags)
    handler.log_files(parent, {f.name: f for f in files + ([figure] if figure else [])})
    handler.end_run(parent, "FINISHED" if best is not None else "FAILED")
    mine = str(folder.resolve())  # this sweep's points (a shared study has other workers')
    failed = [(r["run_name"], r["tags"].get(ERROR_TAG, f"ended {r['status']}"),
               r["tags"].get("dlx.output_dir", "")) for r in rows
              if r["status"] != "FINISHED"
              and r["tags"].get("dlx.output_dir", "").startswith(mine)]
    return {"best": best, "key": key, "n_children": len(rows), "n_failed": n_failed,
            "failed": failed, "results": str(files[0]), "table": table}
