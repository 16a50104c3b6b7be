"""The `dlx` command: thin Typer verbs over dlx's modules. Heavy modules (torch, mlflow, hydra)
are imported inside the verbs, so `dlx --help` stays fast; this package is the only part of dlx
that prints to the user.

    app.py       the Typer app and one-line errors
    train.py     `dlx train`: a run's or a sweep's outcomes as lines
    jobs.py      the Hydra adapter `dlx train` and dlx.train/dlx.sweep share (prints nothing)
    overrides.py Hydra's command-line grammar: paths made safe, composition errors in one line
    commands.py  eval, predict, explain, export, runs, ui
    sync.py      sync: a tracking outage's spool uploaded
    configs.py   config show / list
    tables.py    rich tables and trees
    progress.py  epoch progress and sweep progress
    completion.py shell completion of overrides
"""

from __future__ import annotations

from dlx.cli import commands, configs, sync, train  # noqa: F401 - they register their commands
from dlx.cli.app import CONF_DIR, app


def main() -> None:
    app()


def run() -> None:
    """The `dlx` console script: `main()`, then exit without tearing the interpreter down
    (with torch loaded that takes a second, and everything is written and flushed by then)."""
    import logging
    import os
    import sys

    try:
        main()
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    if "hydra_plugins.hydra_joblib_launcher._core" in sys.modules:
        sys.exit(code)  # a joblib sweep: a normal exit stops the workers it kept (on our stdout)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


__all__ = ["app", "main", "run", "CONF_DIR"]
