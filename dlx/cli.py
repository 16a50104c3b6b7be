"""The `dlx` command. Thin verbs; heavy modules (torch, mlflow, hydra) are imported inside them,
so `dlx --help` stays fast. This is the only module that prints to the user.
"""

from __future__ import annotations

import os
import re
import signal
import sys
from pathlib import Path

import typer

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"

app = typer.Typer(
    name="dlx",
    help="Config-driven deep-learning experiments: Hydra composes the run, PyTorch trains it, "
    "MLflow records it.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)


def _err(message: str) -> None:
    typer.secho(f"dlx: error: {message}", err=True, fg=typer.colors.RED)


def _debug() -> bool:
    return os.environ.get("HYDRA_FULL_ERROR") == "1" or os.environ.get("DLX_DEBUG") == "1"


class _Overrides(typer.core.TyperCommand):
    """A command whose extra arguments are Hydra overrides: <TAB> completes `group=option` from
    conf/ and the chosen options' `group.key=` (dlx/completion.py; no torch or mlflow import)."""

    def shell_complete(self, ctx, incomplete):
        from dlx.completion import overrides

        return [typer.core.CompletionItem(c) for c in overrides(ctx.args, incomplete)]


# ------------------------------------------------------------------------------ progress
def _progress(bar: bool):
    """A rich progress bar per epoch on a terminal; plain epoch lines when off or not a TTY."""
    from dlx.training.fit import Callback

    def line(epoch, metrics):
        return f"epoch {epoch}: " + "  ".join(f"{k}={v:.4g}" for k, v in metrics.items())

    class Plain(Callback):
        def on_epoch_end(self, epoch, metrics):
            typer.echo(line(epoch, metrics))

    class Bar(Callback):
        def __init__(self):
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

            self.console = Console()
            self.bar = Progress("[bold]{task.description}", BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), console=self.console, transient=True)
            self.task = None

        def on_epoch_start(self, epoch, epochs, steps):
            self.bar.start()
            self.task = self.bar.add_task(f"epoch {epoch}/{epochs}", total=steps)

        def on_batch_end(self, step):
            self.bar.advance(self.task)

        def on_epoch_end(self, epoch, metrics):
            self.bar.remove_task(self.task)
            self.bar.stop()
            self.console.print(line(epoch, metrics))

    return [Bar() if bar and sys.stdout.isatty() else Plain()]


# ------------------------------------------------------------------------------ train
_failures: list[str] = []
# this process's rank when torchrun started several (trainer.strategy=ddp); 0 otherwise
_RANK = int(os.environ.get("RANK", "0")) if int(os.environ.get("WORLD_SIZE", "1")) > 1 else 0


class _ComposeErrors:
    """Holds what Hydra writes to stderr while it composes the config, so that a bad override is
    reported as one line; once a job starts, everything passes straight through."""

    def __init__(self, stream):
        self.stream, self.held, self.passthrough = stream, [], False

    def write(self, text) -> int:
        if isinstance(text, bytes):
            text = text.decode(errors="replace")
        (self.stream.write if self.passthrough else self.held.append)(text)
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def __getattr__(self, name):  # fileno, isatty, encoding...: the real stream's
        return getattr(self.stream, name)

    def release(self) -> None:
        self.passthrough = True
        self.stream.write("".join(self.held))
        self.held.clear()

    def one_line(self) -> str:
        return _condense("".join(self.held))


def _condense(text: str) -> str:
    """Hydra's multi-line message as one line: the problem, the options, the fix."""
    parts, options = [], []
    lines = text.splitlines()
    if "Traceback (most recent call last):" in lines:  # Hydra failed outside the task, e.g. on
        # creating the run dir: the exception's own lines, without the stack frames
        lines = [x for x in lines[len(lines) - lines[::-1].index("Traceback (most recent call "
                                                                   "last):"):] if x[:1] != " "]
        if lines and re.match(r"\w+: \[Errno \d+\]", lines[0]):  # an OSError: the output dir
            lines[0] += " (dlx writes the run's files there: point hydra.run.dir at a writable folder)"
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith(("Set the environment variable HYDRA_FULL_ERROR",
                                        "Config search path", "provider=", "object_type=",
                                        "reference_type=")):
            continue
        if raw.startswith("\t") and parts and parts[-1].endswith(":"):
            options.append(line)
        else:
            if options:
                parts[-1] += " " + ", ".join(options)
                options = []
            parts.append(line.removeprefix("In 'config': "))
    if options:
        parts[-1] += " " + ", ".join(options)
    return "; ".join(p.rstrip(".") for p in parts)


_stderr: _ComposeErrors | None = None


def _worst(cfg) -> float:
    """A failed job's objective: the worst finite value, so a sweeper ranks it last and goes on
    (a NaN or None would stop Optuna)."""
    return sys.float_info.max if cfg.trainer.monitor_mode == "min" else -sys.float_info.max


def _task(cfg) -> float | None:
    """What Hydra runs for every job: `dlx.run.train` plus one-line reporting of problems."""
    if _stderr is not None:
        _stderr.release()
    from dlx.config import validate
    from dlx.errors import DlxError

    try:
        validate(cfg)  # a bad config is reported before torch and mlflow are imported
        from dlx.run import train

        result = train(cfg, callbacks=_progress(cfg.trainer.progress))
    except DlxError as e:
        if _debug():
            raise
        _failures.append(str(e))
        if _RANK == 0:  # under torchrun every rank meets the same problem: say it once
            _err(str(e))
        return _worst(cfg)
    except KeyboardInterrupt:
        raise
    except Exception as e:  # a bug in dlx or a library: say what, keep the traceback opt-in
        if _debug():
            raise
        from dlx.tracking import redact  # an unexpected message may quote a tracking URI

        _failures.append(str(e))
        _err(redact(" ".join(f"{type(e).__name__}: {e}".split()))
             + " (set HYDRA_FULL_ERROR=1 for the traceback)")
        return _worst(cfg)
    if _RANK > 0:
        return result.objective
    test = "  ".join(f"{k}={v:.4f}" for k, v in result.test.items())
    typer.echo(f"{test}\nrun {result.run_name} ({result.run_id}) in {result.output_dir}")
    return result.objective


@app.command(
    cls=_Overrides,
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def train(ctx: typer.Context) -> None:
    """Train one run, or a sweep with -m. Arguments are Hydra overrides (see `dlx train --help`).

    Examples: dlx train model=mlp optimizer=sgd optimizer.lr=0.05;
    dlx train -m optimizer=sgd,adam optimizer.lr=0.01,0.001; dlx train --cfg job
    """
    import hydra

    from dlx import callbacks
    from dlx.config import register

    register()
    main = hydra.main(config_path=str(CONF_DIR), config_name="config", version_base=None)(_task)
    # Ctrl-C and SIGTERM end the run KILLED (even where a parent shell made us ignore SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    sys.argv = ["dlx train", *ctx.args]
    scratch = None
    if _RANK > 0:  # a DDP rank other than 0 (torchrun): it trains, rank 0 keeps the run dir
        import tempfile

        scratch = tempfile.mkdtemp(prefix=f"dlx-rank{_RANK}-")
        sys.argv += [f"hydra.run.dir={scratch}", "hydra.output_subdir=null"]
    _failures.clear()
    global _stderr
    _stderr = None if _debug() else _ComposeErrors(sys.stderr)
    try:
        if _stderr is not None:
            sys.stderr = _stderr
        main()
    except KeyboardInterrupt:
        _err("interrupted; the run was marked KILLED")
        raise typer.Exit(130)
    except ValueError as e:  # Hydra's own argument checks (e.g. --cfg together with -m)
        if _debug():
            raise
        sys.stderr = _stderr.stream
        _stderr.held.clear()
        _err(str(e))
        raise typer.Exit(1)
    except SystemExit as e:  # Hydra exits 1 on a composition error, after writing it to stderr
        if _stderr is None or _stderr.passthrough or not _stderr.held:
            raise
        sys.stderr = _stderr.stream
        _err(_stderr.one_line())
        _stderr.held.clear()
        raise typer.Exit(e.code if isinstance(e.code, int) else 1)
    finally:
        if _stderr is not None:
            sys.stderr = _stderr.stream
            if not _stderr.passthrough:
                _stderr.release()
        if scratch:
            import shutil

            shutil.rmtree(scratch, ignore_errors=True)
    if _RANK > 0:
        raise typer.Exit(1 if _failures else 0)
    sweep = callbacks.last_sweep
    if sweep.get("best"):
        b, key = sweep["best"], sweep["key"]
        typer.echo(f"sweep: best of {sweep['n_children']} runs is {b['run_name']} ({b['run_id']}) "
                   f"with {key}={b['metrics'][key]:.4f}; parent run {sweep['parent_run_id']}; "
                   f"all results in {sweep['results']}")
    if callbacks.last_sweep.get("parent_run_id") or not _failures:
        typer.echo("browse runs: dlx ui")
    if _failures:
        if len(_failures) > 1:
            _err(f"{len(_failures)} jobs failed")
        raise typer.Exit(1)


# ------------------------------------------------------------------------------ eval, predict
_URI = typer.Option(None, "--uri", help="tracking store (default: $MLFLOW_TRACKING_URI or ./mlflow.db)")


@app.command("eval", context_settings={"allow_extra_args": True})
def eval_(
    ctx: typer.Context,
    run: str = typer.Argument(..., help="MLflow run id, run name or Hydra run dir"),
    split: str = typer.Option("test", help="test or val"),
    log: bool = typer.Option(False, "--log", help="attach the results to the run (eval_<split>.json)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON for scripts"),
    uri: str = _URI,
) -> None:
    """Evaluate a trained run's logged model on its own data split. Extra args: dataset.* overrides."""
    import json

    from dlx import inference, tracking
    from dlx.errors import DlxError

    if split not in ("test", "val"):
        _err(f"--split {split} is not one of test, val")
        raise typer.Exit(1)
    store = tracking.resolve_uri(uri)
    try:
        loaded = inference.load(run, store, ctx.args)
        result = inference.evaluate(loaded, split)
        if log:
            tracking.log_to_run(store, loaded.run["run_id"],
                                {f"eval_{k}": v for k, v in result["metrics"].items()},
                                result, f"eval_{split}.json")
    except DlxError as e:
        _err(str(e))
        raise typer.Exit(1)
    if as_json:
        typer.echo(json.dumps({"run_id": loaded.run["run_id"], **result}, indent=2))
        return
    typer.echo(f"run {loaded.run['run_name']} ({loaded.run['run_id']}), {split} split, "
               f"{result['n']} samples")
    typer.echo("  ".join(f"{k}={v:.4f}" for k, v in result["metrics"].items()))
    if "classification_report" in result:
        _print_report(result["classification_report"])
        _print_confusion(result["confusion_matrix"])


@app.command()
def predict(
    run: str = typer.Argument(..., help="MLflow run id, run name or Hydra run dir"),
    source: str = typer.Argument(..., metavar="INPUT", help="CSV, image file or folder, or text file"),
    out: Path = typer.Option(None, "--out", "-o", help="write predictions to this CSV"),
    uri: str = _URI,
) -> None:
    """Predict with a trained run's model on new inputs, preprocessed as in training."""
    import csv

    from dlx import inference, tracking
    from dlx.errors import DlxError

    store = tracking.resolve_uri(uri)
    try:
        rows = inference.predict(inference.load(run, store), source)
    except DlxError as e:
        _err(str(e))
        raise typer.Exit(1)
    fields = list(dict.fromkeys(k for r in rows for k in r))
    if out is None:
        writer = csv.DictWriter(sys.stdout, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return
    with open(out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    typer.echo(f"{len(rows)} predictions written to {out}")


@app.command()
def explain(
    run: str = typer.Argument(..., help="MLflow run id, run name or Hydra run dir"),
    out: Path = typer.Option(None, "--out", "-o", help="folder for the files (default: the run's "
                             "output dir / explain)"),
    uri: str = _URI,
) -> None:
    """Explain a trained run on its test split: permutation feature importance (tabular) or
    gradient saliency maps (images). Saved to disk and logged on the run under explain/."""
    from dlx import explain as explaining
    from dlx import inference, tracking
    from dlx.errors import DlxError

    store = tracking.resolve_uri(uri)
    try:
        loaded = inference.load(run, store)
        folder = out or Path(loaded.run["tags"].get("dlx.output_dir", ".")) / "explain"
        result = explaining.explain(loaded, folder)
        tracking.log_files_to_run(store, loaded.run["run_id"], result["files"], "explain")
    except DlxError as e:
        _err(str(e))
        raise typer.Exit(1)
    typer.echo(f"{result['kind']} for run {loaded.run['run_name']} ({loaded.run['run_id']}):")
    for name, value in result.get("top", []):
        typer.echo(f"  {name}: {value:.4f}")
    for f in result["files"]:
        typer.echo(f"  {f}")


def _print_report(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="classification report")
    for col in ("class", "precision", "recall", "f1-score", "support"):
        table.add_column(col, justify="right")
    for name, row in report.items():
        if isinstance(row, dict):
            table.add_row(name, *(f"{row[c]:.3f}" if c != "support" else str(int(row[c]))
                                  for c in ("precision", "recall", "f1-score", "support")))
    Console(width=None if sys.stdout.isatty() else 160).print(table)


def _print_confusion(cm: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="confusion matrix (rows: true, columns: predicted)")
    table.add_column("")
    for name in cm["labels"]:
        table.add_column(name, justify="right")
    for name, row in zip(cm["labels"], cm["matrix"]):
        table.add_row(name, *map(str, row))
    Console(width=None if sys.stdout.isatty() else 160).print(table)


# ------------------------------------------------------------------------------ config
config_app = typer.Typer(help="Show the composed config or list the config groups' options.",
                         no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("show", cls=_Overrides, context_settings={"allow_extra_args": True})
def config_show(ctx: typer.Context) -> None:
    """Print the config `dlx train OVERRIDES` would run, as a tree (validated, nothing trained)."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException
    from rich.console import Console
    from rich.tree import Tree

    from dlx.config import register, validate
    from dlx.errors import DlxError

    register()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
            cfg = compose("config", overrides=ctx.args)
        validate(cfg)
    except (HydraException, OmegaConfBaseException, DlxError) as e:
        _err(_condense(str(e)))
        raise typer.Exit(1)

    def grow(tree, node):
        for key, value in node.items():
            if isinstance(value, dict) and value:
                grow(tree.add(f"[bold]{key}[/bold]"), value)
            else:
                tree.add(f"{key}: {value!r}" if isinstance(value, str) else f"{key}: {value}")

    tree = Tree("config")
    grow(tree, OmegaConf.to_container(cfg, resolve=True))
    Console(width=None if sys.stdout.isatty() else 160).print(tree)


@config_app.command("list")
def config_list() -> None:
    """Every config group and its options, with the one-line description from each YAML file."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"config groups in {CONF_DIR}")
    for col in ("group", "option", "description"):
        table.add_column(col)
    for group in sorted(p for p in CONF_DIR.iterdir() if p.is_dir() and p.name != "hydra"):
        for option in sorted(group.glob("*.yaml")):
            table.add_row(group.name, option.stem, escape(_describe(option)))
    Console(width=None if sys.stdout.isatty() else 160).print(table)


def _describe(path: Path) -> str:
    """The YAML file's first comment line, minus a leading `name:`."""
    for line in path.read_text().splitlines():
        if line.startswith("#") and not line.startswith("# @package"):
            text = line.lstrip("# ").strip()
            return text.split(": ", 1)[1] if text.startswith(f"{path.stem}: ") else text
    return ""


# ------------------------------------------------------------------------------ runs
@app.command()
def runs(
    experiment: str = typer.Option("dlx", "--experiment", "-e", help="MLflow experiment"),
    sweep: str = typer.Option(None, help="only the children of this sweep's parent run id"),
    sort: str = typer.Option(None, help="metric to sort by, e.g. val_loss or test_accuracy"),
    desc: bool = typer.Option(False, "--desc", help="sort descending (for accuracy-like metrics)"),
    limit: int = typer.Option(20, help="at most this many runs"),
    best: bool = typer.Option(False, "--best", help="print the best run of the newest sweep "
                              "(or of --sweep): its parameters, score and test report"),
    as_json: bool = typer.Option(False, "--json", help="print JSON for scripts"),
    uri: str = typer.Option(None, help="tracking store (default: $MLFLOW_TRACKING_URI or ./mlflow.db)"),
) -> None:
    """List tracked runs as a table, or the best run of a sweep (like GridSearchCV's best_*)."""
    import json

    from dlx import tracking
    from dlx.errors import DlxError

    store = tracking.resolve_uri(uri)
    try:
        if best:
            _print_best(tracking, store, experiment, sweep, as_json)
            return
        rows = tracking.list_runs(store, experiment, sweep, sort, not desc, limit)
    except DlxError as e:
        _err(str(e))
        raise typer.Exit(1)
    if as_json:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    _print_runs(rows)


def _print_runs(rows) -> None:
    from rich.console import Console
    from rich.table import Table

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
    Console(width=None if sys.stdout.isatty() else 200).print(table)


def _print_best(tracking, store, experiment, sweep_id, as_json) -> None:
    import json

    from dlx.errors import DlxError

    if sweep_id is None:
        parents = [r for r in tracking.list_runs(store, experiment, limit=1000)
                   if r["tags"].get("dlx.kind") == "sweep"]
        if not parents:
            raise DlxError(f"no sweep in experiment {experiment!r}: run `dlx train -m ...` first")
        sweep_id = max(parents, key=lambda r: r["start_time"])["run_id"]
    parent = tracking.get_run(store, sweep_id)
    best_id = parent["tags"].get("dlx.best_run_id")
    if not best_id:
        raise DlxError(f"sweep {sweep_id} has no finished child to rank")
    key = parent["tags"]["dlx.objective"]
    child = tracking.get_run(store, best_id)
    siblings = tracking.children(store, sweep_id)
    from dlx.sweep import swept_params

    axes = swept_params(siblings) or sorted(child["params"])
    report = tracking.load_json_artifact(store, best_id, "classification_report.json")
    out = {"sweep_run_id": sweep_id, "best_run_id": best_id, "best_run_name": child["run_name"],
           "best_params": {k: child["params"].get(k) for k in axes},
           "best_score": {key: child["metrics"].get(key)},
           "test": {k: v for k, v in child["metrics"].items() if k.startswith("test_")}}
    if as_json:
        typer.echo(json.dumps({**out, "classification_report": report}, indent=2))
        return
    typer.echo(f"sweep {sweep_id}: best of {len(siblings)} runs is {child['run_name']} ({best_id})")
    typer.echo("best_params: " + "  ".join(f"{k}={v}" for k, v in out["best_params"].items()))
    typer.echo(f"best_score: {key}={child['metrics'].get(key):.4f}")
    typer.echo("test: " + "  ".join(f"{k}={v:.4f}" for k, v in out["test"].items()))
    if report:
        _print_report(report)


# ------------------------------------------------------------------------------ ui
@app.command()
def ui(
    port: int = typer.Option(5000, help="port to serve on"),
    host: str = typer.Option("127.0.0.1", help="address to bind; anything else exposes your runs"),
    uri: str = typer.Option(None, help="tracking store (default: $MLFLOW_TRACKING_URI or ./mlflow.db)"),
) -> None:
    """Open MLflow's UI over the store `dlx train` writes to."""
    import socket

    from dlx import tracking

    store = tracking.resolve_uri(uri)
    if not tracking.is_local(store):
        typer.echo(f"runs are on a tracking server: open {store}")
        return
    if host != "127.0.0.1":
        typer.secho(f"dlx: warning: binding {host} makes your runs visible to other machines",
                    err=True, fg=typer.colors.YELLOW)
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError as e:
            _err(f"cannot listen on {host}:{port} ({e.strerror}): pick another with --port")
            raise typer.Exit(1)
    typer.echo(f"MLflow UI for {store} on http://{host}:{port} (Ctrl-C to stop); runs table: "
               f"http://{host}:{port}/#/experiments/<id>/runs?workflowType=machine_learning")
    argv, env = tracking.ui_command(store, host, port)
    sys.stdout.flush()
    os.execve(argv[0], argv, env)  # MLflow takes over this process: signals reach it directly


def main() -> None:
    app()


if __name__ == "__main__":
    main()
