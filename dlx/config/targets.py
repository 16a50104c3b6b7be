"""The one trust rule for `_target_`: what a config may make dlx import and call.

A `_target_` names code that dlx imports and calls with the config's other keys as arguments.
A config does not always come from the person running dlx: a run's logged config is read back
from a shared tracking store by `dlx eval`, `dlx predict`, `dlx export`, `dlx.load_model`, a
resume and a cross-validated refit, and a config folder may come from someone else. Without a
rule such a config could name `os.system`, `shutil.rmtree` or `subprocess.run` and have dlx call
it with arguments of its choosing. The rule, the same wherever the config comes from (the
command line, a `--config-dir` folder, a logged config):

- a group's `_target_` must be the kind of thing the group builds: `model` an `nn.Module`
  subclass that takes `spec`, `optimizer` a `torch.optim.Optimizer` subclass, `dataset`
  (dataset=custom) a `torch.utils.data.Dataset` subclass or a function of the user's own code
  (a module outside the Python installation: the working folder, PYTHONPATH, an editable
  install), never a function of the standard library or of an installed package;
- the standard library is refused by name, before anything is imported;
- the other keys must be parameters of that class or function (checked against its
  signature), and the ones without a default must be there;
- dlx's own options (the schemas' targets) pass without importing anything.

What it does not guard against: code you put on your own path (the working folder, PYTHONPATH)
is yours and runs when imported, and a class of the right kind from an installed package runs
its constructor. docs/extending.md has the user-facing version.

Torch is imported only to check a target that is not dlx's own (the user's module imports it
anyway).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import os
import site
import sys
from pathlib import Path
from typing import Any

from dlx.errors import ConfigError

# the groups whose options name a `_target_`, and what each one must name
KINDS = {
    "model": "an nn.Module subclass that takes `spec` (the data's Spec)",
    "optimizer": "a torch.optim.Optimizer subclass",
    "dataset": "a function of your own module, or a torch.utils.data.Dataset subclass",
}
# keys of a group's node that are dlx's, not arguments of its target
OWN_KEYS = {
    "model": frozenset(),
    "optimizer": frozenset({"_partial_"}),
    "dataset": frozenset(),  # dataset=custom: its schema's fields (dlx.config.dataset), added below
}
SPEC = "spec"  # the argument every model receives: the data's Spec


@functools.cache
def builtin() -> frozenset[str]:
    """Every `_target_` of dlx's own options (the schemas' defaults)."""
    from dlx.config.schemas import SCHEMAS

    return frozenset(
        f.default for options in SCHEMAS.values() for schema in options.values()
        for f in dataclasses.fields(schema)
        if f.name == "_target_" and isinstance(f.default, str) and f.default != "???")


def is_builtin(target: Any) -> bool:
    return isinstance(target, str) and target in builtin()


def own_keys(group: str) -> frozenset[str]:
    """The keys of a `group` node that dlx reads itself; every other key goes to the target."""
    if group == "dataset":
        from dlx.config.dataset import CustomConfig

        return frozenset(f.name for f in dataclasses.fields(CustomConfig))
    return OWN_KEYS[group]


def resolve(group: str, target: Any) -> Any:
    """The class or function `target` names, once it passes the rule for `group`; else one
    ConfigError line naming the key, the problem and the fix."""
    where = f"{group}._target_={target}"
    if not isinstance(target, str) or not target or target == "???":
        raise ConfigError(f"{group}._target_ is not set: name {KINDS[group]}, e.g. "
                          f"{group}._target_=mymodule.Name (docs/extending.md)")
    module_name, _, name = target.rpartition(".")
    if not module_name or not name:
        raise ConfigError(f"{where} is not a dotted path: write module.Name, e.g. mynets.TinyNet")
    top = module_name.split(".")[0]
    if top in sys.stdlib_module_names:
        raise ConfigError(f"{where} is in Python's standard library, which dlx does not call "
                          f"from a config: name {KINDS[group]} (docs/extending.md, trust rule)")
    module = _import(module_name, where)
    obj = getattr(module, name, None)
    if obj is None:
        raise ConfigError(f"{where}: module {module_name} ({_file(module)}) has no {name}: fix "
                          "the name (it is case-sensitive)")
    problem = _wrong_kind(group, obj)
    if problem:
        raise ConfigError(f"{where} {problem} (docs/extending.md, trust rule)")
    return obj


def check(group: str, node: dict) -> list[str]:
    """Every problem of a group's node whose `_target_` is not dlx's own: the trust rule, then
    its keys against the target's signature. [] for dlx's own targets (their schemas check)."""
    target = node.get("_target_")
    if is_builtin(target):
        return []
    try:
        obj = resolve(group, target)
    except ConfigError as e:
        return [str(e)]
    own = {"_target_", *own_keys(group)}
    return arguments(group, target, obj, {k: v for k, v in node.items() if k not in own})


def arguments(group: str, target: str, obj: Any, options: dict) -> list[str]:
    """The node's keys (`options`) against `obj`'s signature: unknown keys, missing required
    ones, and for a model whether it takes `spec`."""
    try:
        params = inspect.signature(obj).parameters
    except (TypeError, ValueError):  # no signature to read (a builtin): the call will tell
        return []
    names = [n for n, p in params.items()
             if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    anything = any(p.kind is p.VAR_KEYWORD for p in params.values())
    if group == "model" and SPEC not in params and not anything:
        return [f"{group}._target_={target} does not take `spec`: add a `spec` parameter to its "
                "__init__ (dlx passes the data's Spec: input_shape, num_outputs, task, "
                "class_names, vocab_size; docs/extending.md)"]
    problems = []
    passed = {SPEC} if group == "model" else set()
    if group == "optimizer":
        passed.add("params")  # bound to the model's parameters by dlx
    unknown = [f"{group}.{k}" for k in options if k not in params and not anything]
    if unknown:
        shown = ", ".join(n for n in names if n not in passed) or "none"
        are, them = ("is not a parameter", "it") if len(unknown) == 1 else ("are not parameters",
                                                                            "them")
        problems.append(f"{', '.join(unknown)} {are} of {target} (its parameters: {shown}): fix "
                        f"the spelling, or drop {them}")
    for n, p in params.items():
        if (p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                and n not in options and n not in passed):
            problems.append(f"{target} needs {group}.{n} (a parameter without a default): set "
                            f"+{group}.{n}=... or give it a default")
    return problems


# ------------------------------------------------------------------------------ helpers
def _import(module_name: str, where: str):
    """The module, imported with the working folder on sys.path (after installed packages, so
    a file there never shadows one of them), as `python -m` and pytest would find it."""
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.append(cwd)
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and not (module_name == e.name or module_name.startswith(f"{e.name}.")):
            raise ConfigError(f"{where}: importing {module_name} failed: it imports {e.name}, "
                              f"which is not installed (pip install it)") from e
        path = ", ".join(p or "." for p in sys.path if not p or os.path.isdir(p))
        raise ConfigError(f"{where}: no module named {module_name} on sys.path ({path}): run dlx "
                          f"from the folder that holds {module_name.split('.')[0]}.py, or add "
                          "its folder to PYTHONPATH") from e
    except Exception as e:  # noqa: BLE001 - the user's module failed while importing
        raise ConfigError(f"{where}: importing {module_name} failed: "
                          f"{' '.join(f'{type(e).__name__}: {e}'.split())}") from e


def _wrong_kind(group: str, obj: Any) -> str | None:
    """Why `obj` is not what `group` builds, and what to name instead; None when it is."""
    import torch

    base = {"model": torch.nn.Module, "optimizer": torch.optim.Optimizer,
            "dataset": torch.utils.data.Dataset}[group]
    if inspect.isclass(obj):
        return None if issubclass(obj, base) else f"is {_what(obj)}: name {KINDS[group]}"
    if group != "dataset" or not inspect.isfunction(obj):
        return f"is {_what(obj)}: name {KINDS[group]}"
    if installed(inspect.getfile(obj)):
        return (f"is a function of an installed package ({obj.__module__}), and dlx calls only "
                "functions of your own code from a config: wrap it in a function of your module")
    return None


def installed(path: str) -> bool:
    """Whether a file belongs to the Python installation (the standard library, site-packages),
    rather than to the user's own code."""
    file = Path(path).resolve()
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
             *site.getsitepackages(), site.getusersitepackages()}
    return any(file.is_relative_to(Path(r).resolve()) for r in roots if r)


def _what(obj: Any) -> str:
    if inspect.isclass(obj):
        return f"the class {obj.__module__}.{obj.__qualname__}"
    if inspect.isfunction(obj) or inspect.isbuiltin(obj):
        return "a function"
    return f"a {type(obj).__name__} object"


def _file(module) -> str:
    return getattr(module, "__file__", None) or "built in"
