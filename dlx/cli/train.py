"""`dlx train`: one run, or a sweep with -m. Arguments are Hydra overrides, handed to Hydra as
typed (-m, --cfg job, +key, ~key, hydra/launcher=..., --config-dir DIR). The Hydra adapter
(dlx/cli/jobs.py) runs them; this command turns what comes back into lines: the epochs, each
point's test metrics and run, the sweep's winner, one `dlx: error:` line per failure, and the
exit code (1: something failed, 130: interrupted).

The tracking writer is started first, so that mlflow imports on another core while this process
imports Hydra and torch; at the end dlx waits for it to finish (nothing is lost).
"""

from __future__ import annotations

import sys

import typer

from dlx import interrupts
from dlx.cli import progress
from dlx.cli.app import CONF_DIR, app, debug, err
from dlx.runtime import rank
from dlx.sweep.session import Listener

NO_JOB = frozenset({"--help", "-h", "--cfg", "-c", "--info", "-i", "--shell-completion", "-sc",
                    "--hydra-help", "--version"})  # Hydra prints these (hydra.main), nothing trains


class Overrides(typer.core.TyperCommand):
    """A command whose extra arguments are Hydra overrides: <TAB> completes `group=option` from
    conf/ and the chosen options' `group.key=` (dlx/cli/completion.py; no torch or mlflow)."""

    def shell_complete(self, ctx, incomplete):
        from dlx.cli.completion import overrides

        return [typer.core.CompletionItem(c)
                for c in overrides(ctx.args, incomplete, ctx.params.get("config_dir"))]


class Lines(Listener):
    """What `dlx train` prints while it trains: the epochs (a bar on a terminal), `sweep: ...`
    lines, and each point's outcome as it ends. Under torchrun only rank 0 speaks: every rank
    meets the same problem, said once."""

    def __init__(self, rank: int):
        self.rank = rank

    def epochs(self, cfg) -> list:
        return progress.epochs(cfg.trainer.progress)

    def point(self, text: str) -> None:
        if self.rank == 0:
            typer.echo(text)

    def line(self, text: str) -> None:
        if self.rank == 0:
            typer.echo(f"sweep: {text}")

    def outcome(self, outcome) -> None:
        if outcome.result is not None:
            self.result(outcome.result)
        elif debug() and outcome.exception is not None:
            raise outcome.exception
        elif self.rank == 0:
            err(outcome.error)

    def result(self, result) -> None:
        """`test_accuracy=0.9812 ...`, the run and its files, the run's page in MLflow's UI."""
        if self.rank != 0:
            return
        test = "  ".join(f"{k}={v:.4f}" for k, v in result.test.items())
        where = (f"run {result.run_name} ({result.run_id})" if result.run_id
                 else "not tracked (tracking.enabled=false)")
        typer.echo(f"{test}\n{where}; files in {result.output_dir}")
        if result.link:
            typer.echo(f"  {result.link}")


@app.command(cls=Overrides, add_help_option=False,
             context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def train(ctx: typer.Context) -> None:
    """Train one run, or a sweep with -m. Arguments are Hydra overrides (see `dlx train --help`).

    Examples: dlx train model=mlp optimizer=sgd optimizer.lr=0.05;
    dlx train -m optimizer=sgd,adam optimizer.lr=0.01,0.001; dlx train --cfg job
    """
    from dlx.errors import DlxError
    from dlx.tracking import client

    # Ctrl-C and SIGTERM end the run KILLED (even where a parent shell made us ignore SIGINT)
    interrupts.install()
    args = list(ctx.args)
    if NO_JOB & set(args):
        return _show(args)
    me = rank()  # under torchrun several processes run this; rank 0 speaks
    if me == 0:
        client.start()  # mlflow imports in the writer while this process imports torch
    code = 0
    try:
        try:
            code = _run(args, Lines(me))
        except DlxError as e:
            if debug():
                raise
            if me == 0:
                err(str(e))
            code = 1
        try:
            client.shutdown()  # everything recorded before dlx exits
        except DlxError as e:  # the store failed while the writer finished the records
            err(str(e))
            code = code or 1
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM, wherever it arrived
        err(interrupts.SAID)
        try:
            client.shutdown(timeout=client.DRAIN_AFTER_INTERRUPT)
        except (DlxError, KeyboardInterrupt):
            pass
        raise typer.Exit(130) from None
    except BaseException:
        client.discard()
        raise
    if code:
        raise typer.Exit(code)


def _run(args: list[str], lines: Lines) -> int:
    """The run or sweep, its end said; the exit code."""
    from dlx.cli import jobs
    from dlx.runtime import Result

    scratch = None
    if lines.rank > 0:  # a DDP rank other than 0 (torchrun): it trains, rank 0 keeps the run dir
        import tempfile

        scratch = tempfile.mkdtemp(prefix=f"dlx-rank{lines.rank}-")
        args = [*args, f"hydra.run.dir={scratch}", "hydra.output_subdir=null"]
    try:
        done = jobs.run(args, lines)
    finally:
        if scratch:
            import shutil

            shutil.rmtree(scratch, ignore_errors=True)
    if lines.rank > 0:
        return 0
    if isinstance(done, Result):
        lines.result(done)
        typer.echo("browse runs: dlx ui (the links open there)")
        return 0
    return _sweep_end(done)


def _sweep_end(session) -> int:
    """The winner, where the results are, a line per failure not said yet; 1 if any failed."""
    summary, failed = session.summary, session.n_failed()
    if summary.get("best"):
        best, key = summary["best"], summary["key"]
        typer.echo(f"sweep: best of {summary['n_children']} runs is {best['run_name']} "
                   f"({best['run_id']}) with {key}={best['metrics'][key]:.4f}; parent run "
                   f"{session.parent_run_id}; all results in {summary['results']}")
    if session.parent_run_id or not failed:
        typer.echo("browse runs: dlx ui (the links open there)")
    for line in session.failures():  # points that ended in another process, or were lost
        err(line)
    if failed > 1:
        err(f"{failed} jobs failed")
    return 1 if failed else 0


def _show(args: list[str]) -> None:
    """--help, --cfg, --info, shell completion: Hydra prints them (hydra.main); what it writes to
    stderr while composing is held, and a composition error becomes one line."""
    import hydra

    from dlx.cli.overrides import ComposeErrors, prepare
    from dlx.config import register
    from dlx.errors import DlxError

    register()
    try:
        args = prepare(args)  # paths in any language, as typed
    except DlxError as e:
        err(str(e))
        raise typer.Exit(1) from None
    sys.argv = ["dlx train", *args]
    main = hydra.main(config_path=str(CONF_DIR), config_name="config", version_base=None)(_no_job)
    held = None if debug() else ComposeErrors(sys.stderr)

    def restore(drop: bool) -> None:  # stderr back; what Hydra wrote, dropped or written now
        if held is not None:
            sys.stderr = held.stream
            if drop:
                held.held.clear()
            elif not held.passthrough:
                held.release()

    try:
        if held is not None:
            sys.stderr = held
        main()
    except ValueError as e:  # Hydra's own argument checks (e.g. --cfg together with -m)
        if debug():
            raise
        restore(drop=True)
        err(str(e))
        raise typer.Exit(1) from None
    except SystemExit as e:  # Hydra exits 1 on a composition error, after writing it to stderr
        if held is None or not held.held:
            raise
        message = held.one_line()
        restore(drop=True)
        err(message)
        raise typer.Exit(e.code if isinstance(e.code, int) else 1) from None
    finally:
        restore(drop=False)


def _no_job(cfg) -> None:
    """The task of --help, --cfg, --info: Hydra never runs it."""
