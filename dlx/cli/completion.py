"""Shell completion of Hydra overrides (`dlx train model=<TAB>`): config groups and their options
from conf/ and the user's `--config-dir` folder, and the keys of the chosen options from their
schemas in dlx/config/ (a user's option: the keys its YAML sets).

Cheap on purpose: it reads YAML files and dataclasses, never torch, mlflow or Hydra, because the
shell runs it on every <TAB>. cli.py hands it the words before the cursor and the one being typed.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

from dlx.config import tree
from dlx.config.schemas import CONF_DIR, SCHEMAS

FLAGS = ("--multirun", "-m", "--cfg", "--help", "--info", "--resolve", *tree.FLAGS)  # Hydra's own
Files = dict[str, dict[str, Path]]  # group -> option -> its YAML file (dlx/config/tree.py)


def groups(files: Files) -> dict[str, list[str]]:
    """Config group -> its options: conf/<group>/*.yaml (and the user's), plus hydra/launcher."""
    launchers = sorted(f.stem for f in (CONF_DIR / "hydra" / "launcher").glob("*.yaml"))
    return {**{g: list(o) for g, o in files.items()},
            "hydra/launcher": ["basic", "joblib", *launchers]}


def _defaults() -> dict[str, list[str]]:
    """The options conf/config.yaml picks for each group."""
    chosen = {}
    for entry in yaml.safe_load((CONF_DIR / "config.yaml").read_text()).get("defaults", []):
        if isinstance(entry, dict):
            for group, option in entry.items():
                chosen[group] = option if isinstance(option, list) else [option]
    return chosen


def _chosen(words: list[str]) -> dict[str, list[str]]:
    """Each group's options as the command line so far picks them (else the defaults)."""
    chosen = _defaults()
    for word in words:
        key, eq, value = word.lstrip("+").partition("=")
        if eq and "." not in key:
            chosen[key] = [v for v in value.strip("[]").split(",") if v]
    return chosen


def _keys(group: str, option: str, files: Files) -> dict[str, object]:
    """key -> default of one option: its schema's fields, with the YAML's values over them."""
    path = files.get(group, {}).get(option, CONF_DIR / group / f"{option}.yaml")
    schema = SCHEMAS.get(group, {}).get(option) if path.is_relative_to(CONF_DIR) else None
    out: dict[str, object] = {}
    if schema is not None:
        for f in dataclasses.fields(schema):
            if f.name.startswith("_"):
                continue
            if f.default is not dataclasses.MISSING:
                out[f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:
                out[f.name] = f.default_factory()
            else:
                out[f.name] = None
    if path.is_file():
        loaded = yaml.safe_load(path.read_text()) or {}
        out.update({k: v for k, v in loaded.items() if k != "defaults" and not k.startswith("_")})
    return out


def _all_keys(chosen: dict[str, list[str]], files: Files) -> dict[str, object]:
    """Every `group.key` (regularizer.<option>.key for the regularizer list) of the chosen options."""
    out = {}
    for group, options in chosen.items():
        if group not in ("model", "optimizer", "dataset", "scheduler", "trainer", "tracking",
                         "regularizer"):
            continue
        for option in options:
            if option in (None, "none") and group == "regularizer":
                continue
            prefix = f"{group}.{option}" if group == "regularizer" else group
            out.update({f"{prefix}.{k}": v for k, v in _keys(group, option, files).items()})
    return out


def _text(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    if isinstance(value, list):
        return "[" + ",".join(map(_text, value)) + "]"
    return str(value)


def _candidates(word: str, words: list[str], files: Files) -> list[str]:
    """Everything `word` may complete to."""
    if word.startswith("-"):
        return [f for f in FLAGS if f.startswith(word)]
    sign = word[: len(word) - len(word.lstrip("+~"))]
    body = word[len(sign):]
    options = groups(files)
    keys = _all_keys(_chosen(words), files)
    if "=" in body:
        key, _, value = body.partition("=")
        if key in options:  # group=option, group=[a,b (a list), group=a,b (a sweep)
            cut = max(value.rfind(","), value.rfind("[")) + 1
            head, tail = value[:cut], value[cut:]
            return [f"{sign}{key}={head}{o}" for o in options[key] if o.startswith(tail)]
        if key in keys:  # key=value: true/false, or the default as a hint
            default = keys[key]
            values = ["true", "false"] if isinstance(default, bool) else [_text(default)]
            return [f"{sign}{key}={v}" for v in values if v.startswith(value)]
        return []
    names = []
    for group in options if "." not in body else ():
        plus = "+" if group == "experiment" and not sign else ""  # not in the defaults: added
        names.append(f"{plus}{group}=")
        if any(k.startswith(f"{group}.") for k in keys):
            names.append(f"{group}.")
    if "." in body:  # inside a group: its keys
        names += [f"{k}=" for k in keys]
    return [f"{sign}{n}" for n in names if n.lstrip("+").startswith(body.lstrip("+"))]


def overrides(words: list[str], incomplete: str, config_dir: str | None = None) -> list[str]:
    """Completions of the word being typed, given the words before it (`train` excluded).

    Bash splits words at "=": `model=cn` arrives as words [..., "model", "="] and incomplete "cn",
    and the shell replaces only the part after the "=", so those completions lose their prefix.
    A completion that ends in "=" or "." comes with its next level, so the shell does not add a
    space after it.
    """
    words = list(words)
    if words and words[-1] in tree.FLAGS:  # --config-dir <TAB>: a folder
        return _folders(incomplete)
    try:
        given, words = tree.from_args(words)
        files = tree.options(tree.user_dir(given or config_dir) if given or config_dir else None)
    except Exception:  # noqa: BLE001 - a folder that is not there (yet): dlx's own options
        files = tree.options()
    cut = 0  # characters of the word that the shell does not replace (bash, after "=")
    if words and words[-1] == "=" and len(words) > 1:  # bash: model = cn
        incomplete = f"{words[-2]}={incomplete}"
        cut, words = len(words[-2]) + 1, words[:-2]
    elif words and not incomplete and "=" not in words[-1] and not words[-1].startswith("-"):
        # bash after "model=": Click passes "" with "model" as the last word
        name = words[-1].lstrip("+")
        if name in groups(files) or name in _all_keys(_chosen(words[:-1]), files):
            incomplete, cut, words = f"{words[-1]}=", len(words[-1]) + 1, words[:-1]
    words = _joined(words)
    found = _candidates(incomplete, words, files)
    if len(found) == 1 and found[0].endswith(("=", ".")):
        deeper = [c for c in _candidates(found[0], words, files) if c != found[0]]
        found = [found[0], *deeper] if deeper else found
    return [c[cut:] for c in found]


def _folders(incomplete: str) -> list[str]:
    """The folders whose path starts with `incomplete` (for --config-dir)."""
    base = Path(incomplete).expanduser()
    parent, stem = (base, "") if incomplete.endswith("/") else (base.parent, base.name)
    if not parent.is_dir():
        return []
    return sorted(str(Path(incomplete[: len(incomplete) - len(stem)]) / p.name) + "/"
                  for p in parent.iterdir() if p.is_dir() and p.name.startswith(stem)
                  and not p.name.startswith("."))


def _joined(words: list[str]) -> list[str]:
    """Bash's split words rejoined: ["model", "=", "mlp"] -> ["model=mlp"]."""
    out: list[str] = []
    for word in words:
        if out and (word == "=" or out[-1].endswith("=")) and out[-1] != "=":
            out[-1] += word
        else:
            out.append(word)
    return out
