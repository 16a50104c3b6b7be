"""rich renderings of what dlx reports: runs, a sweep's best run, a classification report and
confusion matrix, the composed config as a tree and the config groups' options."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from dlx.cli.app import width


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


def runs(rows: list[dict[str, Any]]) -> None:
    present = {m for r in rows for m in r["metrics"]}
    shown = [m for m in ("val_loss", "val_accuracy", "val_r2", "test_loss", "test_accuracy",
                         "test_r2") if m in present]
    metric_names = [*(sorted(m for m in present if m.startswith(("best_", "cv_mean_")))), *shown]
    table = Table(title=f"{len(rows)} runs")
    table.add_column("name", no_wrap=True)
    for col in ["status", "model", "dataset", "optimizer", "lr", "minutes", *metric_names]:
        table.add_column(col)
    for r in rows:
        p, t = r["params"], r["tags"]
        minutes = (f"{(r['end_time'] - r['start_time']) / 60000:.1f}"
                   if r["end_time"] and r["start_time"] else "")
        kind = "sweep" if t.get("dlx.kind") == "sweep" else t.get("dlx.model", "")
        table.add_row(r["run_name"], r["status"], kind, t.get("dlx.dataset", ""),
                      t.get("dlx.optimizer", ""), p.get("optimizer.lr", ""), minutes,
                      *[f"{r['metrics'][m]:.4g}" if m in r["metrics"] else "" for m in metric_names])
    _print(table)


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
