"""``flask export-usage --month YYYY-MM --format xlsx|csv --out PATH [--institute CODE]``."""

from __future__ import annotations

from pathlib import Path

import click
from flask import Flask

from labshare.campaign import export
from labshare.errors import DomainError
from labshare.ops import storage


def register_export_command(app: Flask) -> None:
    @app.cli.command("export-usage")
    @click.option("--month", required=True, help="YYYY-MM")
    @click.option("--format", "fmt", type=click.Choice(["xlsx", "csv"]), default="xlsx")
    @click.option("--out", required=True, type=click.Path(dir_okay=False, writable=True))
    @click.option("--institute", default=None, help="institute code (default: all)")
    @click.option(
        "--detail",
        type=click.Choice(["bookings", "orders"]),
        default="bookings",
        help="CSV: the booking detail, or the service orders' items",
    )
    def export_usage(month: str, fmt: str, out: str, institute: str | None, detail: str) -> None:
        """The monthly usage export, with a progress bar on a terminal."""
        try:
            period = export.parse_month(month)
            scope, _inst = export.scope_for(None, institute)
        except DomainError as exc:
            option = f"--{exc.field}" if getattr(exc, "field", None) else "error"
            raise click.UsageError(f"{option}: {exc.message}") from None
        path = Path(out)
        if fmt == "csv" and detail == "orders":  # service orders: small, no progress bar
            _write_orders_csv(path, period, scope)
            return
        total = export.count_bookings(period, scope)
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


def _write_orders_csv(path: Path, period: export.Period, scope: export.Scope) -> None:
    from labshare.orders.export import iter_orders_csv

    tmp = path.with_name(path.name + ".part")
    try:
        with tmp.open("wb") as fh:
            for chunk in iter_orders_csv(period, scope):
                fh.write(chunk)
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise click.ClickException(storage.write_failure(exc, str(path))) from None
    click.echo(f"service orders -> {path}")
