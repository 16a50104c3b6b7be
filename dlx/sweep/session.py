"""A sweep's session: one object per `dlx train -m` (or `dlx.sweep(...)`), created where the
sweep starts (dlx/cli/jobs.py) and handed to dlx's launchers and sweepers on Hydra's task
function, the one object Hydra gives them. It holds what the sweep knows while it runs:

    start   its parent MLflow run, created with the store and the experiment before any point
            starts (parallel points never race to create them)
    train   points trained in this process, nested under the parent; each Outcome recorded
            (in the order the launchers hand them back) and heard by the listener
    finish  the parent ranks its children (results.csv, objective.png, dlx.best_run_id), the
            winner is refit (trainer.cv_refit=best), the fold workers stop

and its progress (`point 7/27 (...) … ~1m40s left`), which points failed or were lost and why.
No class or module global holds any of it; another process learns the parent run only from
what it is handed (a Ray task's points, the task Hydra's joblib and submitit launchers pickle).
Torch-free: the CLI starts a session before any config is trained.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

from omegaconf import DictConfig

from dlx.errors import ConfigError
from dlx.runtime import Point, Result, Runtime
from dlx.sweep import points
from dlx.sweep.points import Outcome
from dlx.tracking import messages as m
from dlx.sweep.workers import Workers
from dlx.tracking.ranking import best, is_worst, objective_key, worst


class Listener:
    """What a caller hears while dlx trains: the CLI prints it (dlx/cli/train.py), the Python API
    hands lines to its `progress=` argument. Silent unless a method is overridden."""

    def point(self, text: str) -> None:
        """A point starts in this process: `point 7/27 (optimizer.lr=0.01) … ~1m40s left`."""

    def line(self, text: str) -> None:
        """A line about the sweep: a point back from another machine, why points are not
        shared, the winner being refit."""

    def outcome(self, outcome: Outcome) -> None:
        """A point has ended in this process: its Result, or its error."""

    def epochs(self, cfg: DictConfig) -> list:
        """The fit callbacks that show a run's epochs (trainer.progress)."""
        return []


class Progress:
    """Where the sweep is: `point 7/27 (the overrides that differ) … ~1m40s left`."""

    def __init__(self):
        self.total = 0  # points the sweep will run (a sweeper that knows more raises it)
        self.done = 0
        self.started: float | None = None
        self.swept: set[str] = set()  # the keys whose values differ between points

    def expect(self, total: int, batch: Sequence[Sequence[str]] = ()) -> None:
        self.total = max(self.total, total)
        values: dict[str, set[str]] = {}
        for overrides in batch:
            for o in overrides:
                key, _, value = o.partition("=")
                values.setdefault(key, set()).add(value)
        self.swept |= {k for k, v in values.items() if len(v) > 1}

    def begin(self, num: int, overrides: list[str]) -> str | None:
        """The line that announces point `num` (0-based), or None outside a known sweep."""
        if not self.total:
            return None
        self.started = self.started or time.monotonic()
        return self.label(num, overrides) + self.left()

    def label(self, num: int, overrides: list[str]) -> str:
        """`point 7/27 (the overrides that differ between points)`"""
        shown = [o for o in overrides if o.partition("=")[0] in self.swept] or overrides
        return f"point {num + 1}/{self.total} ({' '.join(shown)})"

    def left(self) -> str:
        """` … ~1m40s left`, from the pace of the points done so far ('' before the first)."""
        if not self.done or self.started is None:
            return ""
        seconds = (time.monotonic() - self.started) / self.done * (self.total - self.done)
        return f" … ~{int(seconds // 60)}m{int(seconds % 60):02d}s left" if seconds >= 60 \
            else f" … ~{seconds:.0f}s left"

    def end(self) -> None:
        self.done += 1


class Session:
    """One sweep: `config` is the multirun's composed config (with its hydra node)."""

    def __init__(self, config: DictConfig, listener: Listener | None = None):
        self.config = config
        self.listener = listener or Listener()
        self.progress = Progress()
        self.parent_run_id: str | None = None
        self.outcomes: dict[str, Outcome] = {}  # output dir -> what became of that point
        self.heard: set[str] = set()  # the output dirs whose outcome the listener has heard
        self.summary: dict[str, Any] = {}  # the parent's ranking (FinishSweep's answer)
        self.refitted: Outcome | None = None  # trainer.cv_refit=best: the winner, refit
        self.workers = Workers()  # fold workers, kept for the sweep's next groups
        self.closed = False  # the parent has ended

    @property
    def mode(self) -> str:
        return self.config.trainer.monitor_mode

    # -- start
    def start(self) -> None:
        """The parent run, before any point starts (none with tracking off; a shared Optuna
        study's sweeper starts or takes up the study's own, `start_parent`)."""
        if self.config.tracking.enabled and not shared_study(self.config):
            self.start_parent()

    def start_parent(self, run_id: str | None = None) -> str:
        """The sweep's parent run (or `run_id`, another process's, taken up)."""
        from dlx.tracking import client, resolve_uri

        config = self.config
        sweep_dir = Path(config.hydra.sweep.dir).resolve()  # (the writer has a cwd of its own)
        self.parent_run_id = client.writer().call(m.StartSweep(
            resolve_uri(config.tracking.uri), config.tracking.experiment, f"sweep_{sweep_dir.name}",
            {"dlx.kind": "sweep", "dlx.output_dir": str(sweep_dir),
             "dlx.monitor": config.trainer.monitor},
            {"sweep.overrides": " ".join(config.hydra.overrides.task)}, str(sweep_dir), run_id))
        return self.parent_run_id

    # -- points
    def nest(self, point: Point) -> Point:
        """The point as a child of this sweep's parent run."""
        return Point(point.cfg, replace(point.runtime, parent=self.parent_run_id))

    def begin(self, num: int, overrides: list[str]) -> None:
        """Point `num` starts in this process: its line."""
        line = self.progress.begin(num, overrides)
        if line:
            self.listener.point(line)

    def train(self, group: list[Point], fuse: str = "auto") -> list[Outcome]:
        """Points trained together in this process (dlx/sweep/points.py), as the parent's
        children; the caller records each outcome (`record`) in its job's turn."""
        group = [self.nest(p) for p in group]
        return points.train(group, self.listener.epochs(group[0].cfg), fuse, self.workers)

    def record(self, outcome: Outcome, num: int = 0, node: str | None = None) -> float | None:
        """A point's outcome, in its job's turn (job `num`): the listener hears it, or for a
        point trained on another machine (`node`) or lost with it, one line with its score; the
        objective its sweeper gets."""
        self.outcomes[outcome.output_dir] = outcome
        self.progress.end()
        if node is None and not outcome.lost:
            self.heard.add(outcome.output_dir)
            self.listener.outcome(outcome)
        else:  # `point 3/8 (...) on 10.0.0.2: val_loss=0.1234 … ~20s left`
            trainer = outcome.point.cfg.trainer
            if outcome.lost:
                said = f"lost: {outcome.error}"
            elif outcome.objective is None:
                said = f"on {node}: failed"
            else:
                key = objective_key(trainer.monitor, trainer.cv_folds)
                said = f"on {node}: {key}={outcome.objective:.4f}"
            self.listener.line(f"{self.progress.label(num, outcome.overrides)} {said}"
                               f"{self.progress.left()}")
        return sweeper_objective(outcome)

    def job(self, point: Point, num: int) -> float | None:
        """A job that Hydra's own launcher runs in this process: the point trained alone."""
        self.begin(num, list(point.runtime.overrides))
        (outcome,) = self.train([point])
        return self.record(outcome)

    def absorb(self, returns) -> None:
        """The jobs the sweeper got back that no dlx code saw end (Hydra's joblib and submitit
        launchers run them in worker processes): their objective, from Hydra's JobReturns."""
        from hydra.core.utils import JobReturn, JobStatus

        def walk(x):
            if isinstance(x, JobReturn):
                yield x
            elif isinstance(x, (list, tuple)):
                for y in x:
                    yield from walk(y)

        for ret in walk(returns):
            if ret.hydra_cfg is None or ret.cfg is None:
                continue
            hydra = ret.hydra_cfg.hydra
            where = str(Path(hydra.runtime.output_dir).resolve())
            if where in self.outcomes:
                continue
            point = Point(ret.cfg, Runtime.of(hydra, where, self.parent_run_id))
            value = ret._return_value if ret.status == JobStatus.COMPLETED else None
            failed = ret.status != JobStatus.COMPLETED or is_worst(value)
            self.outcomes[where] = Outcome(point) if failed else Outcome(
                point, Result(value, {}, point.epochs, where))

    # -- the end
    def finish(self) -> None:
        """The sweep's end: the parent ranks its children and ends (their runs of lost points
        end KILLED), the winner is refit (trainer.cv_refit=best), the fold workers stop."""
        try:
            config = self.config
            if self.parent_run_id:
                from dlx.tracking import client

                lost = tuple((d, o.error) for d, o in self.outcomes.items() if o.lost)
                self.summary = client.writer().call(m.FinishSweep(
                    self.parent_run_id,
                    objective_key(config.trainer.monitor, config.trainer.get("cv_folds", 0)),
                    self.mode, str(Path(config.hydra.sweep.dir).resolve()), lost))
            self.closed = True
            if config.trainer.get("cv_folds", 0) > 1 and config.trainer.cv_refit == "best":
                self.refit()
        finally:
            self.workers.stop()

    def end(self, status: str) -> None:
        """The sweep stopped early (an error, Ctrl-C): the fold workers stop, and the parent
        ends `status` (FAILED, KILLED) unless it has ended already."""
        self.workers.stop(now=status == "KILLED")
        if self.parent_run_id and not self.closed:
            from dlx.tracking import client

            self.closed = True
            client.writer().send(m.EndRun(self.parent_run_id, status))

    def winner(self) -> Outcome | None:
        """The best point: the parent's pick (dlx.best_run_id) when it has one, else the best
        of the points this process knows, by the same rule (dlx.tracking.ranking.best)."""
        known = [o for o in self.outcomes.values() if o.result is not None]
        picked = (self.summary.get("best") or {}).get("run_id")
        if picked:  # (a halving candidate's last rung: the last of its outcomes)
            return next((o for o in reversed(known) if o.result.run_id == picked), None)
        rows = [{"status": "FINISHED", "metrics": {"objective": o.objective}, "outcome": o,
                 "tags": {"dlx.rung": o.point.runtime.rung or 0}}
                for o in known if o.objective is not None]
        top = best(rows, "objective", self.mode)
        return top["outcome"] if top else None

    def refit(self) -> None:
        """trainer.cv_refit=best: the winner trained again on all of train+val, into its own
        run (as GridSearchCV(refit=True) refits best_params_), from the config this session
        trained it with."""
        winner = self.winner()
        if winner is None:
            return
        self.listener.line(f"refitting the winner ({winner.result.run_id or winner.output_dir}) "
                           "on all of train+val (trainer.cv_refit=best)")
        runtime = replace(winner.point.runtime, refit=True, run_id=winner.result.run_id,
                          n_jobs=None, trial=None, started=time.time())
        (self.refitted,) = points.train([Point(winner.point.cfg, runtime)],
                                        self.listener.epochs(winner.point.cfg), "false", self.workers)
        self.listener.outcome(self.refitted)

    def failures(self) -> list[str]:
        """A line for every point that failed or was lost and that the listener has not heard
        (it ended in another process), named by its run where it has one."""
        stored = {d: (name, error) for name, error, d in self.summary.get("failed", [])}
        lines = []
        for d, o in self.outcomes.items():
            if o.result is None and d not in self.heard:
                name, error = stored.get(d, (d, None))
                lines.append(f"{name}: {o.error or error or 'failed in a launcher worker process'}")
        lines += [f"{name}: {error}" for d, (name, error) in stored.items() if d not in self.outcomes]
        return lines

    def n_failed(self) -> int:
        """Points that failed or were lost (the winner's refit counts as one)."""
        stored = {d for _, _, d in self.summary.get("failed", [])}
        return sum(o.result is None for o in self.outcomes.values()) + \
            len(stored - set(self.outcomes)) + \
            (self.refitted is not None and self.refitted.result is None)


def sweeper_objective(outcome: Outcome) -> float | None:
    """What a sweeper gets for a point: its objective, or the worst one if it failed."""
    if outcome.result is None:
        return worst(outcome.point.cfg.trainer.monitor_mode)
    return outcome.objective


def shared_study(config: DictConfig) -> bool:
    """sweep=optuna on a storage of the user's (PostgreSQL, ...): its workers, on any machine,
    share the study and its one parent run, which the sweeper starts or takes up
    (dlx/sweep/optuna_study.py)."""
    sweeper = config.hydra.get("sweeper") or {}
    return "study_name" in sweeper and sweeper.get("storage") is not None


def session_of(task_function) -> Session:
    """The session dlx's Hydra task carries to dlx's launchers and sweepers."""
    session = getattr(task_function, "session", None)
    if session is None:
        raise ConfigError("dlx's launchers and sweepers run the jobs of `dlx train -m` (or "
                          "dlx.sweep): their task must be dlx's")
    return session
