"""`dlx train`: the Hydra entry point. Arguments are Hydra overrides, handed to Hydra unchanged
(-m, --cfg job, +key, ~key, hydra/launcher=...); every job runs `dlx.run.train`.

The tracking writer is started first, so that mlflow imports on another core while this process
imports Hydra and torch; at the end dlx waits for it to finish (nothing is lost).
"""

from __future__ import annotations

import sys

import typer

from dlx import interrupts
from dlx.cli import progress
from dlx.cli.app import CONF_DIR, app, debug, err
from dlx.cli.overrides import ComposeErrors, prepare
from dlx.runtime import rank

NO_JOB = {"--help", "-h", "--cfg", "-c", "--info", "-i", "--shell-completion", "-sc", "--hydra-help"}
DRAIN_AFTER_INTERRUPT = 30  # seconds dlx waits for the writer after Ctrl-C (it then goes on alone)


class Overrides(typer.core.TyperCommand):
    """A command whose extra arguments are Hydra overrides: <TAB> completes `group=option` from
    conf/ and the chosen options' `group.key=` (dlx/cli/completion.py; no torch or mlflow)."""

    def shell_complete(self, ctx, incomplete):
        from dlx.cli.completion import overrides

        return [typer.core.CompletionItem(c)
                for c in overrides(ctx.args, incomplete, ctx.params.get("config_dir"))]


class TrainJobs:
    """One `dlx train` process: its DDP rank, the failures of its jobs, and Hydra's composition
    errors held back until a job starts."""

    def __init__(self):
        self.rank = rank()  # under torchrun several processes run this; rank 0 speaks
        self.failures: list[str] = []
        self.stderr: ComposeErrors | None = None

    def __getstate__(self) -> dict:
        """What a launcher's worker process gets (joblib pickles the task): not this process's
        stderr, which Hydra's composition is still writing through."""
        return {**self.__dict__, "stderr": None}

    def fail(self, message: str) -> None:
        self.failures.append(message)
        if self.rank == 0:  # every rank meets the same problem: say it once
            err(message)

    def task(self, cfg, group: list = (), results: list | None = None, fuse: str = "auto",
             result=None) -> float | None:
        """What Hydra runs for every job: `dlx.run.train_group`, its problems as one line each. A
        failed job returns the worst finite objective, so a sweeper ranks it last and goes on
        (a NaN or None would stop Optuna). dlx's launcher gives the first job of a group the
        other points that share its training (`group`; their results go to `results`), and each
        of those jobs the `result` it got."""
        if self.stderr is not None:
            self.stderr.release()
        from hydra.core.hydra_config import HydraConfig

        from dlx.sweep.launcher import progress as sweep

        hydra = HydraConfig.get()
        line = sweep.begin(hydra.job.num, list(hydra.overrides.task)) \
            if hydra.job.get("num") is not None else None
        if line and self.rank == 0:
            typer.echo(line)  # point 7/27 (...) ... ~1m40s left
        worst = sys.float_info.max if cfg.trainer.monitor_mode == "min" else -sys.float_info.max
        try:
            if result is None:
                result = self._train(cfg, list(group), results, fuse)
            return self._say(result, worst)
        finally:
            if line:
                sweep.end()

    def _train(self, cfg, group: list, results: list | None, fuse: str):
        """This job's Result (or the error it met), training `group` with it; their results
        (or errors) in order into `results`."""
        from hydra.core.hydra_config import HydraConfig

        from dlx.config import validate
        from dlx.errors import ConfigError, DlxError
        from dlx.runtime import Point, Runtime

        points = [Point(cfg, Runtime.of(HydraConfig.get())), *group]
        out: list = [None] * len(points)
        valid = []
        for i, p in enumerate(points):
            try:
                validate(p.cfg)  # a bad config is reported before torch is imported
                if p.runtime.sweep and p.cfg.trainer.cv_folds > 1 and \
                        p.cfg.trainer.cv_refit == "best" and not p.cfg.tracking.enabled:
                    raise ConfigError(
                        "trainer.cv_refit=best refits the sweep's winner, which is picked from "
                        "the tracking store, and tracking.enabled=false: turn tracking on, or set "
                        "trainer.cv_refit=all (or none)")
                valid.append(i)
            except DlxError as e:
                out[i] = e
        if valid:
            try:
                if self.rank == 0:
                    from dlx.tracking.recorder import prepare

                    prepare(cfg)  # the writer opens the store while this process imports torch
                from dlx.run import train_group

                trained = train_group([points[i] for i in valid],
                                      progress.epochs(cfg.trainer.progress), fuse)
            except Exception as e:  # noqa: BLE001 - every point of the group met it
                trained = [e] * len(valid)
            for i, r in zip(valid, trained):
                out[i] = r
            from dlx.sweep.callback import in_worker
            from dlx.tracking import client

            if in_worker():  # a launcher's worker process: its records are complete when it returns
                client.drain()
        if results is not None:
            results.extend(out[1:])
        return out[0]

    def _say(self, result, worst: float) -> float | None:
        """A job's Result as the lines the user reads, its objective for the sweeper; an error
        as one line, and the worst objective."""
        from dlx.errors import DlxError

        if isinstance(result, BaseException):
            if debug():
                raise result
            from dlx.errors import describe
            from dlx.tracking.redact import redact  # an unexpected message may quote a URI

            self.fail(str(result) if isinstance(result, DlxError) else redact(describe(result)))
            return worst
        if self.rank == 0:
            test = "  ".join(f"{k}={v:.4f}" for k, v in result.test.items())
            where = (f"run {result.run_name} ({result.run_id})" if result.run_id
                     else "not tracked (tracking.enabled=false)")
            typer.echo(f"{test}\n{where}; files in {result.output_dir}")
            if result.link:
                typer.echo(f"  {result.link}")
        return result.objective

    def run(self, args: list[str]) -> None:
        """Hydra's main over `args`; exits 1 when a job failed, 130 when interrupted."""
        import hydra

        from dlx.config import register
        from dlx.errors import DlxError
        from dlx.sweep import launcher
        from dlx.sweep.callback import SweepTracking

        launcher.say = lambda line: typer.echo(f"sweep: {line}")
        register()
        main = hydra.main(config_path=str(CONF_DIR), config_name="config", version_base=None)(self.task)
        try:
            args = prepare(args)  # paths in any language, as typed
        except DlxError as e:
            err(str(e))
            raise typer.Exit(1)
        sys.argv = ["dlx train", *args]
        scratch = None
        if self.rank > 0:  # a DDP rank other than 0 (torchrun): it trains, rank 0 keeps the run dir
            import tempfile

            scratch = tempfile.mkdtemp(prefix=f"dlx-rank{self.rank}-")
            sys.argv += [f"hydra.run.dir={scratch}", "hydra.output_subdir=null"]
        self.stderr = None if debug() else ComposeErrors(sys.stderr)
        try:
            if self.stderr is not None:
                sys.stderr = self.stderr
            main()
        except ValueError as e:  # Hydra's own argument checks (e.g. --cfg together with -m)
            if debug():
                raise
            self._restore_stderr(clear=True)
            err(str(e))
            raise typer.Exit(1)
        except SystemExit as e:  # Hydra exits 1 on a composition error, after writing it to stderr
            if self.stderr is None or self.stderr.passthrough or not self.stderr.held:
                raise
            message = self.stderr.one_line()
            self._restore_stderr(clear=True)
            err(message)
            raise typer.Exit(e.code if isinstance(e.code, int) else 1)
        finally:
            self._restore_stderr()
            if scratch:
                import shutil

                shutil.rmtree(scratch, ignore_errors=True)
        if self.rank > 0:
            raise typer.Exit(1 if self.failures else 0)
        if SweepTracking.last.get("refit"):
            self._refit(*SweepTracking.last["refit"])
        self._report(SweepTracking.last)

    def _refit(self, run_id: str, uri: str) -> None:
        """trainer.cv_refit=best: the sweep's winner trained on all of train+val, into its run."""
        from dlx.run import refit

        typer.echo(f"sweep: refitting the winner ({run_id}) on all of train+val "
                   "(trainer.cv_refit=best)")
        try:
            result = refit(run_id, uri)
        except Exception as e:  # noqa: BLE001 - reported as one line, as a job's failure
            result = e
        self._say(result, 0.0)

    def _restore_stderr(self, clear: bool = False) -> None:
        if self.stderr is not None:
            sys.stderr = self.stderr.stream
            if clear:
                self.stderr.held.clear()
            elif not self.stderr.passthrough:
                self.stderr.release()

    def _report(self, sweep: dict) -> None:
        if sweep.get("best"):
            b, key = sweep["best"], sweep["key"]
            typer.echo(f"sweep: best of {sweep['n_children']} runs is {b['run_name']} "
                       f"({b['run_id']}) with {key}={b['metrics'][key]:.4f}; parent run "
                       f"{sweep['parent_run_id']}; all results in {sweep['results']}")
        if sweep.get("parent_run_id") or not self.failures:
            typer.echo("browse runs: dlx ui (the links open there)")
        from dlx.sweep.launcher import lost  # points whose worker died (Ray): dir -> why

        for name, error, output_dir in sweep.get("failed", [])[len(self.failures):]:
            # a job in a worker process (submitit, Ray, joblib)
            self.fail(f"{name}: {lost.pop(output_dir, error)}")
        for output_dir, why in lost.items():  # lost before its run started
            self.fail(f"{output_dir}: {why}")
        if self.failures:
            if len(self.failures) > 1:
                err(f"{len(self.failures)} jobs failed")
            raise typer.Exit(1)


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
    jobs = TrainJobs()
    if jobs.rank == 0 and not NO_JOB & set(ctx.args):
        client.start()  # mlflow imports in the writer while this process imports torch
    code = 0
    try:
        try:
            jobs.run(ctx.args)
        except typer.Exit as e:
            code = e.exit_code
        try:
            client.shutdown()  # everything recorded before dlx exits
        except DlxError as e:  # the store failed while the writer finished the records
            err(str(e))
            code = code or 1
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM, wherever it arrived
        err("interrupted; the run was marked KILLED")
        try:
            client.shutdown(timeout=DRAIN_AFTER_INTERRUPT)
        except (DlxError, KeyboardInterrupt):
            pass
        raise typer.Exit(130)
    except BaseException:
        client.discard()
        raise
    if code:
        raise typer.Exit(code)
