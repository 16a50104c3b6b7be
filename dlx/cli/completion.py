"""Shell completion of Hydra overrides (`dlx train model=<TAB>`): config groups and their options
from conf/, and the keys of the chosen options from their schemas in dlx/config/.

Cheap on purpose: it reads YAML files and dataclasses, never torch, mlflow or Hydra, because the
shell runs it on every <TAB>. cli.py hands it the words before the cursor and the one being typed.
"""

from __future__ import annotations

import dataclasses

import yaml

from dlx.config.schemas import CONF_DIR, SCHEMAS
FLAGS = ("--multirun", "-m", "--cfg", "--help", "--info", "--resolve")  # Hydra's own flags
HIDDEN = ("hydra",)  # config groups not offered as `group=`; hydra/launcher is offered instead


def groups() -> dict[str, list[str]]:
    """Config group -> its options: conf/<group>/*.yaml, plus hydra/launcher."""
    found = {p.name: sorted(f.stem for f in p.glob("*.yaml"))
             for p in sorted(CONF_DIR.iterdir()) if p.is_dir() and p.name not in HIDDEN}
    launchers = sorted(f.stem for f in (CONF_DIR / "hydra" / "launcher").glob("*.yaml"))
    return {**found, "hydra/launcher": ["basic", "joblib", *launchers]}


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


def _keys(group: str, option: str) -> dict[str, object]:
    """key -> default of one option: its schema's fields, with the YAML's values over them."""
    path = CONF_DIR / group / f"{option}.yaml"
    schema = SCHEMAS.get(group, {}).get(option)
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


def _all_keys(chosen: dict[str, list[str]]) -> dict[str, object]:
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
            out.update({f"{prefix}.{k}": v for k, v in _keys(group, option).items()})
    return out


def _text(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    if isinstance(value, list):
        return "[" + ",".join(map(_text, value)) + "]"
    return str(value)


def _candidates(word: str, words: list[str]) -> list[str]:
    """Everything `word` may complete to."""
    if word.startswith("-"):
        return [f for f in FLAGS if f.startswith(word)]
    sign = word[: len(word) - len(word.lstrip("+~"))]
    body = word[len(sign):]
    options = groups()
    keys = _all_keys(_chosen(words))
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


def overrides(words: list[str], incomplete: str) -> list[str]:
    """Completions of the word being typed, given the words before it (`train` excluded).

    Bash splits words at "=": `model=cn` arrives as words [..., "model", "="] and incomplete "cn",
    and the shell replaces only the part after the "=", so those completions lose their prefix.
    A completion that ends in "=" or "." comes with its next level, so the shell does not add a
    space after it.
    """
    words = list(words)
    cut = 0  # characters of the word that the shell does not replace (bash, after "=")
    if words and words[-1] == "=" and len(words) > 1:  # bash: model = cn
        incomplete = f"{words[-2]}={incomplete}"
        cut, words = len(words[-2]) + 1, words[:-2]
    elif words and not incomplete and "=" not in words[-1] and not words[-1].startswith("-"):
        # bash after "model=": Click passes "" with "model" as the last word
        name = words[-1].lstrip("+")
        if name in groups() or name in _all_keys(_chosen(words[:-1])):
            incomplete, cut, words = f"{words[-1]}=", len(words[-1]) + 1, words[:-1]
    words = _joined(words)
    found = _candidates(incomplete, words)
    if len(found) == 1 and found[0].endswith(("=", ".")):
        deeper = [c for c in _candidates(found[0], words) if c != found[0]]
        found = [found[0], *deeper] if deeper else found
    return [c[cut:] for c in found]


def _joined(words: list[str]) -> list[str]:
    """Bash's split words rejoined: ["model", "=", "mlp"] -> ["model=mlp"]."""
    out: list[str] = []
    for word in words:
        if out and (word == "=" or out[-1].endswith("=")) and out[-1] != "=":
            out[-1] += word
        else:
            out.append(word)
    return out
