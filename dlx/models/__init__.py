"""Networks, one module per family. Each is built from the dataset Spec plus its own config."""

from __future__ import annotations

from dlx.errors import ConfigError


def build(cfg, spec):
    """Instantiate `cfg._target_` (a class in dlx.models) with its options and the data spec."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    try:
        factory = instantiate(cfg, _partial_=True, _convert_="all")
    except InstantiationException as e:
        raise ConfigError(f"could not build model {cfg._target_}: {e.__cause__ or e}") from e
    return factory(spec=spec)  # the Spec goes in as is, not converted to config
