"""Networks, one module per family. Each is built from the dataset Spec plus its own config.

A trained model is kept as its weights plus what rebuilds it (the model config and the Spec):
`save` writes that folder, `load` rebuilds the network from dlx's own code and reads the
weights with torch.load(weights_only=True), so loading never unpickles code.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from dlx.errors import ConfigError, DlxError

WEIGHTS, ABOUT = "weights.pt", "model.json"  # the files of a saved model folder


def build(cfg, spec):
    """The network `cfg._target_` names (a class in dlx.models, or a user's nn.Module subclass
    that passes the trust rule, dlx/config/targets.py) built with its options and the data
    spec: the same check whether the config was typed or read back from a run."""
    from omegaconf import OmegaConf

    from dlx.config import targets

    cls = targets.resolve("model", cfg._target_)
    options = {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items()
               if not str(k).startswith("_")}
    if not targets.is_builtin(cfg._target_):
        problems = targets.arguments("model", cfg._target_, cls, options)
        if problems:
            raise ConfigError("invalid config: " + "; ".join(problems))
    try:
        return cls(spec=spec, **options)  # the Spec goes in as is, not converted to config
    except DlxError:
        raise
    except Exception as e:  # noqa: BLE001 - the network's own code refused its options or data
        raise ConfigError(f"could not build model {cfg._target_}: "
                          f"{' '.join(f'{type(e).__name__}: {e}'.split())}") from e


def set_dropout(model, p: float) -> int:
    """Set the rate of every dropout module (nn.Dropout, Dropout1d/2d/3d, AlphaDropout) of
    `model`: its dropout sites, which the dropout regularizer sets; returns how many."""
    from torch import nn

    sites = [m for m in model.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]
    for m in sites:
        m.p = p
    return len(sites)


def save(model, folder: Path, cfg, spec, channels_last: bool) -> Path:
    """The model's weights (weights.pt) and what rebuilds it (model.json) in `folder`: its
    config, data Spec, memory format and dropout rate (set by the dropout regularizer)."""
    import torch
    from omegaconf import OmegaConf
    from torch import nn

    folder.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, folder / WEIGHTS)
    rates = {m.p for m in model.modules() if isinstance(m, nn.modules.dropout._DropoutNd)}
    about = {"format": "dlx-weights/1", "model": OmegaConf.to_container(cfg, resolve=True),
             "spec": asdict(spec), "channels_last": channels_last,
             "dropout": rates.pop() if len(rates) == 1 else 0.0,
             "load": "dlx.load_model(RUN) rebuilds the network and reads weights.pt"}
    (folder / ABOUT).write_text(json.dumps(about, indent=2))
    return folder


def load(folder: Path):
    """The network saved by `save`, in eval mode on the CPU."""
    return read(folder)[0]


def read(folder: Path):
    """(the network saved by `save`, in eval mode on the CPU, its data Spec)."""
    import torch
    from omegaconf import OmegaConf

    from dlx.data.bundle import Spec

    about = json.loads((Path(folder) / ABOUT).read_text())
    spec = Spec(**{k: tuple(v) if isinstance(v, list) else v for k, v in about["spec"].items()})
    model = build(OmegaConf.create(about["model"]), spec)
    state = torch.load(Path(folder) / WEIGHTS, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    set_dropout(model, about.get("dropout", 0.0))
    if about.get("channels_last"):
        model.to(memory_format=torch.channels_last)
    return model.eval(), spec
