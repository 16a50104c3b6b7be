"""`python -m dlx`: the same as the `dlx` command."""

from dlx.cli import run

run()
