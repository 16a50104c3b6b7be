"""The config groups (dlx/config/, conf/): every default in one place, every rule reachable from
`dlx config show`, and `dlx config list` as the place to read options and defaults."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from dlx.config import SCHEMAS
from dlx.config.validate import COMBINATIONS

CONF = Path(__file__).resolve().parents[1] / "conf"


@pytest.fixture(scope="module")
def compose():
    from dlx.config.composing import composer

    with composer() as compose_one:
        yield compose_one


def _default(f: dataclasses.Field):
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def _options():
    for group, options in SCHEMAS.items():
        for name, schema in options.items():
            yield group, name, schema


@pytest.mark.parametrize("group,name,schema", list(_options()),
                         ids=[f"{g}={n}" for g, n, _ in _options()])
def test_each_default_has_one_home(compose, group, name, schema):
    """Composing an option gives exactly its schema's defaults, and its YAML file only selects
    the schema (a value there would be a second home for that default)."""
    option_yaml = CONF / group / f"{name}.yaml"
    assert option_yaml.is_file(), f"conf/{group}/{name}.yaml: every schema is selectable"
    loaded = yaml.safe_load(option_yaml.read_text()) or {}
    assert set(loaded) <= {"defaults"}, f"{option_yaml} restates {set(loaded) - {'defaults'}}"

    cfg = compose(f"{group}=[{name}]" if group == "regularizer" else f"{group}={name}")
    node = cfg[group][name] if group == "regularizer" else cfg[group]
    composed = OmegaConf.to_container(node, resolve=True)
    for f in dataclasses.fields(schema):
        want = _default(f)
        if isinstance(want, str) and want.startswith("${"):  # an interpolation: its target's value
            want = OmegaConf.select(cfg, want[2:-1])
        assert composed[f.name] == want, f"{group}.{f.name} of {name}"
    assert set(composed) == {f.name for f in dataclasses.fields(schema)}


def test_experiments_hold_only_what_differs(compose):
    """A preset states a value only where it differs from the default it overrides."""
    for path in sorted((CONF / "experiment").glob("*.yaml")):
        loaded = yaml.safe_load(path.read_text())
        groups = {list(d)[0].removeprefix("override /"): list(d.values())[0]
                  for d in loaded.get("defaults", []) if isinstance(d, dict)}
        base = compose(*(f"{g}={o}" for g, o in groups.items()))
        for group, values in loaded.items():
            if group == "defaults":
                continue
            for key, value in values.items():
                assert OmegaConf.select(base, f"{group}.{key}") != value, \
                    f"{path.name}: {group}.{key}={value} is already the default"


# one case per rule in dlx/config/validate.py COMBINATIONS, refused by `dlx config show` exactly
# as `dlx train` refuses it (tests/robustness/test_bad_inputs.py runs `dlx train` on some)
REFUSED = [
    (["optimizer=sgd", "optimizer.nesterov=true"], "needs optimizer.momentum > 0", {}),
    (["model=mlp", "model.batchnorm=true", "dataset.batch_size=1"], "needs dataset.batch_size >= 2", {}),
    (["trainer.strategy=ddp", "trainer.cv_folds=3"], "trains one fit, not a cross-validation", {}),
    (["dataset.batch_size=2"], "is split over 4 DDP ranks", {"WORLD_SIZE": "4"}),
    (["trainer.resume=somewhere", "trainer.cv_folds=3"], "trainer.resume continues one fit", {}),
    (["trainer.device=cpu", "trainer.precision=fp16"], "fp16 needs a CUDA device", {}),
    (["trainer.device=cpu", "trainer.capture=true"], "capture=true records CUDA graphs", {}),
    (["regularizer=[early_stopping]", "trainer.cv_folds=3"], "no validation split to watch in the refit", {}),
    (["scheduler=plateau", "dataset.val_fraction=0"], "scheduler=plateau watches a validation metric", {}),
    (["scheduler=cosine", "scheduler.warmup_epochs=3", "trainer.epochs=3"], "leaves no epoch to decay", {}),
    (["regularizer=[l2]", "regularizer.l2.decoupled=true"], "use optimizer=adamw", {}),
    (["model=linear", "regularizer=[dropout]"], "has no dropout sites", {}),
    (["model=linear", "dataset=synthetic_linear", "trainer.monitor=val_accuracy"],
     "trainer.monitor=val_accuracy is not logged for a regression task", {}),
    (["dataset=synthetic_linear", "dataset.x_min=2", "dataset.x_max=1"], "must be above dataset.x_min", {}),
    (["dataset=synthetic_sequence", "dataset.min_length=20"], "exceeds dataset.length=10", {}),
    (["model=transformer", "model.num_heads=3"], "must divide model.d_model=64", {}),
    (["model=conv_autoencoder", "model.kernel_size=4"], "must be odd", {}),
]


def test_every_combination_rule_has_a_case():
    assert len(REFUSED) == len(COMBINATIONS)


@pytest.mark.parametrize("overrides,message,env", REFUSED, ids=[" ".join(o) for o, _, _ in REFUSED])
def test_config_show_refuses_what_train_refuses(dlx, overrides, message, env):
    dlx.env.update(env)
    proc = dlx("config", "show", *overrides, check=False)
    assert proc.returncode == 1, proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dlx: error: invalid config: "), proc.stderr
    assert message in lines[0], lines[0]


def test_config_list_shows_groups_then_each_options_keys_and_defaults(dlx):
    listing = dlx("config", "list").stdout
    assert "scikit-learn's bundled 8x8 handwritten digits" in listing
    keys = dlx("config", "list", "optimizer").stdout
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in keys.splitlines() if "│" in line]
    table = {(r[0], r[1]): r[2] for r in rows if len(r) >= 3 and r[0]}
    assert table[("sgd", "lr")] == "0.01" and table[("adam", "lr")] == "0.001"
    assert table[("adamw", "weight_decay")] == "0.01" and table[("sgd", "momentum")] == "0.0"
    notes = {(r[0], r[1]): r[3] for r in rows if len(r) >= 4 and r[0]}
    assert "needs momentum > 0" in notes[("sgd", "nesterov")]
    bad = dlx("config", "list", "nope", check=False)
    assert bad.returncode == 1 and "nope is not a config group" in bad.stderr


def test_config_show_prints_the_composed_tree_or_one_line(dlx):
    shown = dlx("config", "show", "model=mlp", "optimizer.lr=0.05").stdout
    assert "dlx.models.mlp.MLP" in shown and "0.05" in shown
    bad = dlx("config", "show", "optimizer.lr=-1", check=False)
    assert bad.returncode == 1 and bad.stderr.strip() == (
        "dlx: error: invalid config: optimizer.lr=-1.0 must be > 0")
