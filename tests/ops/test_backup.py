"""``flask backup`` / ``flask restore``: a round trip on SQLite and PostgreSQL. Rows
written after the backup are gone after the restore; rows before it are back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from labshare.extensions import db as _db
from labshare.models import Company, Role, User
from labshare.ops import backup


def _users() -> set[str]:
    _db.session.remove()
    return set(_db.session.scalars(select(User.email)))


def test_round_trip_through_the_cli(app: Flask, make_user: Any, tmp_path: Path) -> None:
    kept = make_user(Role.SME, email="kept@example.com")
    _db.session.commit()
    runner = app.test_cli_runner()
    out = tmp_path / "nested" / "labshare.backup"
    result = runner.invoke(args=["backup", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.is_file() and out.stat().st_size > 0
    assert "Backup written" in result.output

    make_user(Role.SME, email="after@example.com")
    _db.session.delete(_db.session.get(User, kept.id))
    _db.session.commit()
    assert "kept@example.com" not in _users()

    result = runner.invoke(args=["restore", str(out), "--yes"])
    assert result.exit_code == 0, result.output
    emails = _users()
    assert "kept@example.com" in emails and "after@example.com" not in emails
    # after@'s company was written after the backup too: only kept's remains.
    assert _db.session.scalar(select(func.count(Company.id))) == 1


def test_restore_asks_before_replacing(app: Flask, tmp_path: Path) -> None:
    out = tmp_path / "b.backup"
    runner = app.test_cli_runner()
    assert runner.invoke(args=["backup", "--out", str(out)]).exit_code == 0
    result = runner.invoke(args=["restore", str(out)], input="n\n")
    assert result.exit_code != 0 and "Aborted" in result.output


def test_restore_of_a_missing_file_is_a_clear_error(app: Flask, tmp_path: Path) -> None:
    result = app.test_cli_runner().invoke(args=["restore", str(tmp_path / "nope"), "--yes"])
    assert result.exit_code != 0
    assert "No backup file" in result.output


def test_backup_into_an_unwritable_place_is_a_clear_error(app: Flask, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = app.test_cli_runner().invoke(args=["backup", "--out", str(blocker / "sub" / "b")])
    assert result.exit_code != 0
    assert "Traceback" not in result.output and "Error" in result.output


def test_in_memory_sqlite_is_refused(tmp_path: Path) -> None:
    with pytest.raises(backup.BackupError):
        backup.backup("sqlite://", tmp_path / "x")


def test_postgres_password_is_not_on_the_command_line() -> None:
    args, env = backup._pg_args("postgresql+psycopg://u:s3cret@db.example:5432/labshare")
    assert "s3cret" not in " ".join(args)
    assert env == {"PGPASSWORD": "s3cret"}
    assert backup._pg_args("postgresql+psycopg://u@h/d")[1] is None
    assert args[1].startswith("postgresql://u@db.example:5432/labshare")
