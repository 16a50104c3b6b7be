"""K-fold cross-validation, as GridSearchCV(cv=K) scores its parameter settings.

Each fold trains a fresh model exactly as a run does (`setup`: dlx.run.fresh) on the other K-1
folds of train+val (dlx/training/cv.py cuts them) and is scored on its own; the test split is never
touched. The points of a group that differ only in trainer.epochs share each fold's training:
fold k trained once to 30 epochs is scored at epochs 10, 20 and 30 (dlx/sweep/milestones.py), the
numbers separate fits give. The folds of every network of a group train in parallel worker
processes when trainer.cv_workers says so (dlx/sweep/workers.py; docs/training.md#cross-validation
gives the rule and its measurement).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from dlx.data import Bundle
from dlx.errors import DlxError
from dlx.sweep.milestones import Milestones
from dlx.training.callbacks import Callback
from dlx.training.cv import folds, take
from dlx.training.evaluation import evaluate
from dlx.training.fit import fit

if TYPE_CHECKING:
    from dlx.sweep.workers import Workers

Setup = Callable[[DictConfig, Bundle, torch.device], tuple[torch.nn.Module, torch.optim.Optimizer, dict]]


def fold_fit(cfg, data: Bundle, rows: tuple[np.ndarray, np.ndarray], milestones: list[int],
             device: torch.device, setup: Setup, callbacks: list[Callback] = ()) -> dict[int, dict]:
    """One fold of one network: a fresh model for `cfg` trained on the fold's train rows to the
    last of `milestones` (epochs, ascending), its held-out rows scored at each milestone:
    {epoch: {val_<metric>: value}}, the numbers separate fits to those epochs give. Training does
    not look at the held-out rows unless early stopping or the lr schedule watches them."""
    fold = take(data, *rows).to(device)
    torch.manual_seed(cfg.trainer.seed)  # every fold starts from the same initial weights
    model, optimizer, options = setup(cfg, fold, device)
    watched = options["early_stopping"] is not None or options["schedule"].monitor is not None
    batch = cfg.dataset.batch_size
    cuda = [device] if device.type == "cuda" else []

    def score(net) -> dict[str, float]:
        with torch.random.fork_rng(devices=cuda):
            val, _ = evaluate(net, *fold.val, fold.spec.task, batch, fold.transform)
        return {f"val_{name}": value for name, value in val.items()}

    scores: dict[int, dict[str, float]] = {}
    at = Milestones(milestones[:-1], lambda epoch, net, _: scores.__setitem__(epoch, score(net)))
    fit(model, optimizer, fold if watched else replace(fold, val=None), milestones[-1], batch,
        cfg.trainer.seed, callbacks=[*callbacks, at], **options)
    last = score(model)  # the model as fit returns it (early stopping may have restored its best)
    return {e: scores.get(e, last) for e in milestones}  # stopped early: where it ended


def cross_validate(networks: list[tuple[DictConfig, list[int]]], data: Bundle, device: torch.device,
                   setup: Setup, callbacks: list[Callback] = (), workers: Workers | None = None,
                   reconstruct: bool = False) -> list[dict[int, dict] | BaseException]:
    """trainer.cv_folds folds of each network, each fold scored on its held-out rows at each of
    the network's milestone epochs. `networks`: (config, milestones) per network; `setup(cfg,
    bundle, device) -> (model, optimizer, fit options)` builds a fresh model the way a run does
    (regularizers, lr schedule, ...). With started `workers` the folds train in their processes
    (CPU), each reading the dataset itself (`reconstruct`: as an autoencoder's). Returns per
    network {epoch: summary} (per-fold scores, mean, std, as GridSearchCV's cv_results_), or the
    error that ended one of its folds."""
    cfg = networks[0][0]
    k, seed = cfg.trainer.cv_folds, cfg.dataset.split_seed
    splits = folds(data, k, seed)
    jobs = [(n, i) for n in range(len(networks)) for i in range(k)]
    out: dict[tuple[int, int], dict | BaseException] = {}
    if workers is not None and workers.pool is not None:
        # the longest folds first (most epochs, then smallest batches: most steps), so that no
        # worker is left with a long one while the other has nothing to do
        jobs.sort(key=lambda j: (-networks[j[0]][1][-1], networks[j[0]][0].dataset.batch_size))
        futures = {job: workers.pool.submit(fold_in_worker, OmegaConf.to_container(networks[job[0]][0]),
                                            splits[job[1]], networks[job[0]][1], reconstruct, setup)
                   for job in jobs}
        try:
            for job, future in futures.items():
                out[job] = workers.outcome(future)
        except BaseException:  # Ctrl-C: the workers' folds end with this process's
            workers.stop(now=True)
            raise
    else:
        for n, i in jobs:
            if any(isinstance(out.get((n, j)), BaseException) for j in range(i)):
                continue  # an earlier fold of this network failed: its points fail with it
            net_cfg, milestones = networks[n]
            try:
                out[n, i] = fold_fit(net_cfg, data, splits[i], milestones, device, setup, callbacks)
            except DlxError as e:
                out[n, i] = e
    results: list[dict[int, dict] | BaseException] = []
    for n, (_, milestones) in enumerate(networks):
        got = [out.get((n, i)) for i in range(k)]
        error = next((g for g in got if isinstance(g, BaseException)), None)
        results.append(error or {e: _summary([g[e] for g in got], k, seed, data, splits)
                                 for e in milestones})
    return results


def _summary(scores: list[dict], k: int, seed: int, data: Bundle, splits) -> dict:
    mean = {name: float(np.mean([s[name] for s in scores])) for name in scores[0]}
    std = {name: float(np.std([s[name] for s in scores])) for name in scores[0]}  # as GridSearchCV
    return {"k": k, "seed": seed, "stratified": data.spec.is_classification,
            "n_rows": sum(len(v) for _, v in splits), "scores": scores, "mean": mean, "std": std,
            "val_rows": [v.tolist() for _, v in splits]}


def fold_in_worker(cfg: dict, rows, milestones: list[int], reconstruct: bool, setup: Setup):
    """One fold in a fold worker process, which reads the dataset itself (once, kept for its next
    folds)."""
    from dlx.data import registry

    cfg = OmegaConf.create(cfg)
    torch.use_deterministic_algorithms(bool(cfg.trainer.deterministic))
    data, _ = registry.load_cached(cfg.dataset)
    if reconstruct:
        data = data.for_reconstruction()
    return fold_fit(cfg, data, rows, milestones, torch.device("cpu"), setup)
