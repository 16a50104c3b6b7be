"""The Typer app every command registers on, and the one way dlx reports a user's mistake:
`dlx: error: <what and how to fix it>` on one line of stderr."""

from __future__ import annotations

import contextlib
import os
import sys

import typer

from dlx.config.schemas import CONF_DIR  # noqa: F401 - the commands' conf/

app = typer.Typer(
    name="dlx",
    help="Config-driven deep-learning experiments: Hydra composes the run, PyTorch trains it, "
    "MLflow records it.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)

def _version(value: bool) -> None:
    if value:
        from dlx import __version__

        typer.echo(f"dlx {__version__}")
        raise typer.Exit()


@app.callback()
def _options(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                          help="Print dlx's version and exit.")) -> None:
    pass


URI = typer.Option(None, "--uri", help="tracking store (default: $MLFLOW_TRACKING_URI or ./mlflow.db)")
RUN = typer.Argument(..., help="MLflow run id, run name or Hydra run dir")


def err(message: str) -> None:
    typer.secho(f"dlx: error: {message}", err=True, fg=typer.colors.RED)


def debug() -> bool:
    """DLX_DEBUG=1 (or Hydra's HYDRA_FULL_ERROR=1): tracebacks instead of one-line errors."""
    return os.environ.get("HYDRA_FULL_ERROR") == "1" or os.environ.get("DLX_DEBUG") == "1"


def fail(message: str, code: int = 1):
    """Report a user's mistake and exit."""
    err(message)
    raise typer.Exit(code)


@contextlib.contextmanager
def reported():
    """The one place a user's mistake (a DlxError) becomes its `dlx: error:` line and exit 1."""
    from dlx.errors import DlxError

    try:
        yield
    except DlxError as e:
        if debug():
            raise
        fail(str(e))


def width() -> int | None:
    """rich's console width: the terminal's, or wide enough for a pipe or a file."""
    return None if sys.stdout.isatty() else int(os.environ.get("COLUMNS", "160"))
