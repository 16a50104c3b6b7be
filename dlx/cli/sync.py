"""`dlx sync`: upload the records a tracking outage left in the local spool
(dlx/tracking/spool.py), exactly once; and the note other commands print while some wait."""

from __future__ import annotations

from pathlib import Path

import typer

from dlx.cli.app import app, reported
from dlx.config.tracking import TrackingConfig

SPOOL = typer.Option(Path(TrackingConfig.spool), "--spool",
                     help="the spool folder (tracking.spool where the runs were trained)")


@app.command()
def sync(
    spool: Path = SPOOL,
    uri: str = typer.Option(None, "--uri", help="upload to this store instead of the one each "
                            "record was meant for (a server that moved)"),
) -> None:
    """Upload the runs a tracking outage kept in the local spool to their tracking server, each
    record exactly once; runs created during the outage are created now."""
    from dlx.tracking import spool as spooled
    from dlx.tracking.redact import redact

    with reported():
        done = spooled.sync(spool, uri)
    if done["busy"]:
        typer.echo(f"{done['busy']} spool(s) in {spool} are still being written by a running dlx: "
                   "run `dlx sync` again when it has finished")
    if not done["journals"]:
        if not done["busy"]:
            typer.echo(f"nothing to sync in {spool}")
        return
    stores = ", ".join(redact(s) for s in done["stores"])
    typer.echo(f"synced {done['runs']} run(s) ({done['ops']} records) from {spool} to {stores}")


def notice(store: str, spool: Path | None = None) -> None:
    """One note on stderr when records for `store` wait in the spool of this directory."""
    from dlx.tracking import spool as spooled

    folder = spool or Path(TrackingConfig.spool)
    waiting = spooled.pending(folder, store)
    if waiting:
        typer.secho(f"dlx: note: {len(waiting)} spool(s) in {folder} hold records a tracking "
                    "outage kept from this store: upload them with `dlx sync`", err=True,
                    fg=typer.colors.YELLOW)
