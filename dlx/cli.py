"""The `dlx` command. Thin verbs; heavy modules (torch, mlflow, hydra) are imported inside them,
so `dlx --help` stays fast. This is the only module that prints to the user.
"""

from __future__ import annotations

import os
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


class _ComposeErrors:
    """Holds what Hydra writes to stderr while it composes the config, so that a bad override is
    reported as one line; once a job starts, everything passes straight through."""

    def __init__(self, stream):
        self.stream, self.held, self.passthrough = stream, [], False

    def write(self, text: str) -> int:
        (self.stream.write if self.passthrough else self.held.append)(text)
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def release(self) -> None:
        self.passthrough = True
        self.stream.write("".join(self.held))
        self.held.clear()

    def one_line(self) -> str:
        """Hydra's multi-line message as one line: the problem, the options, the fix."""
        parts, options = [], []
        for raw in "".join(self.held).splitlines():
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


def _task(cfg) -> float | None:
    """What Hydra runs for every job: `dlx.run.train` plus one-line reporting of problems."""
    if _stderr is not None:
        _stderr.release()
    from dlx.errors import DlxError
    from dlx.run import train

    try:
        result = train(cfg, callbacks=_progress(cfg.trainer.progress))
    except DlxError as e:
        if _debug():
            raise
        _failures.append(str(e))
        _err(str(e))
        return None
    except KeyboardInterrupt:
        raise
    except Exception as e:  # a bug in dlx or a library: say what, keep the traceback opt-in
        if _debug():
            raise
        _failures.append(str(e))
        _err(f"{type(e).__name__}: {e} (set HYDRA_FULL_ERROR=1 for the traceback)")
        return None
    test = "  ".join(f"{k}={v:.4f}" for k, v in result.test.items())
    typer.echo(f"{test}\nrun {result.run_name} ({result.run_id}) in {result.output_dir}")
    return result.objective


@app.command(
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
    sweep = callbacks.last_sweep
    if sweep.get("best"):
        b = sweep["best"]
        typer.echo(f"sweep: best of {b['n_children']} runs is {b['run_name']} ({b['run_id']}) "
                   f"with {sweep['monitor']}={b['score']:.4f}; parent run {sweep['parent_run_id']}")
    if callbacks.last_sweep.get("parent_run_id") or not _failures:
        typer.echo("browse runs: dlx ui")
    if _failures:
        if len(_failures) > 1:
            _err(f"{len(_failures)} jobs failed")
        raise typer.Exit(1)


# ------------------------------------------------------------------------------ ui
@app.command()
def ui(
    port: int = typer.Option(5000, help="port to serve on"),
    host: str = typer.Option("127.0.0.1", help="address to bind; anything else exposes your runs"),
    uri: str = typer.Option(None, help="tracking store (default: $MLFLOW_TRACKING_URI or ./mlflow.db)"),
) -> None:
    """Open MLflow's UI over the store `dlx train` writes to."""
    import socket
    import subprocess

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
    typer.echo(f"MLflow UI for {store} on http://{host}:{port} (Ctrl-C to stop)")
    try:
        raise typer.Exit(subprocess.call(tracking.ui_command(store, host, port)))
    except KeyboardInterrupt:
        raise typer.Exit(0)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
