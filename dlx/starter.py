"""`dlx init [DIR]`: a starter project of the user's own, which trains as written:

    DIR/<module>.py                  a network (TinyNet, takes the data's Spec) and a data function
    DIR/conf/model/tinynet.yaml      model=tinynet
    DIR/conf/dataset/spirals.yaml    dataset=spirals (a dataset=custom option)
    DIR/conf/experiment/starter.yaml +experiment=starter: the two together, with a short training
    DIR/README.md                    the commands

Nothing is overwritten: a file that exists already stops it before anything is written.
"""

from __future__ import annotations

import importlib.util
import keyword
import re
from pathlib import Path

from dlx.errors import ConfigError

MODULE = '''"""{module}: a network and a dataset of your own, for dlx (`dlx init` wrote this file).

dlx builds TinyNet(spec=..., **model options) and calls spirals(**dataset options); see
conf/model/tinynet.yaml and conf/dataset/spirals.yaml. The data's Spec tells a network its
input_shape, num_outputs, task, class_names and vocab_size.
"""

import math

import numpy as np
from torch import nn


class TinyNet(nn.Module):
    """A small fully-connected network sized from the data's Spec."""

    def __init__(self, spec, hidden: int = 64, dropout: float = 0.0):
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(math.prod(spec.input_shape), hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, spec.num_outputs),
        )

    def forward(self, x):
        return self.net(x)


def spirals(n: int = 600, classes: int = 3, noise: float = 0.15, seed: int = 0):
    """`classes` interleaved 2-D spirals, n points in all: (X, y). dlx splits them, stratified."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    r = rng.uniform(0.1, 1.0, n)
    angle = 4.0 * r + y * 2 * np.pi / classes + rng.normal(0, noise, n)
    X = np.stack([r * np.cos(angle), r * np.sin(angle)], axis=1)
    return X.astype(np.float32), y
'''

MODEL = """# tinynet: {module}.TinyNet, a small fully-connected network of your own
_target_: {module}.TinyNet
hidden: 64
"""

DATASET = """# spirals: 2-D spirals from {module}.spirals (a dataset=custom option)
defaults:
  - custom      # dlx's batch size, splits and task inference (dlx config list dataset)
  - _self_

_target_: {module}.spirals
n: 600          # every key that is not dlx's goes to the function
classes: 3
"""

EXPERIMENT = """# @package _global_
# starter: TinyNet on the spirals, Adam, 30 epochs
#   dlx train --config-dir conf +experiment=starter
defaults:
  - override /model: tinynet
  - override /dataset: spirals

optimizer:
  lr: 0.01
trainer:
  epochs: 30
"""

README = """# {name}

A dlx project: your own network and data ({module}.py) with config options of your own (conf/).
From this folder (dlx imports {module} from the working folder):

    dlx train --config-dir conf +experiment=starter            # TinyNet on the spirals, in ./mlflow.db
    dlx train --config-dir conf model=tinynet dataset=spirals model.hidden=128 trainer.epochs=50
    dlx train --config-dir conf model=mlp dataset=spirals       # dlx's own networks on your data
    dlx train -m --config-dir conf +experiment=starter optimizer.lr=0.001,0.01,0.1
    dlx config list --config-dir conf                           # your options beside dlx's
    dlx runs && dlx ui                                          # the runs, and MLflow's UI

Add a network: a class in {module}.py that takes `spec`, and conf/model/NAME.yaml naming it with
`_target_`. Add data: a function returning (X, y), and conf/dataset/NAME.yaml as spirals.yaml.
"""


def module_name(folder: Path, module: str | None) -> str:
    """The module to write: `module`, or one named after the folder; a Python identifier that no
    installed package already takes (dlx imports it from the working folder, after them)."""
    name = module or re.sub(r"\W", "_", folder.resolve().name.lower()).strip("_") or "project"
    if name[0].isdigit():
        name = f"project_{name}"
    if not name.isidentifier() or keyword.iskeyword(name):
        raise ConfigError(f"--module {name} is not a Python module name: use letters, digits "
                          "and _, e.g. --module mynets")
    if importlib.util.find_spec(name) is not None and not (folder / f"{name}.py").exists():
        raise ConfigError(f"a module named {name} is installed already, and would be imported "
                          f"instead of yours: pick another with --module NAME")
    return name


def write(folder: Path, module: str | None = None) -> list[Path]:
    """The starter project in `folder` (made if needed); the files written."""
    name = module_name(folder, module)
    files = {
        folder / f"{name}.py": MODULE,
        folder / "conf" / "model" / "tinynet.yaml": MODEL,
        folder / "conf" / "dataset" / "spirals.yaml": DATASET,
        folder / "conf" / "experiment" / "starter.yaml": EXPERIMENT,
        folder / "README.md": README,
    }
    there = [str(f) for f in files if f.exists()]
    if there:
        raise ConfigError(f"{', '.join(there)} {'exists' if len(there) == 1 else 'exist'} "
                          "already: dlx init writes a new project, so pick an empty folder "
                          "(dlx init DIR)")
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.format(module=name, name=folder.resolve().name))
    return list(files)
