"""Backups of the whole database: SQLite through its online backup API (safe while
the app runs), PostgreSQL through pg_dump's custom format and pg_restore.

``backup`` never changes the database; ``restore`` replaces its contents with the
file's. The password of a PostgreSQL URL goes to the tools in PGPASSWORD, never on
a command line that ``ps`` shows.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess  # nosec B404
from pathlib import Path

from sqlalchemy.engine import URL, make_url


class BackupError(Exception):
    """The backup or restore could not be made; the message says why."""


def _sqlite_path(url: str) -> str:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupError("An in-memory SQLite database cannot be backed up")
    return database


def _pg_args(url: str) -> tuple[list[str], dict[str, str] | None]:
    """The --dbname argument without the password, and the environment of the tool:
    the inherited one (None), or only PGPASSWORD when the URL has a password."""
    u = make_url(url)
    env = {"PGPASSWORD": str(u.password)} if u.password else None
    bare = URL.create(
        "postgresql",
        username=u.username,
        host=u.host,
        port=u.port,
        database=u.database,
        query=u.query,
    )
    args = ["--dbname", bare.render_as_string(hide_password=False)]
    return args, env


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} is not installed (PostgreSQL client tools)")
    return found


def _run(cmd: list[str], env: dict[str, str] | None) -> None:
    # A fixed argument list from this module, no shell.
    result = subprocess.run(  # noqa: S603  # nosec B603
        cmd, env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise BackupError(f"{Path(cmd[0]).name} failed: {result.stderr.strip()[:2000]}")


def backup(url: str, out: Path) -> Path:
    """Write a consistent copy of the database at ``url`` to ``out``."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    dialect = make_url(url).get_backend_name()
    if dialect == "sqlite":
        source = sqlite3.connect(_sqlite_path(url))
        target = sqlite3.connect(str(out))
        try:
            source.backup(target)
        except sqlite3.Error as exc:
            raise BackupError(f"SQLite backup failed: {exc}") from exc
        finally:
            target.close()
            source.close()
    elif dialect == "postgresql":
        args, env = _pg_args(url)
        _run([_tool("pg_dump"), "--format=custom", "--no-owner", "--file", str(out), *args], env)
    else:
        raise BackupError(f"No backup for the {dialect} dialect")
    return out


def restore(url: str, path: Path) -> None:
    """Replace the contents of the database at ``url`` with the backup at ``path``."""
    path = Path(path)
    if not path.is_file():
        raise BackupError(f"No backup file at {path}")
    dialect = make_url(url).get_backend_name()
    if dialect == "sqlite":
        source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        target = sqlite3.connect(_sqlite_path(url))
        try:
            source.backup(target)
        except sqlite3.Error as exc:
            raise BackupError(f"SQLite restore failed: {exc}") from exc
        finally:
            target.close()
            source.close()
    elif dialect == "postgresql":
        args, env = _pg_args(url)
        _run(
            [
                _tool("pg_restore"),
                "--clean",
                "--if-exists",
                "--no-owner",
                "--single-transaction",
                *args,
                str(path),
            ],
            env,
        )
    else:
        raise BackupError(f"No restore for the {dialect} dialect")
