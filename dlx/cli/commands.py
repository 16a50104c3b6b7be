"""The verbs after training: eval, predict, explain, export, runs, ui. Each is thin: it calls one
module of dlx and prints what comes back; a DlxError is one `dlx: error:` line."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

import typer

from dlx.cli import tables
from dlx.cli.app import RUN, URI, app, fail, reported
from dlx.cli.sync import notice


@app.command("eval", context_settings={"allow_extra_args": True})
def eval_(
    ctx: typer.Context,
    run: str = RUN,
    split: str = typer.Option("test", help="test or val"),
    log: bool = typer.Option(False, "--log", help="attach the results to the run (eval_<split>.json)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON for scripts"),
    uri: str = URI,
) -> None:
    """Score a trained run's logged model on its own data split. Extra args: dataset.* overrides."""
    import json

    from dlx import inference
    from dlx.tracking import queries, resolve_uri

    if split not in ("test", "val"):
        fail(f"--split {split} is not one of test, val")
    store = resolve_uri(uri)
    notice(store)
    with reported():
        loaded = inference.load(run, store, ctx.args)
        result = inference.evaluate(loaded, split)
        if log:
            queries.log_to_run(store, loaded.run["run_id"],
                               {f"eval_{k}": v for k, v in result["metrics"].items()},
                               result, f"eval_{split}.json")
    if as_json:
        typer.echo(json.dumps({"run_id": loaded.run["run_id"], **result}, indent=2))
        return
    typer.echo(f"run {loaded.run['run_name']} ({loaded.run['run_id']}), {split} split, "
               f"{result['n']} samples")
    typer.echo("  ".join(f"{k}={v:.4f}" for k, v in result["metrics"].items()))
    if "classification_report" in result:
        tables.report(result["classification_report"])
        tables.confusion(result["confusion_matrix"])


@app.command()
def predict(
    run: str = RUN,
    source: str = typer.Argument(..., metavar="INPUT", help="CSV, image file or folder, or text file"),
    out: Path = typer.Option(None, "--out", "-o", help="write predictions to this CSV"),
    uri: str = URI,
) -> None:
    """Predict with a trained run's model on new inputs, preprocessed as in training."""
    import csv

    from dlx import inference
    from dlx.tracking import resolve_uri

    notice(resolve_uri(uri))
    with reported():
        rows = inference.predict(inference.load(run, resolve_uri(uri)), source)
    fields = list(dict.fromkeys(k for r in rows for k in r))
    with open(out, "w", newline="") if out else contextlib.nullcontext(sys.stdout) as f:
        writer = csv.DictWriter(f, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    if out:
        typer.echo(f"{len(rows)} predictions written to {out}")


@app.command()
def explain(
    run: str = RUN,
    out: Path = typer.Option(None, "--out", "-o", help="folder for the files (default: the run's "
                             "output dir / explain)"),
    uri: str = URI,
) -> None:
    """Explain a trained run on its test split: permutation feature importance (tabular) or
    gradient saliency maps (images). Saved to disk and logged on the run under explain/."""
    from dlx import explain as explaining
    from dlx import inference
    from dlx.tracking import queries, resolve_uri

    store = resolve_uri(uri)
    notice(store)
    with reported():
        loaded = inference.load(run, store)
        folder = out or Path(loaded.run["tags"].get("dlx.output_dir", ".")) / "explain"
        result = explaining.explain(loaded, folder)
        queries.log_files_to_run(store, loaded.run["run_id"], result["files"], "explain")
    typer.echo(f"{result['kind']} for run {loaded.run['run_name']} ({loaded.run['run_id']}):")
    for name, value in result.get("top", []):
        typer.echo(f"  {name}: {value:.4f}")
    for f in result["files"]:
        typer.echo(f"  {f}")


@app.command()
def export(
    run: str = RUN,
    fmt: str = typer.Option("pyfunc", "--format", help="pyfunc (the served model: raw inputs in, "
                            "dlx predict's columns out), or the bare network for "
                            "mlflow.pytorch.load_model: pt2 (torch.export, loads without "
                            "unpickling code) or pickle (the Python class)"),
    register: str = typer.Option(None, "--register", metavar="NAME", help="also register it in "
                                 "MLflow's model registry as a new version of model NAME"),
    uri: str = URI,
) -> None:
    """Log a trained run as an MLflow model for MLflow's serving, its model registry and
    mlflow.pyfunc.load_model: the run's network with its fitted preprocessing and class names,
    answering as `dlx predict` does."""
    from dlx import inference
    from dlx.tracking import resolve_uri

    if fmt not in inference.FORMATS:
        fail(f"--format {fmt} is not one of {', '.join(inference.FORMATS)}")
    notice(resolve_uri(uri))
    with reported():
        out = inference.export(run, resolve_uri(uri), fmt, register)
    load = "mlflow.pyfunc.load_model" if fmt == "pyfunc" else "mlflow.pytorch.load_model"
    typer.echo(f"run {out.run_id}: MLflow model {out.model_uri} (tag dlx.model_uri); load it with "
               f"{load}('{out.model_uri}')")
    if out.registered:
        name, version = out.registered
        typer.echo(f"registered as {name} version {version}: models:/{name}/{version}")
    if fmt == "pyfunc":
        served = f"models:/{out.registered[0]}/{out.registered[1]}" if out.registered \
            else out.model_uri
        typer.echo(f"serve it: {_serving_environment(uri)}mlflow models serve -m {served} "
                   "--env-manager local --port 5001")


def _serving_environment(uri: str | None) -> str:
    """What `mlflow models serve` needs in front of it to find the model and to start: the
    store given by --uri (else it reads $MLFLOW_TRACKING_URI or ./mlflow.db, as dlx does), and
    this Python's bin/ on PATH when it is not (MLflow starts `uvicorn` by name: exit 127)."""
    import shutil

    from dlx.tracking.redact import redact

    prefix = f"MLFLOW_TRACKING_URI={redact(uri)} " if uri else ""
    bin_dir = Path(sys.executable).parent
    if (bin_dir / "uvicorn").exists() and shutil.which("uvicorn") != str(bin_dir / "uvicorn"):
        prefix += f"PATH={bin_dir}:$PATH "
    return prefix


@app.command()
def runs(
    experiment: str = typer.Option("dlx", "--experiment", "-e", help="MLflow experiment"),
    sweep: str = typer.Option(None, help="only the children of this sweep's parent run id"),
    sort: str = typer.Option(None, help="metric to sort by, e.g. val_loss or test_accuracy"),
    desc: bool = typer.Option(False, "--desc", help="sort descending (for accuracy-like metrics)"),
    limit: int = typer.Option(20, help="at most this many runs"),
    best: bool = typer.Option(False, "--best", help="print the best run of the newest sweep "
                              "(or of --sweep): its parameters, score and test report"),
    columns: str = typer.Option(None, "--columns", help="comma-separated params, metrics or tags "
                                "to show, e.g. optimizer.lr,val_loss,dlx.output_dir"),
    show_all: bool = typer.Option(False, "--all", help="every param, metric and tag of each run"),
    as_json: bool = typer.Option(False, "--json", help="print JSON for scripts"),
    uri: str = URI,
) -> None:
    """List tracked runs as a table (a sweep's children with its swept parameters), or the best
    run of a sweep (like GridSearchCV's best_*)."""
    import json

    from dlx.tracking import resolve_uri

    store = resolve_uri(uri)
    notice(store)
    with reported():
        if best:
            from dlx.sweep.report import best_of

            out = best_of(store, experiment, sweep)
        else:
            from dlx.tracking import queries

            rows = queries.list_runs(store, experiment, sweep, sort, not desc, limit,
                                     versions=True)
    if as_json:
        typer.echo(json.dumps(out if best else rows, indent=2, default=str))
    elif best:
        tables.best(out)
    else:
        from dlx.tracking.ranking import swept_params

        if show_all:
            tables.run_details(rows)
            return
        if columns:
            shown = [c.strip() for c in columns.split(",") if c.strip()]
        else:
            shown = tables.run_columns(rows, swept_params(rows) if sweep else None)
        tables.runs(rows, shown)
        if rows:
            from dlx.tracking import ui_link

            typer.echo(f"in the MLflow UI (dlx ui): {ui_link(store, rows[0]['experiment_id'])}")


@app.command()
def ui(
    port: int = typer.Option(5000, help="port to serve on"),
    experiment: str = typer.Option("dlx", "--experiment", "-e", help="the experiment to link to"),
    host: str = typer.Option("127.0.0.1", help="address to bind; anything else exposes your runs"),
    uri: str = URI,
) -> None:
    """Open MLflow's UI over the store `dlx train` writes to."""
    import socket

    from dlx.tracking import is_local, resolve_uri

    store = resolve_uri(uri)
    if not is_local(store):
        typer.echo(f"runs are on a tracking server: open {store}")
        return
    if host != "127.0.0.1":
        typer.secho(f"dlx: warning: binding {host} makes your runs visible to other machines",
                    err=True, fg=typer.colors.YELLOW)
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError as e:
            fail(f"cannot listen on {host}:{port} ({e.strerror}): pick another with --port")
    from dlx.tracking import ui_link
    from dlx.tracking.queries import experiment_id, ui_command

    with reported():
        exp = experiment_id(store, experiment)
    table = ui_link(store, exp, ui=f"http://{host}:{port}") if exp else f"http://{host}:{port}"
    typer.echo(f"MLflow UI for {store} (Ctrl-C to stop); the runs of experiment {experiment!r}: "
               f"{table}")
    argv, env = ui_command(store, host, port)
    sys.stdout.flush()
    os.execve(argv[0], argv, env)  # MLflow takes over this process: signals reach it directly


@app.command()
def init(
    folder: Path = typer.Argument(Path("."), metavar="[DIR]", help="where to write the project "
                                  "(default: this folder)"),
    module: str = typer.Option(None, "--module", help="the Python module of your network and "
                               "data (default: named after DIR)"),
) -> None:
    """Write a starter project: your own network and data in a module, and conf/ with a model, a
    dataset and an experiment of your own, which `dlx train --config-dir conf +experiment=starter`
    trains as written."""
    from dlx import starter

    with reported():
        files = starter.write(folder, module)
    typer.echo(f"wrote {len(files)} files:")
    for f in files:
        typer.echo(f"  {f}")
    where = "" if folder.resolve() == Path.cwd() else f"cd {folder} && "
    typer.echo(f"train it: {where}dlx train --config-dir conf +experiment=starter")
