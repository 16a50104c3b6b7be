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


@config_app.command("show", cls=Overrides, context_settings={"allow_extra_args": True})
def show(ctx: typer.Context) -> None:
    """Print the config `dlx train OVERRIDES` would run, as a tree (validated, nothing trained)."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from dlx.config import register, validate
    from dlx.errors import DlxError

    register()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
            cfg = compose("config", overrides=prepare(ctx.args))
        validate(cfg)
    except (HydraException, OmegaConfBaseException, DlxError) as e:
        fail(condense(str(e)))
    tables.tree(OmegaConf.to_container(cfg, resolve=True))


@config_app.command("list")
def list_(group: str = typer.Argument(None, help="a group (e.g. optimizer): its options' keys "
                                                  "and defaults")) -> None:
    """Every config group and its options; with GROUP, each option's keys, defaults and notes."""
    groups = sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir() and p.name != "hydra")
    if group is None:
        rows = [(g, f.stem, describe(f)) for g in groups for f in sorted((CONF_DIR / g).glob("*.yaml"))]
        tables.options(f"config groups in {CONF_DIR}", rows, ("group", "option", "description"))
        return
    from dlx.config import SCHEMAS

    if group not in SCHEMAS:
        fail(f"{group} is not a config group with options (groups: {', '.join(SCHEMAS)})")
    rows = [(option, key, default, note) for option, schema in SCHEMAS[group].items()
            for key, default, note in keys(schema)]
    tables.options(f"{group}: each option's keys and defaults (dlx/config/{group}.py)", rows,
                   ("option", "key", "default", "note"))


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
