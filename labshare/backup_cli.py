"""``flask backup --out PATH`` and ``flask restore PATH`` (labshare/ops/backup.py)."""

from __future__ import annotations

from pathlib import Path

import click
from flask import Flask, current_app

from labshare.extensions import db
from labshare.ops import backup as service


def register_backup_commands(app: Flask) -> None:
    @app.cli.command("backup")
    @click.option("--out", "out", required=True, type=click.Path(path_type=Path))
    def backup_command(out: Path) -> None:
        """Write a consistent copy of the database to OUT (safe while the app runs)."""
        url = str(current_app.config["SQLALCHEMY_DATABASE_URI"])
        try:
            written = service.backup(url, out)
        except service.BackupError as exc:
            raise click.ClickException(str(exc)) from exc
        except OSError as exc:
            raise click.ClickException(f"Cannot write {out}: {exc.strerror}") from exc
        click.echo(f"Backup written to {written} ({written.stat().st_size} bytes)")

    @app.cli.command("restore")
    @click.argument("path", type=click.Path(path_type=Path))
    @click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
    def restore_command(path: Path, yes: bool) -> None:
        """Replace the database's contents with the backup at PATH."""
        url = str(current_app.config["SQLALCHEMY_DATABASE_URI"])
        if not yes:
            click.confirm("This replaces every row of the database. Continue?", abort=True)
        db.session.remove()
        db.engine.dispose()  # no pooled connection holds locks or stale state
        try:
            service.restore(url, path)
        except service.BackupError as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"Database restored from {path}")
