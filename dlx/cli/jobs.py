"""The Hydra adapter: `dlx train ARGS` (and the Python API's dlx.train / dlx.sweep) through Hydra,
without the terminal. `run(args, listener)` reads the arguments as `dlx train` does (Hydra's own
parser: overrides, -m, --config-dir DIR, ...), composes the config from conf/ and runs it:

    a plain run   Hydra's run, one job: `Task` -> the run's Result (its failure raised)
    a sweep (-m)  a Session (dlx/sweep/session.py) started, then Hydra's sweeper and launcher with
                  the Task, which carries the session to dlx's launchers and sweepers; after
                  them the session finishes (the parent ranks its points, the winner is refit)
                  -> the finished Session

Every job's point is trained by the sweep layer's one function (dlx/sweep/points.py). Nothing
here prints or exits: errors are raised as DlxErrors carrying the line the CLI prints (Hydra's
own errors condensed into one), Ctrl-C as KeyboardInterrupt once every run it reached has ended
KILLED. What the caller hears on the way is its `listener`'s (the CLI prints it). `--help`,
`--cfg`, `--info` and shell completion are Hydra printing: the CLI hands those to hydra.main.
"""

from __future__ import annotations

import os

from dlx.cli.overrides import prepare
from dlx.config.schemas import CONF_DIR
from dlx.errors import ConfigError, DlxError
from dlx.runtime import Point, Result, Runtime
from dlx.sweep import points
from dlx.sweep.session import Listener, Session, sweeper_objective

TASK_NAME = "train"  # hydra.job.name, as `dlx train` names it: each run dir's log is train.log
PRINTING = ("help", "hydra_help", "cfg", "info", "shell_completion", "experimental_rerun")


def run(args: list[str], listener: Listener | None = None) -> Result | Session:
    """`dlx train ARGS`: the plain run's Result, or the sweep's finished Session."""
    from hydra._internal.hydra import Hydra
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    from dlx.config import register

    listener = listener or Listener()
    parsed = _parse(prepare(list(args)))  # paths in any language, as typed
    register()
    config_name = parsed.config_name or "config"
    GlobalHydra.instance().clear()  # (a compose left behind by a caller of Hydra's compose API)
    try:
        app = Hydra.create_main_hydra2(task_name=TASK_NAME, config_search_path=_search_path(parsed))
        overrides = list(parsed.overrides)
        mode = app.get_mode(config_name=config_name, overrides=overrides)  # as hydra.main does
        if mode is None or (parsed.multirun and mode == RunMode.RUN):
            mode = RunMode.MULTIRUN if parsed.multirun else RunMode.RUN
            overrides.append(f"hydra.mode={mode.name}")
        if mode == RunMode.MULTIRUN:
            return _sweep(app, config_name, overrides, listener)
        outcome = app.run(config_name=config_name, task_function=Task(listener),
                          overrides=overrides).return_value
    except DlxError:
        raise
    except Exception as e:  # noqa: BLE001 - Hydra's (composition, a plugin): one line
        raise _one_line(e) from e
    finally:
        GlobalHydra.instance().clear()
    if outcome.exception is not None:
        raise outcome.exception
    return outcome.result


class Task:
    """What Hydra runs for each job: the job's Point (its config, and its runtime read from
    Hydra's job node), trained by the sweep layer. A plain run's Task returns the Outcome (`run`
    raises its failure: a job that raises makes Hydra write to stderr). A sweep's Task carries
    the session (dlx's launchers and sweepers read it: dlx.sweep.session.session_of) and hands
    it each job Hydra's basic launcher runs in this process; Hydra's joblib and submitit
    launchers pickle it for their worker processes, which get the sweep's parent run and no
    session (`__getstate__`)."""

    def __init__(self, listener: Listener, session: Session | None = None):
        self.listener, self.session = listener, session
        self.parent: str | None = None  # in a launcher's worker process: the sweep's parent run

    def __getstate__(self) -> dict:
        parent = self.session.parent_run_id if self.session is not None else self.parent
        return {"listener": Listener(), "session": None, "parent": parent}

    def __call__(self, cfg):
        from hydra.core.hydra_config import HydraConfig

        hydra = HydraConfig.get()
        if self.session is not None:  # a job of this process's sweep (hydra/launcher=basic)
            return self.session.job(Point(cfg, Runtime.of(hydra)), hydra.job.num)
        point = Point(cfg, Runtime.of(hydra, parent=self.parent))
        if point.runtime.sweep:  # a job in a launcher's worker process (joblib, submitit)
            (outcome,) = points.train([point], in_worker=True)
            return sweeper_objective(outcome)
        (outcome,) = points.train([point], self.listener.epochs(cfg))  # a plain run
        return outcome


def _sweep(app, config_name: str, overrides: list[str], listener: Listener) -> Session:
    """Hydra's multirun (hydra._internal.hydra.Hydra.multirun) with the sweep's session around
    its sweeper: started before the first job, finished after the last."""
    from hydra._internal.callbacks import Callbacks
    from hydra.core.plugins import Plugins
    from hydra.types import HydraContext, RunMode
    from omegaconf import OmegaConf

    cfg = app.compose_config(config_name=config_name, overrides=overrides,
                             run_mode=RunMode.MULTIRUN, with_log_configuration=True)
    callbacks = Callbacks(cfg)
    callbacks.on_multirun_start(config=cfg, config_name=config_name)
    session = Session(cfg, listener)
    try:
        session.start()
        sweeper = Plugins.instance().instantiate_sweeper(
            config=cfg, hydra_context=HydraContext(config_loader=app.config_loader,
                                                   callbacks=callbacks),
            task_function=Task(listener, session))
        returns = sweeper.sweep(arguments=OmegaConf.to_container(cfg.hydra.overrides.task))
        callbacks.on_multirun_end(config=cfg, config_name=config_name)
        session.absorb(returns)
        session.finish()
    except BaseException as e:
        session.end("KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED")
        raise
    return session


def _parse(args: list[str]):
    """`dlx train`'s arguments, read by Hydra's own parser (a mistake: one ConfigError line)."""
    from hydra._internal.utils import get_args_parser

    parser = get_args_parser()

    def error(message: str):
        raise ConfigError(f"dlx train: {message}")

    parser.error = error
    parsed = parser.parse_intermixed_args(args)  # (--config-dir DIR before or after overrides)
    asked = [name for name in PRINTING if getattr(parsed, name, None)]
    if asked:
        raise ConfigError(f"--{asked[0].replace('_', '-')} prints, it trains nothing: use "
                          "`dlx train` for it")
    return parsed


def _search_path(parsed):
    """Where Hydra looks for configs: conf/ (or --config-path), with --config-dir DIR's options
    joining every group, as hydra.main builds it."""
    from hydra._internal.utils import create_automatic_config_search_path
    from hydra.core.config_search_path import SearchPathQuery

    search_path = create_automatic_config_search_path(__file__, None,
                                                      parsed.config_path or str(CONF_DIR))
    if parsed.config_dir is not None:
        folder = os.path.abspath(parsed.config_dir)
        if not os.path.isdir(folder):
            raise ConfigError(f"Additional config directory '{folder}' not found")
        search_path.prepend(provider="command-line", path=f"file://{folder}",
                            anchor=SearchPathQuery(provider="schema"))
    return search_path


def _one_line(e: Exception) -> DlxError:
    """A Hydra error as the one line `dlx train` prints: what Hydra itself would print for it
    (its message, or the traceback's last lines), condensed. A composition error (a bad
    override, an unknown option) is a ConfigError."""
    import traceback

    from hydra.errors import CompactHydraException, HydraException
    from omegaconf.errors import OmegaConfBaseException

    from dlx.cli.overrides import condense

    if isinstance(e, CompactHydraException):
        text = str(e) + "\n"
        if isinstance(e.__cause__, OmegaConfBaseException):
            text += str(e.__cause__) + "\n"
    else:
        text = "".join(traceback.format_exception(e))
    kind = ConfigError if isinstance(e, (HydraException, OmegaConfBaseException)) else DlxError
    return kind(condense(text))
