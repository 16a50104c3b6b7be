"""`train(points)`: how the sweep layer trains points, one Outcome per point.

Each point's config is validated (before torch is imported: a bad config is one line and costs
nothing), the valid ones train as one group (dlx/sweep/group.py: shared epochs, stacked lrs,
cross-validation; a lone point is the one-run recipe, dlx/run.py), and each gets its Outcome:
its Result, or the one line that says why it has none. dlx's launcher calls this in the sweep's
process, a Ray task in its worker (dlx/sweep/ray_launcher.py), dlx's Hydra task for a plain run
and for the jobs of Hydra's own launchers (dlx/cli/jobs.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dlx.errors import DlxError, describe
from dlx.runtime import Point, Result, rank
from dlx.sweep.workers import Workers


@dataclass(repr=False)
class Outcome:
    """What became of one point: its Result, or the line `dlx train` prints for why it has none."""

    point: Point
    result: Result | None = None
    error: str | None = None  # the one line (redacted): the point failed, or was lost
    exception: DlxError | None = field(default=None, repr=False)  # what ended it, in the process
    #   that trained it (an error that was not dlx's is wrapped, its cause kept for DLX_DEBUG=1)
    lost: bool = False  # the process that trained it died (a Ray worker): `error` says how

    @classmethod
    def failed(cls, point: Point, e: BaseException) -> Outcome:
        from dlx.tracking.redact import redact  # an unexpected message may quote a URI

        line = redact(describe(e))
        if not isinstance(e, DlxError):
            wrapped = DlxError(line)
            wrapped.__cause__ = e
            e = wrapped
        return cls(point, error=line, exception=e)

    @property
    def objective(self) -> float | None:
        """What the sweep ranks: the Result's objective (None: the point has no Result)."""
        return self.result.objective if self.result is not None else None

    @property
    def output_dir(self) -> str:
        """Where its files are: its Hydra run dir, the key a sweep knows each point by."""
        return str(Path(self.point.runtime.output_dir).resolve())

    @property
    def overrides(self) -> list[str]:
        return list(self.point.runtime.overrides)

    def __repr__(self) -> str:
        said = f"error={self.error!r}" if self.result is None else \
            f"objective={self.objective!r}, run_id={self.result.run_id!r}"
        return f"Outcome(overrides={self.overrides!r}, {said})"


def train(points: list[Point], callbacks=(), fuse: str = "auto", workers: Workers | None = None,
          in_worker: bool = False) -> list[Outcome]:
    """Validate each point, train the valid ones as one group, an Outcome for each, in order.
    `callbacks` (the CLI's epoch progress) follow the first network; `fuse` (auto | true |
    false): whether lr points train stacked; `workers`: the fold workers to use (a sweep's),
    else cross-validation starts and stops its own; `in_worker`: this is a launcher's worker
    process, whose records must be in the store when it hands its outcomes back."""
    from dlx.config import validate

    out: list[Outcome | None] = [None] * len(points)
    valid = []
    for i, p in enumerate(points):
        try:
            validate(p.cfg)
            valid.append(i)
        except DlxError as e:
            out[i] = Outcome.failed(p, e)
    if valid:
        group = [points[i] for i in valid]
        try:
            if rank() == 0:  # the writer opens the store while this process imports torch
                from dlx.tracking.recorder import prepare

                prepare(group[0].cfg)
            from dlx.sweep.group import train_group

            trained = train_group(group, callbacks, fuse, workers)
        except Exception as e:  # noqa: BLE001 - every point of the group met it
            trained = [e] * len(group)
        for i, r in zip(valid, trained):
            out[i] = Outcome(points[i], result=r) if isinstance(r, Result) \
                else Outcome.failed(points[i], r)
        if in_worker:
            from dlx.tracking import client

            client.drain()
    return out
