"""``flask export-usage --month YYYY-MM --format xlsx|csv --out PATH [--institute CODE]``."""

from __future__ import annotations

from pathlib import Path

import click
from flask import Flask

from labshare.errors import DomainError
from labshare.services import export, storage


def register_export_command(app: Flask) -> None:
    @app.cli.command("export-usage")
    @click.option("--month", required=True, help="YYYY-MM")
    @click.option("--format", "fmt", type=click.Choice(["xlsx", "csv"]), default="xlsx")
    @click.option("--out", required=True, type=click.Path(dir_okay=False, writable=True))
    @click.option("--institute", default=None, help="institute code (default: all)")
    def export_usage(month: str, fmt: str, out: str, institute: str | None) -> None:
        """The monthly usage export, with a progress bar on a terminal."""
        try:
            period = export.parse_month(month)
            scope, _inst = export.scope_for(None, institute)
        except DomainError as exc:
            option = f"--{exc.field}" if getattr(exc, "field", None) else "error"
            raise click.UsageError(f"{option}: {exc.message}") from None
        total = export.count_bookings(period, scope)
        path = Path(out)
        tmp = path.with_name(path.name + ".part")
        try:
            with click.progressbar(length=total, label="Bookings", file=None) as bar:
                if fmt == "xlsx":
                    export.write_xlsx(str(tmp), period, scope, bar.update)
                else:
                    with tmp.open("wb") as fh:
                        export.write_csv(fh, period, scope, bar.update)
            tmp.replace(path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)  # never leave a partial file behind
            raise click.ClickException(storage.write_failure(exc, str(path))) from None
        click.echo(f"{total} bookings -> {path}")
