"""The config trees a run is composed from: dlx's own (conf/, installed as the package dlx.conf)
and a user's config folder (`--config-dir DIR`, Hydra's -cd), whose options join every group.

Hydra searches dlx's tree before the user's, so a user's file with the name of one of dlx's
would be silently ignored: `user_dir` refuses it. No torch, Hydra or mlflow here (shell
completion reads this on every <TAB>).
"""

from __future__ import annotations

from pathlib import Path

from dlx.config.schemas import CONF_DIR
from dlx.errors import ConfigError

FLAGS = ("--config-dir", "-cd")  # Hydra's flag, which dlx's commands take as well
HIDDEN = ("hydra",)  # groups of Hydra's own, not offered as `group=option`


def user_dir(path: str | Path) -> Path:
    """A `--config-dir` folder, checked: it exists, and none of its YAML files takes the name of
    one of dlx's own (config.yaml included: dlx's primary config is always dlx's)."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        what = "is a file" if folder.exists() else "does not exist"
        raise ConfigError(f"--config-dir {path} {what}: pass the folder that holds your config "
                          "groups (e.g. conf/ with conf/model/NAME.yaml; `dlx init` makes one)")
    taken = sorted(str(f.relative_to(folder)) for f in folder.rglob("*.yaml")
                   if (CONF_DIR / f.relative_to(folder)).is_file())
    if taken:
        raise ConfigError(f"--config-dir {path}: {', '.join(taken)} "
                          f"{'has the name' if len(taken) == 1 else 'have the names'} of dlx's "
                          "own, which Hydra would pick instead: rename "
                          f"{'it' if len(taken) == 1 else 'them'} (defaults of your own go in "
                          "an experiment preset, experiment/NAME.yaml)")
    return folder.resolve()


def options(config_dir: str | Path | None = None) -> dict[str, dict[str, Path]]:
    """group -> option -> its YAML file: dlx's options, then the user's folder's (new groups
    too); Hydra's own groups left out."""
    out: dict[str, dict[str, Path]] = {}
    for root in (CONF_DIR, *([Path(config_dir)] if config_dir else [])):
        for group in sorted(p for p in root.iterdir() if p.is_dir()):
            if group.name in HIDDEN or group.name.startswith(("_", ".")):
                continue
            found = out.setdefault(group.name, {})
            for f in sorted(group.glob("*.yaml")):
                found.setdefault(f.stem, f)
    return {g: dict(sorted(o.items())) for g, o in sorted(out.items()) if o}


def from_args(args: list[str]) -> tuple[str | None, list[str]]:
    """(the `--config-dir`/`-cd` value of a command line, the other arguments)."""
    value, rest, it = None, [], iter(args)
    for arg in it:
        flag, eq, inline = arg.partition("=")
        if flag in FLAGS:
            value = inline if eq else next(it, None)
            if value is None:
                raise ConfigError(f"{flag} needs a folder: {flag} DIR")
        else:
            rest.append(arg)
    return value, rest
