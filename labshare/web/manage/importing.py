"""Bulk import of instruments: upload, preview (every bad row by row number and
column), confirm; and ``flask import-instruments`` over the same service.

Between preview and confirm the uploaded file waits in the instance folder under
a random name kept in the user's session; confirm reads and checks it again, so
what is written is exactly what passed the check in that transaction.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Any

import click
from flask import Flask, current_app, flash, redirect, render_template, session, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from labshare.catalogue import importer
from labshare.errors import DomainError
from labshare.extensions import db
from labshare.models import Institute
from labshare.web.manage.forms import ConfirmImportForm, ImportForm
from labshare.web.manage.views import bp, institute

SESSION_KEY = "instrument_import"
_TOKEN = re.compile(r"^[0-9a-f]{32}$")


def _upload_dir() -> Path:
    path = Path(current_app.config["INSTANCE_DIR"]) / "imports"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _stored(token: str) -> tuple[Path, str] | None:
    """The waiting upload of this user and institute under ``token``."""
    pending = session.get(SESSION_KEY) or {}
    if (
        not _TOKEN.match(token or "")
        or pending.get("token") != token
        or pending.get("institute_id") != current_user.institute_id
    ):
        return None
    path = _upload_dir() / f"{token}.{pending.get('ext')}"
    if not path.is_file():
        return None
    return path, str(pending.get("filename") or path.name)


def _discard() -> None:
    pending = session.pop(SESSION_KEY, None) or {}
    token = str(pending.get("token") or "")
    if _TOKEN.match(token):
        for path in _upload_dir().glob(f"{token}.*"):
            path.unlink(missing_ok=True)


def _page(form: ImportForm, status: int = 200, **context: Any) -> Any:
    context.setdefault("report", None)
    context.setdefault("confirm", None)
    return (
        render_template(
            "manage/import.html",
            form=form,
            columns=importer.COLUMNS,
            required=importer.REQUIRED,
            **context,
        ),
        status,
    )


@bp.get("/import")
def import_form() -> Any:
    return _page(ImportForm())


@bp.post("/import")
def import_upload() -> Any:
    inst = institute()
    form = ImportForm()
    if not form.validate_on_submit():
        return _page(form, 422)
    upload = form.file.data
    filename = str(upload.filename or "")
    content = upload.read(importer.MAX_BYTES + 1)
    try:
        rows = importer.read_table(filename, content)
        report = importer.check_rows(inst, rows)
    except DomainError as exc:
        db.session.rollback()
        form.file.errors = [*list(form.file.errors or []), str(exc.message)]
        return _page(form, 422)
    db.session.rollback()  # checking writes nothing; end the read transaction
    if report.errors:
        return _page(form, 422, report=report, filename=filename)
    _discard()
    token = secrets.token_hex(16)
    ext = importer.extension_of(filename)
    (_upload_dir() / f"{token}.{ext}").write_bytes(content)
    session[SESSION_KEY] = {
        "token": token,
        "ext": ext,
        "filename": filename[:200],
        "institute_id": inst.id,
    }
    confirm = ConfirmImportForm(formdata=None, token=token)
    return _page(form, report=report, filename=filename, confirm=confirm)


@bp.post("/import/confirm")
def import_confirm() -> Any:
    inst = institute()
    confirm = ConfirmImportForm()
    stored = _stored(confirm.token.data or "") if confirm.validate_on_submit() else None
    if stored is None:
        flash(_("The upload has expired; please upload the file again."), "warning")
        return redirect(url_for("manage.import_form"))
    path, filename = stored
    report: importer.ImportReport | None = None
    try:
        report = importer.check_rows(inst, importer.read_table(filename, path.read_bytes()))
        created = importer.import_instruments(current_user, inst, report)
    except DomainError as exc:
        db.session.rollback()
        form = ImportForm(formdata=None)
        form.file.errors = [str(exc.message)]
        return _page(form, 422, report=report, filename=filename)
    db.session.commit()
    _discard()
    flash(_("%(n)d instruments imported.", n=len(created)), "success")
    return redirect(url_for("manage.resources"))


# -- the command line ---------------------------------------------------------------------


@click.command("import-instruments")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--institute", "code", required=True, help="The institute's short code.")
@click.option("--dry-run", is_flag=True, help="Check the file and write nothing.")
def import_instruments_command(file: Path, code: str, dry_run: bool) -> None:
    """Import an institute's instruments from FILE (.xlsx or .csv): all rows or none."""
    inst = db.session.scalar(select(Institute).where(Institute.code == code))
    if inst is None:
        raise click.ClickException(f"No institute has the code {code!r}.")
    try:
        rows = importer.read_table(file.name, file.read_bytes())
        report = importer.check_rows(inst, rows)
    except DomainError as exc:
        raise click.ClickException(str(exc.message)) from None
    if report.errors:
        for error in report.errors:
            click.echo(f"row {error.row}, column {error.column}: {error.message}", err=True)
        db.session.rollback()
        raise click.ClickException(
            f"{len(report.errors)} error(s) in {len({e.row for e in report.errors})} row(s); "
            "nothing was imported."
        )
    if dry_run:
        db.session.rollback()
        click.echo(f"Dry run: {len(report.valid)} rows are valid; nothing was written.")
        return
    try:
        created = importer.import_instruments(None, inst, report)
    except DomainError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc.message)) from None
    db.session.commit()
    click.echo(f"Imported {len(created)} instruments into {inst.code}.")


def register_import_command(app: Flask) -> None:
    app.cli.add_command(import_instruments_command)
