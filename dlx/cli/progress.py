"""What the user watches while dlx trains: a rich progress bar per epoch on a terminal, plain
epoch lines otherwise (fit callbacks: the training loop itself never prints)."""

from __future__ import annotations

import sys

import typer

from dlx.training.callbacks import Callback, Lines, epoch_line


class Bar(Callback):
    def __init__(self):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        self.console = Console()
        self.bar = Progress("[bold]{task.description}", BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), console=self.console, transient=True)
        self.task = None

    def on_epoch_start(self, epoch, epochs, steps):
        self.bar.start()
        self.task = self.bar.add_task(f"epoch {epoch}/{epochs}", total=steps)

    def on_batch_end(self, step):
        self.bar.advance(self.task)

    def on_epoch_end(self, epoch, metrics):
        self.bar.remove_task(self.task)
        self.bar.stop()
        self.console.print(epoch_line(epoch, metrics))


def epochs(bar: bool) -> list[Callback]:
    """trainer.progress: a bar on a terminal, plain lines when off or not a TTY."""
    return [Bar() if bar and sys.stdout.isatty() else Lines(typer.echo)]
