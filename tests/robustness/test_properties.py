"""Property tests (hypothesis): config validation accepts exactly the valid values, and the
train/val/test splits and CV folds are disjoint, complete, stratified and seeded.

Configs are composed in this process with Hydra's compose API over the real conf/ tree (the
config `dlx train` runs), so no example spawns a process. The validity rules below are written
from the README and from what torch/sklearn accept, independently of dlx/config/.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from dlx.config import validate
from dlx.data.bundle import Bundle, Spec, holdout, split
from dlx.errors import ConfigError, DataError
from dlx.training.cv import folds

SETTINGS = settings(max_examples=100, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


# ------------------------------------------------------------------------- config validation
def finite(rule):
    return lambda v: math.isfinite(v) and rule(v)


positive, non_negative = finite(lambda v: v > 0), finite(lambda v: v >= 0)
open_unit, half_open_unit = finite(lambda v: 0 < v < 1), finite(lambda v: 0 <= v < 1)


def seed_range(v) -> bool:  # numpy/sklearn seeds, torch.manual_seed
    return 0 <= v < 2**32


INT, FLOAT = "int", "float"
# key -> (kind, the group options it needs, valid?)
RULES = {
    "trainer.epochs": (INT, (), lambda v: v > 0),
    "trainer.cv_folds": (INT, (), lambda v: v == 0 or v >= 2),
    "trainer.checkpoint_every": (INT, (), lambda v: v >= 0),
    "trainer.seed": (INT, (), seed_range),
    "trainer.grad_clip": (FLOAT, (), non_negative),
    "optimizer.lr": (FLOAT, (), positive),
    "optimizer.weight_decay": (FLOAT, (), non_negative),
    "optimizer.eps": (FLOAT, (), non_negative),
    "optimizer.momentum": (FLOAT, ("optimizer=sgd",), non_negative),
    "optimizer.alpha": (FLOAT, ("optimizer=rmsprop",), non_negative),
    "dataset.batch_size": (INT, (), lambda v: v > 0),
    "dataset.test_fraction": (FLOAT, (), open_unit),
    "dataset.val_fraction": (FLOAT, (), half_open_unit),
    "dataset.split_seed": (INT, (), seed_range),
    "dataset.n_samples": (INT, ("dataset=synthetic_linear",), lambda v: v > 0),
    "dataset.noise": (FLOAT, ("dataset=synthetic_linear",), non_negative),
    "dataset.seed": (INT, ("dataset=synthetic_linear",), seed_range),
    "dataset.vocab_size": (INT, ("dataset=synthetic_sequence",), lambda v: v >= 3),
    "dataset.length": (INT, ("dataset=synthetic_sequence",), lambda v: v > 0),
    # at most dataset.length (10 in that option)
    "dataset.min_length": (INT, ("dataset=synthetic_sequence",), lambda v: 0 <= v <= 10),
    "dataset.crop_padding": (INT, ("dataset=mnist",), lambda v: v >= 0),
    "dataset.max_len": (INT, ("dataset=imdb",), lambda v: v > 0),
    "dataset.max_vocab": (INT, ("dataset=imdb",), lambda v: v >= 3),
    "dataset.min_freq": (INT, ("dataset=imdb",), lambda v: v > 0),
    "dataset.z_threshold": (FLOAT, ("dataset=csv",), positive),
    "dataset.iqr_factor": (FLOAT, ("dataset=csv",), positive),
    "dataset.variance_threshold": (FLOAT, ("dataset=csv",), non_negative),
    "dataset.k_best": (INT, ("dataset=csv",), lambda v: v > 0),
    "dataset.max_classes": (INT, ("dataset=csv",), lambda v: v >= 2),
    "regularizer.l1.weight": (FLOAT, ("regularizer=[l1]",), non_negative),
    "regularizer.l2.weight": (FLOAT, ("regularizer=[l2]",), non_negative),
    "regularizer.dropout.p": (FLOAT, ("regularizer=[dropout]",), half_open_unit),
    "regularizer.early_stopping.patience": (INT, ("regularizer=[early_stopping]",), lambda v: v >= 0),
    "regularizer.early_stopping.min_delta": (FLOAT, ("regularizer=[early_stopping]",), non_negative),
    "scheduler.step_size": (INT, ("scheduler=step",), lambda v: v > 0),
    "scheduler.gamma": (FLOAT, ("scheduler=step",), positive),
    # fewer than trainer.epochs (30 by default): a cosine needs an epoch to decay in
    "scheduler.warmup_epochs": (INT, ("scheduler=cosine",), lambda v: 0 <= v < 30),
    "scheduler.min_lr": (FLOAT, ("scheduler=cosine",), non_negative),
    "scheduler.factor": (FLOAT, ("scheduler=plateau",), open_unit),
    "scheduler.threshold": (FLOAT, ("scheduler=plateau",), non_negative),
    "scheduler.pct_start": (FLOAT, ("scheduler=onecycle",), open_unit),
    "scheduler.div_factor": (FLOAT, ("scheduler=onecycle",), positive),
}
EDGE_INTS = [-(2**40), -(2**32), -1, 0, 1, 2, 3, 2**32 - 1, 2**32, 2**40]
EDGE_FLOATS = [0.0, -0.0, 1.0, -1.0, 0.5, 1e-12, -1e-12, 1 - 1e-12, 1e308, -1e308,
               math.inf, -math.inf, math.nan]
INTS = st.one_of(st.integers(-5, 40), st.integers(-(2**40), 2**40), st.sampled_from(EDGE_INTS))
FLOATS = st.one_of(st.floats(-2, 2), st.floats(allow_nan=True, allow_infinity=True),
                   st.sampled_from(EDGE_FLOATS))
# betas: a list of two values in [0, 1) (what torch's Adam accepts)
BETAS = st.lists(st.one_of(st.floats(-0.5, 1.5), st.sampled_from([0.0, 0.9, 0.999, 1.0, math.nan])),
                 min_size=1, max_size=3)


def _betas_valid(v):
    return len(v) == 2 and all(half_open_unit(b) for b in v)


@pytest.fixture(scope="module")
def compose():
    """compose(*overrides) -> the config `dlx train OVERRIDES` would run; one Hydra context."""
    from dlx.config.composing import composer

    with composer() as compose_one:
        yield compose_one


@pytest.fixture(scope="module")
def base(compose):
    """The composed config for each set of group options RULES needs (composed once each)."""
    cache = {}

    def get(options):
        if options not in cache:
            cache[options] = compose(*options)
        return copy.deepcopy(cache[options])
    return get


def _check(cfg, key: str, value, valid: bool) -> None:
    if valid:
        validate(cfg)  # must not raise
        return
    with pytest.raises(ConfigError) as e:
        validate(cfg)
    message = str(e.value)
    assert "\n" not in message, message
    assert f"{key}=" in message, (key, value, message)


@st.composite
def key_and_value(draw):
    key = draw(st.sampled_from(sorted(RULES)))
    kind, _, _ = RULES[key]
    return key, draw(INTS if kind == INT else FLOATS)


@SETTINGS
@given(kv=key_and_value())
def test_validate_accepts_exactly_the_valid_values(base, kv):
    key, value = kv
    _, options, rule = RULES[key]
    cfg = base(options)
    OmegaConf.update(cfg, key, value)  # through the schema: a wrong type would raise here
    _check(cfg, key, value, rule(value))


@settings(SETTINGS, max_examples=60)
@given(kv=key_and_value())
def test_the_same_values_as_command_line_overrides(compose, kv):
    """The override strings a user types (repr of the value) compose and validate the same."""
    key, value = kv
    _, options, rule = RULES[key]
    cfg = compose(*options, f"{key}={value!r}")
    got = OmegaConf.select(cfg, key)
    assert got == value or (math.isnan(got) and math.isnan(value))
    _check(cfg, key, value, rule(value))


@SETTINGS
@given(betas=BETAS)
def test_adam_betas(base, betas):
    cfg = base(())
    OmegaConf.update(cfg, "optimizer.betas", betas)
    _check(cfg, "optimizer.betas", betas, _betas_valid(betas))
    if _betas_valid(betas):  # what validate accepts, torch accepts
        torch.optim.Adam([torch.zeros(1, requires_grad=True)], betas=tuple(betas))


@settings(SETTINGS, max_examples=30)
@given(kv=key_and_value(), other=st.sampled_from([("optimizer.lr", -1.0), ("trainer.epochs", 0)]))
def test_every_problem_is_reported_at_once(base, kv, other):
    key, value = kv
    _, options, rule = RULES[key]
    assume(not rule(value) and key != other[0])
    cfg = base(options)
    OmegaConf.update(cfg, key, value)
    OmegaConf.update(cfg, *other)
    with pytest.raises(ConfigError) as e:
        validate(cfg)
    assert f"{key}=" in str(e.value) and f"{other[0]}=" in str(e.value)


# ------------------------------------------------------------------------------- data splits
@st.composite
def labels(draw, min_per_class=2):
    """A label array: 2-6 classes with min_per_class..40 rows each, shuffled."""
    counts = draw(st.lists(st.integers(min_per_class, 40), min_size=2, max_size=6))
    y = np.repeat(np.arange(len(counts)), counts)
    return np.random.default_rng(draw(st.integers(0, 2**16))).permutation(y)


def _assert_stratified(y_part, y_all, n_part):
    """Each class holds its share of the part within one row: |count - n_c * n_part / n| <= 1."""
    counts = np.bincount(y_all, minlength=y_all.max() + 1)
    got = np.bincount(y_part, minlength=len(counts))
    ideal = counts * n_part / len(y_all)
    assert np.all(np.abs(got - ideal) <= 1), (got, ideal)


def _split_rows(y, test_fraction, val_fraction, seed):
    """split() on features that are the row numbers: (train, val, test) row numbers."""
    x = np.arange(len(y), dtype=np.float32)[:, None]
    spec = Spec("multiclass", (1,), int(y.max()) + 1)
    b = split(x, y, spec, test_fraction, val_fraction, seed)
    def rows(s):
        return s[0][:, 0].long().numpy() if s is not None else np.array([], int)

    for part in (b.train, b.val, b.test):
        if part is not None:  # the labels travel with their rows
            assert np.array_equal(part[1].numpy(), y[rows(part)])
    return rows(b.train), rows(b.val), rows(b.test)


@SETTINGS
@given(y=labels(min_per_class=6), test_fraction=st.floats(0.1, 0.5), val_fraction=st.floats(0, 0.4),
       seed=st.integers(0, 2**32 - 1))
def test_split_is_disjoint_complete_stratified_and_seeded(y, test_fraction, val_fraction, seed):
    try:
        train, val, test = _split_rows(y, test_fraction, val_fraction, seed)
    except DataError:  # too few rows to stratify this many classes: a clear error is fine
        return
    parts = np.concatenate([train, val, test])
    assert len(parts) == len(y) and np.array_equal(np.sort(parts), np.arange(len(y)))
    _assert_stratified(y[test], y, len(test))
    rest = np.concatenate([train, val])
    if len(val):
        _assert_stratified(y[val], y[rest], len(val))
    again = _split_rows(y, test_fraction, val_fraction, seed)
    assert all(np.array_equal(a, b) for a, b in zip((train, val, test), again))
    others = [_split_rows(y, test_fraction, val_fraction, (seed + i) % 2**32)[2] for i in (1, 2, 3)]
    assert len(y) < 20 or any(not np.array_equal(np.sort(o), np.sort(test)) for o in others)


@SETTINGS
@given(y=labels(min_per_class=1), test_fraction=st.floats(0.05, 0.95),
       val_fraction=st.floats(0, 0.9), seed=st.integers(0, 100))
def test_split_that_cannot_stratify_is_a_data_error_not_a_crash(y, test_fraction, val_fraction,
                                                                 seed):
    try:
        _split_rows(y, test_fraction, val_fraction, seed)
    except DataError as e:
        assert "\n" not in str(e) and "dataset." in str(e)


@SETTINGS
@given(y=labels(), subset=st.floats(0.5, 1), fraction=st.floats(0, 0.6),
       seed=st.integers(0, 2**32 - 1), stratify=st.booleans())
def test_holdout_is_disjoint_complete_stratified_and_seeded(y, subset, fraction, seed, stratify):
    rng = np.random.default_rng(seed % 1000)
    rows = np.sort(rng.choice(len(y), max(2, int(subset * len(y))), replace=False))
    try:
        kept, held = holdout(rows, y, fraction, seed, stratify)
    except DataError as e:  # a class too small to stratify, or too few rows
        assert "\n" not in str(e)
        return
    assert np.array_equal(kept, np.sort(kept)) and np.array_equal(held, np.sort(held))
    assert len(np.intersect1d(kept, held)) == 0
    assert np.array_equal(np.sort(np.concatenate([kept, held])), rows)
    if fraction == 0:
        assert len(held) == 0
        return
    if stratify:
        _assert_stratified(y[held], y[rows], len(held))
    again = holdout(rows, y, fraction, seed, stratify)
    assert np.array_equal(again[0], kept) and np.array_equal(again[1], held)
    others = [holdout(rows, y, fraction, (seed + i) % 2**32, stratify)[1] for i in (1, 2, 3)]
    assert len(rows) < 20 or any(not np.array_equal(o, held) for o in others)


def _bundle(y, n_val, task):
    """A Bundle whose train+val labels are y (val = the last n_val rows)."""
    spec = Spec(task, (1,), int(y.max()) + 1 if task == "multiclass" else 1)
    t = torch.as_tensor(y) if task == "multiclass" else torch.as_tensor(y, dtype=torch.float32)
    x = torch.arange(len(y), dtype=torch.float32)[:, None]
    val = (x[-n_val:], t[-n_val:]) if n_val else None
    return Bundle(spec, (x[: len(y) - n_val], t[: len(y) - n_val]), val, (x[:1], t[:1]))


@SETTINGS
@given(y=labels(), k=st.integers(2, 6), n_val=st.integers(0, 10), seed=st.integers(0, 2**32 - 1),
       task=st.sampled_from(["multiclass", "regression"]))
def test_cv_folds_are_disjoint_complete_stratified_and_seeded(y, k, n_val, seed, task):
    n = len(y)
    data = _bundle(y, min(n_val, n - 1), task)
    if (np.bincount(y).min() if task == "multiclass" else n) < k:
        with pytest.raises(DataError, match="trainer.cv_folds"):
            folds(data, k, seed)
        return
    splits = folds(data, k, seed)
    assert len(splits) == k
    vals = [v for _, v in splits]
    assert np.array_equal(np.sort(np.concatenate(vals)), np.arange(n))  # each row held out once
    for train, val in splits:
        assert len(np.intersect1d(train, val)) == 0 and len(train) + len(val) == n
        assert abs(len(val) - n / k) < 1 + 1e-9
        if task == "multiclass":
            _assert_stratified(y[val], y, len(val))
            counts = np.bincount(y[val], minlength=y.max() + 1)
            assert np.all(np.abs(counts - np.bincount(y) / k) < 1)  # n_c/k, rounded
    again = folds(data, k, seed)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(splits, again))
    others = [folds(data, k, (seed + i) % 2**32) for i in (1, 2, 3)]
    assert n < 20 or any(not np.array_equal(o[0][1], splits[0][1]) for o in others)
