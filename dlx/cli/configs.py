"""`dlx config show` and `dlx config list`: the composed config, the groups' options, and each
option's keys with their defaults, read from the schemas (dlx/config/), where they live."""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path

import typer

from dlx.cli import tables
from dlx.cli.app import CONF_DIR, app, fail
from dlx.cli.overrides import condense, prepare
from dlx.cli.train import Overrides

config_app = typer.Typer(help="Show the composed config, or list the config groups' options "
                              "and their keys' defaults.", no_args_is_help=True)
app.add_typer(config_app, name="config")


CONFIG_DIR = typer.Option(None, "--config-dir", "-cd", help="your config folder: its options "
                          "join dlx's groups, as with `dlx train --config-dir DIR`")


@config_app.command("show", cls=Overrides, context_settings={"allow_extra_args": True})
def show(ctx: typer.Context, config_dir: Path = CONFIG_DIR) -> None:
    """Print the config `dlx train OVERRIDES` would run, as a tree (validated, nothing trained)."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from dlx.config import register, tree, validate
    from dlx.errors import DlxError

    register()
    try:
        overrides = prepare(ctx.args)
        if config_dir is not None:  # as Hydra's --config-dir adds it to the search path
            overrides.append(f"hydra.searchpath=[file://{tree.user_dir(config_dir)}]")
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
            cfg = compose("config", overrides=overrides)
        validate(cfg)
    except (HydraException, OmegaConfBaseException, DlxError) as e:
        fail(condense(str(e)))
    tables.tree(OmegaConf.to_container(cfg, resolve=True))


@config_app.command("list")
def list_(group: str = typer.Argument(None, help="a group (e.g. optimizer): its options' keys "
                                                  "and defaults"),
          config_dir: Path = CONFIG_DIR) -> None:
    """Every config group and its options; with GROUP, each option's keys, defaults and notes."""
    from dlx.config import SCHEMAS, tree
    from dlx.errors import DlxError

    try:
        found = tree.options(config_dir and tree.user_dir(config_dir))
    except DlxError as e:
        fail(str(e))
    where = f"{CONF_DIR}" + (f" and {config_dir}" if config_dir else "")
    if group is None:
        rows = [(g, option, describe(f)) for g, options in found.items()
                for option, f in options.items()]
        tables.options(f"config groups in {where}", rows, ("group", "option", "description"))
        return
    if group not in found:
        fail(f"{group} is not a config group with options (groups: {', '.join(found)})")
    rows = []
    for option, f in found[group].items():
        schema = SCHEMAS.get(group, {}).get(option) if f.is_relative_to(CONF_DIR) else None
        if schema is not None:
            rows += [(option, key, default, note) for key, default, note in keys(schema)]
        else:  # an option of the user's: the keys its YAML sets
            rows += [(option, key, _text(value), f"in {f}") for key, value in yaml_keys(f)]
    tables.options(f"{group}: each option's keys and defaults (dlx/config/{group}.py)", rows,
                   ("option", "key", "default", "note"))


def yaml_keys(path: Path) -> list[tuple[str, object]]:
    """The top-level keys a YAML option sets (its defaults list left out)."""
    import yaml

    loaded = yaml.safe_load(path.read_text()) or {}
    return [(str(k), v) for k, v in loaded.items() if k != "defaults"] \
        if isinstance(loaded, dict) else []


def describe(path: Path) -> str:
    """The YAML option's first comment line, minus a leading `name:`."""
    for line in path.read_text().splitlines():
        if line.startswith("#") and not line.startswith("# @package"):
            text = line.lstrip("# ").strip()
            return text.split(": ", 1)[1] if text.startswith(f"{path.stem}: ") else text
    return ""


_FIELD = re.compile(r"^\s+(\w+): [^=]+=.*?(?:#\s*(.*))?$")


def keys(schema) -> list[tuple[str, str, str]]:
    """(key, default, the comment beside it in the schema's source) of each user-facing field."""
    notes: dict[str, str] = {}
    for cls in reversed(schema.__mro__):  # a subclass's note replaces its base's
        if not dataclasses.is_dataclass(cls):
            continue
        last = None
        for line in inspect.getsource(cls).splitlines():
            match = _FIELD.match(line)
            if match:
                last = match.group(1)
                notes[last] = (match.group(2) or "").strip()
            elif last and re.match(r"^\s+#\s{3}", line):  # a comment continued on the next line
                notes[last] += " " + line.strip().lstrip("#").strip()
            else:
                last = None
    out = []
    for f in dataclasses.fields(schema):
        if f.name.startswith("_") and f.name != "_target_":
            continue
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        out.append((f.name, _text(default), notes.get(f.name, "")))
    return out


def _text(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return "null" if value is None else str(value)
