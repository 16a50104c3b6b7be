"""rich renderings of what dlx reports: runs, a sweep's best run, a classification report and
confusion matrix, the composed config as a tree and the config groups' options."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from dlx.cli.app import width
from dlx.tracking import REGISTERED
from dlx.tracking.ranking import CV_MEAN, CV_STD


def _print(renderable) -> None:
    Console(width=width()).print(renderable)


def report(report: dict) -> None:
    table = Table(title="classification report")
    for col in ("class", "precision", "recall", "f1-score", "support"):
        table.add_column(col, justify="right")
    for name, row in report.items():
        if isinstance(row, dict):
            table.add_row(name, *(f"{row[c]:.3f}" if c != "support" else str(int(row[c]))
                                  for c in ("precision", "recall", "f1-score", "support")))
    _print(table)


def confusion(cm: dict) -> None:
    table = Table(title="confusion matrix (rows: true, columns: predicted)")
    table.add_column("")
    for name in cm["labels"]:
        table.add_column(name, justify="right")
    for name, row in zip(cm["labels"], cm["matrix"]):
        table.add_row(name, *map(str, row))
    _print(table)


def runs(rows: list[dict[str, Any]], columns: list[str]) -> None:
    """Runs as a table: the name (never cut), status, then `columns`: params, metrics or tags
    by name (metrics shown to 4 significant digits)."""
    from rich import box

    table = Table(title=f"{len(rows)} runs", box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1, 0, 0))
    table.add_column("name", no_wrap=True, min_width=max((len(r["run_name"]) for r in rows), default=4))
    table.add_column("status", no_wrap=True)
    for col in columns:
        table.add_column(col.removeprefix("dlx."), overflow="fold")  # dlx.model: the tag, "model"
    for r in rows:
        cells = []
        for col in columns:
            if col == REGISTERED:
                cells.append(_versions(r.get(REGISTERED, [])))
            elif col in r["metrics"]:
                cells.append(f"{r['metrics'][col]:.4g}")
            elif col == "dlx.model" and r["tags"].get("dlx.kind") == "sweep":
                cells.append("sweep")
            else:
                cells.append(str(r["params"].get(col, r["tags"].get(col, ""))))
        table.add_row(r["run_name"], r["status"], *cells)
    _print(table)


def _versions(registered: list[str]) -> str:
    """NAME/VERSION entries (newest first) as one cell: each name with its versions, "mnist/3,1"."""
    names: dict[str, list[str]] = {}
    for entry in registered:
        name, _, version = entry.rpartition("/")
        names.setdefault(name, []).append(version)
    return ", ".join(f"{name}/{','.join(versions)}" for name, versions in names.items())


def run_details(rows: list[dict[str, Any]]) -> None:
    """Every param, metric and tag of each run, one `key: value` line each (`dlx runs --all`)."""
    import typer

    for r in rows:
        typer.echo(f"{r['run_name']} ({r['run_id']}) {r['status']}")
        for kind in ("params", "metrics", "tags"):
            for key, value in sorted(r[kind].items()):
                typer.echo(f"  {key}: {f'{value:.6g}' if kind == 'metrics' else value}")


def run_columns(rows: list[dict[str, Any]], axes: list[str] | None) -> list[str]:
    """The columns a listing needs: a sweep's children, its swept parameters and the objective;
    other runs, the model, the dataset, the monitored metric and the test headline; then, when a
    run has any, its versions in MLflow's model registry (NAME/VERSION)."""
    monitors = [r["params"].get("trainer.monitor") for r in rows if r["params"].get("trainer.monitor")]
    present = {m for r in rows for m in r["metrics"]}
    objective = []
    for m in dict.fromkeys(monitors):  # cross-validated: the folds' mean and spread
        cv = [k for k in (f"{CV_MEAN}{m}", f"{CV_STD}{m}") if k in present]
        objective += cv or [m]
    versions = [REGISTERED] if any(r.get(REGISTERED) for r in rows) else []
    if axes is not None:
        return [*axes, *objective, *versions]
    headline = [m for m in ("test_accuracy", "test_r2", "test_mse") if m in present][:1]
    return ["dlx.model", "dlx.dataset", *objective, *headline, *versions]


def best(out: dict[str, Any]) -> None:
    import typer

    key, score = next(iter(out["best_score"].items()))
    typer.echo(f"sweep {out['sweep_run_id']}: best of {out['n_children']} runs is "
               f"{out['best_run_name']} ({out['best_run_id']})")
    typer.echo("best_params: " + "  ".join(f"{k}={v}" for k, v in out["best_params"].items()))
    typer.echo(f"best_score: {key}={score:.4f}")
    typer.echo("test: " + "  ".join(f"{k}={v:.4f}" for k, v in out["test"].items()))
    if out.get("classification_report"):
        report(out["classification_report"])


def tree(config: dict) -> None:
    from rich.tree import Tree

    def grow(branch, node):
        for key, value in node.items():
            if isinstance(value, dict) and value:
                grow(branch.add(f"[bold]{key}[/bold]"), value)
            else:
                branch.add(f"{key}: {value!r}" if isinstance(value, str) else f"{key}: {value}")

    root = Tree("config")
    grow(root, config)
    _print(root)


def options(title: str, rows: list[tuple[str, ...]], columns: tuple[str, ...]) -> None:
    from rich.markup import escape

    table = Table(title=title)
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*(escape(str(c)) for c in row))
    _print(table)
