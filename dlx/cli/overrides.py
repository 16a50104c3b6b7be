"""Hydra's command line, made friendly.

- `prepare`: `--config-dir DIR` checked (dlx/config/tree.py); an override Hydra's grammar
  refuses is quoted for it when its key holds a path
  (`dataset.root=数据/mnist` works as typed; `~/` is expanded, which the shell does not do
  after `key=`); any other value refused for its characters is one DlxError line that shows
  the quoted form to type.
- `ComposeErrors` / `condense`: Hydra writes a bad override's error (and its list of options) to
  stderr over several lines and exits 1; dlx holds what Hydra writes while composing and prints
  one line. Once a job starts, stderr passes straight through.
"""

from __future__ import annotations

import os
import re

from dlx.errors import ConfigError

# a value that is a sweep (a,b / glob(...) / range(...) / [list]) or already quoted: left alone
_SWEEP = re.compile(r"^\s*(['\"\[{]|\w+\(|.*,)")


def prepare(args: list[str]) -> list[str]:
    """The command line for Hydra: path values its grammar refuses come back quoted."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    from dlx.config import tree
    from dlx.config.schemas import path_keys

    config_dir, args = tree.from_args(args)  # the user's config folder: checked, made absolute
    out = [] if config_dir is None else ["--config-dir", str(tree.user_dir(config_dir))]
    parser, paths = OverridesParser.create(), path_keys()
    for arg in args:
        key, eq, value = arg.partition("=")
        if arg.startswith("-") or not eq:
            out.append(arg)
            continue
        if key.lstrip("+~") in paths and value.startswith("~"):  # the shell leaves key=~/x alone
            value = os.path.expanduser(value)
            arg = f"{key}={value}"
        try:
            parser.parse_overrides([arg])
            out.append(arg)
            continue
        except OverrideParseException:
            pass
        if _SWEEP.match(value) or (value.isascii() and "~" not in value):
            out.append(arg)  # a typo (a malformed list, `==`): Hydra's own message says where
            continue
        quoted = f"{key}=" + "'" + value.replace("'", "\\'") + "'"
        if key.lstrip("+~") in paths:
            out.append(quoted)
            continue
        shell = f"'{key}=\"" + value.replace('"', '\\"') + "\"'"
        raise ConfigError(f"cannot read the override {arg}: Hydra's override grammar refuses "
                          f"some of its characters unquoted; type it quoted: {shell}")
    return out


class ComposeErrors:
    """Stands in for sys.stderr while Hydra composes the config."""

    def __init__(self, stream):
        self.stream, self.held, self.passthrough = stream, [], False

    def write(self, text) -> int:
        if isinstance(text, bytes):
            text = text.decode(errors="replace")
        (self.stream.write if self.passthrough else self.held.append)(text)
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def __getattr__(self, name):  # fileno, isatty, encoding...: the real stream's
        return getattr(self.stream, name)

    def release(self) -> None:
        """A job is starting: what was held goes out, and everything after it."""
        self.passthrough = True
        self.stream.write("".join(self.held))
        self.held.clear()

    def one_line(self) -> str:
        return condense("".join(self.held))


def condense(text: str) -> str:
    """Hydra's multi-line message as one line: the problem, the options, the fix."""
    parts, options = [], []
    lines = text.splitlines()
    if "Traceback (most recent call last):" in lines:  # Hydra failed outside the task, e.g. on
        # creating the run dir: the exception's own lines, without the stack frames
        lines = [x for x in lines[len(lines) - lines[::-1].index("Traceback (most recent call "
                                                                   "last):"):] if x[:1] != " "]
        if lines and re.match(r"\w+: \[Errno \d+\]", lines[0]):  # an OSError: the output dir
            lines[0] += " (dlx writes the run's files there: point hydra.run.dir at a writable folder)"
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith(("Set the environment variable HYDRA_FULL_ERROR",
                                        "Config search path", "provider=", "object_type=",
                                        "reference_type=")):
            continue
        if raw.startswith("\t") and parts and parts[-1].endswith(":"):
            options.append(line)
        else:
            if options:
                parts[-1] += " " + ", ".join(options)
                options = []
            # a DlxError raised in a sweeper (which Hydra prints as "module.Class: message")
            line = re.sub(r"^dlx\.errors\.\w+: ", "", line.removeprefix("In 'config': "))
            parts.append(line)
    if options:
        parts[-1] += " " + ", ".join(options)
    return "; ".join(p.rstrip(".") for p in parts)
