"""Successive halving (`sweep=halving`): scikit-learn's HalvingGridSearchCV over a grid, with
epochs as the resource.

Every candidate (a point of the grid, trainer.epochs left out) trains `min_resources` epochs;
the best 1/factor of them (by trainer.monitor) go on to `factor` times as many epochs, and so on,
up to `max_resources`. As in scikit-learn, the number of rungs is the smaller of what the
resources allow (1 + log_factor(max/min)) and what the candidates need (1 + log_factor(n)), and
each rung keeps ceil(n / factor) candidates. A candidate that goes on continues from its own
checkpoint (trainer.resume): one MLflow child run per candidate, tagged with the rung it
reached (dlx.rung); the sweep's best is the best of the last rung.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dlx.errors import ConfigError


@dataclass
class Rung:
    number: int
    epochs: int  # the resource every candidate of this rung has trained when it ends
    candidates: int


def rungs(n_candidates: int, factor: int, min_resources: int, max_resources: int) -> list[Rung]:
    """The rungs of a halving search over n candidates, as HalvingGridSearchCV counts them."""
    if factor < 2:
        raise ConfigError(f"hydra.sweeper.factor={factor} must be >= 2 (the best 1/factor go on)")
    if not 0 < min_resources <= max_resources:
        raise ConfigError(f"hydra.sweeper.min_resources={min_resources} must be > 0 and at most "
                          f"hydra.sweeper.max_resources={max_resources}")
    possible = 1 + int(math.floor(math.log(max_resources / min_resources, factor) + 1e-9))
    required = 1 + int(math.floor(math.log(n_candidates, factor) + 1e-9)) if n_candidates > 1 else 1
    out, n = [], n_candidates
    for i in range(min(possible, required)):
        out.append(Rung(i, min(min_resources * factor**i, max_resources), n))
        n = math.ceil(n / factor)
    return out


def candidates(hydra_context, params: dict, arguments: list[str]) -> list[list[str]]:
    """The grid's points (each a list of overrides), from hydra.sweeper.params and the command
    line (which wins per key), as Hydra's basic sweeper expands them; trainer.epochs is the
    resource, not a parameter."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    given = {**{k: f"{k}={v}" for k, v in (params or {}).items()},
             **{a.split("=", 1)[0]: a for a in arguments}}
    if any(k.lstrip("+") == "trainer.epochs" for k in given):
        raise ConfigError("sweep=halving spends epochs as its resource: drop trainer.epochs and set "
                          "hydra.sweeper.min_resources / max_resources instead")
    parser = OverridesParser.create(config_loader=hydra_context.config_loader)
    (points,) = BasicSweeper.split_arguments(parser.parse_overrides(list(given.values())), None)
    return points


def survivors(scores: list[float], keep: int, mode: str) -> list[int]:
    """The indices of the `keep` best scores (a failed candidate scores the worst)."""
    order = sorted(range(len(scores)), key=lambda i: scores[i] if mode == "min" else -scores[i])
    return sorted(order[:keep])


def sweep(launcher, hydra_context, config, params: dict, arguments: list[str], factor: int,
          min_resources: int, max_resources: int, session) -> list:
    """Run the halving search through `launcher`; every rung's JobReturns. `session`: the
    sweep's (dlx/sweep/session.py), told how many points the plan has."""
    from pathlib import Path

    from hydra.core.utils import JobStatus
    from omegaconf import OmegaConf

    from dlx.tracking.ranking import worst

    points = candidates(hydra_context, params, arguments)
    plan = rungs(len(points), factor, min_resources, max_resources)
    session.progress.expect(sum(r.candidates for r in plan))
    Path(config.hydra.sweep.dir).mkdir(parents=True, exist_ok=True)
    OmegaConf.save(config, Path(config.hydra.sweep.dir) / "multirun.yaml")
    mode = config.trainer.monitor_mode
    alive, dirs, returns, job = list(range(len(points))), {}, [], 0
    for rung in plan:
        batch = []
        for i in alive:
            batch.append([*points[i], f"trainer.epochs={rung.epochs}", f"hydra.sweeper.rung={rung.number}",
                          *([f"trainer.resume={dirs[i]}"] if i in dirs else [])])
        results = launcher.launch(batch, initial_job_idx=job)
        job += len(batch)
        returns.append(results)
        scores = []
        for i, r in zip(alive, results):
            ok = r.status == JobStatus.COMPLETED and r._return_value is not None
            scores.append(float(r._return_value) if ok else worst(mode))
            dirs.setdefault(i, r.hydra_cfg.hydra.runtime.output_dir if ok else None)
        if rung is plan[-1]:
            break
        alive = [alive[k] for k in survivors(scores, plan[rung.number + 1].candidates, mode)
                 if dirs.get(alive[k])]
    return returns
