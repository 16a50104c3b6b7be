"""K-fold cross-validation on train+val, as GridSearchCV(cv=K) scores its parameter settings.

The train and val splits are pooled and cut into K folds (scikit-learn's StratifiedKFold for
classification, KFold otherwise, shuffled with dataset.split_seed). Each fold trains a fresh model
through `fit` (unchanged) on the other K-1 folds and is scored on its own; the test split is never
touched. The points of a sweep that differ only in trainer.epochs share each fold's training:
fold k trained once to 30 epochs is scored at epochs 10, 20 and 30 (milestones), the numbers
separate fits give. The folds of every network of a group train in parallel worker processes
when trainer.cv_workers says so (docs/training.md#cross-validation gives the rule and its
measurement). Preprocessing fitted on train rows (CSV scalers, the IMDB vocabulary) is refitted per
fold through Bundle.resplit, so no fold sees statistics of its held-out rows.
"""

from __future__ import annotations

import copy
import multiprocessing as mp
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from typing import Callable

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from dlx.data import Bundle
from dlx.errors import DataError, DlxError, TrainingError
from dlx.training.evaluation import evaluate
from dlx.training.fit import Callback, fit


def folds(data: Bundle, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train rows, val rows) per fold, as positions in train+val (train first, then val)."""
    from sklearn.model_selection import KFold, StratifiedKFold

    y = torch.cat([data.train[1], data.val[1]]) if data.val is not None else data.train[1]
    y = y.cpu().numpy()
    if not data.spec.is_classification:
        if len(y) < k:
            raise DataError(f"trainer.cv_folds={k} but train+val holds {len(y)} rows: "
                            "lower trainer.cv_folds")
        return list(KFold(k, shuffle=True, random_state=seed).split(y))
    y = y.reshape(len(y), -1)[:, 0]  # binary labels are (N, 1)
    counts = np.bincount(y.astype(np.int64))
    smallest = int(counts[counts > 0].min())
    if smallest < k:
        raise DataError(f"trainer.cv_folds={k} but a class has only {smallest} rows in train+val, "
                        "too few to put one in every fold: lower trainer.cv_folds")
    return list(StratifiedKFold(k, shuffle=True, random_state=seed).split(y, y))


def take(data: Bundle, train_rows: np.ndarray, val_rows: np.ndarray | None) -> Bundle:
    """A Bundle whose train/val are these rows of train+val; the test split stays as it is.
    Datasets with fitted preprocessing refit it on the new train rows (Bundle.resplit)."""
    if data.resplit is not None:
        return data.resplit(train_rows, val_rows)
    x, y = data.train
    if data.val is not None:
        x, y = torch.cat([x, data.val[0]]), torch.cat([y, data.val[1]])
    pick = lambda rows: (x[torch.as_tensor(rows)], y[torch.as_tensor(rows)])  # noqa: E731
    n_val = 0 if val_rows is None else len(val_rows)
    return replace(data, train=pick(train_rows), val=pick(val_rows) if n_val else None,
                   info={**data.info, "n_train": len(train_rows), "n_val": n_val})


def refit_data(data: Bundle) -> Bundle:
    """What the refit trains on: all of train+val as the train split, no val split (with its
    preprocessing refitted on those rows). `dlx eval`/`predict` rebuild a CV run's data this way."""
    n = len(data.train[0]) + (0 if data.val is None else len(data.val[0]))
    return take(data, np.arange(n), None)


class _Milestones(Callback):
    """Scores the held-out rows with a copy of the model at each earlier milestone epoch (with
    early stopping's best weights when it restores them), as a fit that ended there would; the
    training goes on untouched (under fork_rng)."""

    def __init__(self, milestones: list[int], score: Callable[[torch.nn.Module], dict]):
        self.milestones, self.score = milestones, score
        self.scores: dict[int, dict[str, float]] = {}
        self.loop = None

    def on_fit_start(self, loop) -> None:
        self.loop = loop

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        if epoch in self.milestones:
            es, model = self.loop.early_stopping, self.loop.model
            self.scores[epoch] = self.score(es.copy_as_ended(model) if es else copy.deepcopy(model))


def fold_fit(cfg, data: Bundle, rows: tuple[np.ndarray, np.ndarray], milestones: list[int],
             device: torch.device, setup: Setup, callbacks: list[Callback] = ()) -> dict[int, dict]:
    """One fold of one network: a fresh model for `cfg` trained on the fold's train rows to the
    last of `milestones` (epochs, ascending), its held-out rows scored at each milestone:
    {epoch: {val_<metric>: value}}, the numbers separate fits to those epochs give (the
    milestones share the training only where nothing reads the epoch count: dlx's launcher
    groups points only then). Training does not look at the held-out rows unless early stopping
    or the lr schedule watches them."""
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

    at = _Milestones(milestones[:-1], score)
    fit(model, optimizer, fold if watched else replace(fold, val=None), milestones[-1], batch,
        cfg.trainer.seed, callbacks=[*callbacks, at], **options)
    last = score(model)  # the model as fit returns it (early stopping may have restored its best)
    return {e: at.scores.get(e, last) for e in milestones}  # stopped early: where it ended


def cross_validate(networks: list[tuple[DictConfig, list[int]]], data: Bundle, device: torch.device,
                   setup: Setup, callbacks: list[Callback] = (), workers: int = 1,
                   reconstruct: bool = False) -> list[dict[int, dict] | BaseException]:
    """trainer.cv_folds folds of each network, each fold scored on its held-out rows at each of
    the network's milestone epochs. `networks`: (config, milestones) per network; `setup(cfg,
    bundle, device) -> (model, optimizer, fit options)` builds a fresh model the way a run does
    (regularizers, lr schedule, ...). With `workers` > 1 the folds train in that many worker
    processes (CPU), each reading the dataset itself (`reconstruct`: as an autoencoder's).
    Returns per network {epoch: summary} (per-fold scores, mean, std, as GridSearchCV's
    cv_results_), or the error that ended one of its folds."""
    cfg = networks[0][0]
    k, seed = cfg.trainer.cv_folds, cfg.dataset.split_seed
    splits = folds(data, k, seed)
    jobs = [(n, i) for n in range(len(networks)) for i in range(k)]
    out: dict[tuple[int, int], dict | BaseException] = {}
    if workers > 1:
        pool = _pool(workers)
        # the longest folds first (most epochs, then smallest batches: most steps), so that no
        # worker is left with a long one while the other has nothing to do
        jobs.sort(key=lambda j: (-networks[j[0]][1][-1], networks[j[0]][0].dataset.batch_size))
        futures = {job: pool.submit(_fold_in_worker, OmegaConf.to_container(networks[job[0]][0]),
                                    splits[job[1]], networks[job[0]][1], reconstruct, setup)
                   for job in jobs}
        try:
            for job, future in futures.items():
                out[job] = _outcome(future)
        except BaseException:  # Ctrl-C: the workers' folds end with this process's
            _stop(workers)
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


Setup = Callable[[DictConfig, Bundle, torch.device], tuple[torch.nn.Module, torch.optim.Optimizer, dict]]


def _summary(scores: list[dict], k: int, seed: int, data: Bundle, splits) -> dict:
    mean = {name: float(np.mean([s[name] for s in scores])) for name in scores[0]}
    std = {name: float(np.std([s[name] for s in scores])) for name in scores[0]}  # as GridSearchCV
    return {"k": k, "seed": seed, "stratified": data.spec.is_classification,
            "n_rows": sum(len(v) for _, v in splits), "scores": scores, "mean": mean, "std": std,
            "val_rows": [v.tolist() for _, v in splits]}


# ------------------------------------------------------------------- folds in worker processes
_POOLS: dict[int, ProcessPoolExecutor] = {}  # one pool per process and size, reused by its groups


def _pool(workers: int) -> ProcessPoolExecutor:
    if workers not in _POOLS:
        threads = max(1, (os.cpu_count() or 1) // workers)  # the cores shared, not oversubscribed
        _POOLS[workers] = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"),
                                              initializer=_worker_init, initargs=(threads,))
    return _POOLS[workers]


def start_workers(workers: int) -> None:
    """Start the fold workers now, so that their imports (torch, dlx) overlap what the training
    process does before its folds (starting the group's runs)."""
    if workers > 1:
        pool = _pool(workers)
        for _ in range(workers):  # one process is spawned per task while none is idle
            pool.submit(int)


def shutdown() -> None:
    """Stop the fold workers (dlx's console script calls it: it exits without tearing down)."""
    while _POOLS:  # idle by now: each worker exits when told to
        _POOLS.popitem()[1].shutdown(wait=True)


def _worker_init(threads: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the training process's to handle
    torch.set_num_threads(threads)
    parent = os.getppid()

    def orphaned() -> None:  # the training process died (SIGKILL): so does its worker
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(1)

    threading.Thread(target=orphaned, daemon=True).start()


def _fold_in_worker(cfg: dict, rows, milestones: list[int], reconstruct: bool, setup: Setup):
    from dlx.data import registry

    cfg = OmegaConf.create(cfg)
    torch.use_deterministic_algorithms(bool(cfg.trainer.deterministic))
    data, _ = registry.load_cached(cfg.dataset)  # read once per worker, kept for its next folds
    if reconstruct:
        data = data.for_reconstruction()
    return fold_fit(cfg, data, rows, milestones, torch.device("cpu"), setup)


def _stop(workers: int) -> None:
    pool = _POOLS.pop(workers)
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for p in processes:
        p.terminate()


def _outcome(future) -> dict | BaseException:
    try:
        return future.result()
    except DlxError as e:  # the fold's own failure (a non-finite loss, ...)
        return e
    except BrokenProcessPool as e:
        _POOLS.clear()
        raise TrainingError(f"a cross-validation worker process died ({e}): rerun with "
                            "trainer.cv_workers=1 to train the folds in this process") from None
