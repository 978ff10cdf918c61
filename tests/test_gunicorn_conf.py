"""The sample gunicorn.conf.py sizes threads by the database: 2 on PostgreSQL
(commits in flight without passing the GIL among more), sync workers on SQLite,
and ``GUNICORN_THREADS`` over both."""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

import pytest

CONF = Path(__file__).resolve().parents[1] / "gunicorn.conf.py"


def _settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, Any]:
    for name in ("DATABASE_URL", "GUNICORN_THREADS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(CONF))


@pytest.mark.parametrize(
    ("env", "threads", "worker_class"),
    [
        ({"DATABASE_URL": "postgresql+psycopg://db/labshare"}, 2, "gthread"),
        ({"DATABASE_URL": "sqlite:////srv/labshare.db"}, 1, "sync"),
        ({"DATABASE_URL": "postgresql+psycopg://db/x", "GUNICORN_THREADS": "4"}, 4, "gthread"),
        ({"DATABASE_URL": "postgresql+psycopg://db/x", "GUNICORN_THREADS": "1"}, 1, "sync"),
    ],
)
def test_threads_by_database(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], threads: int, worker_class: str
) -> None:
    conf = _settings(monkeypatch, **env)
    assert (conf["threads"], conf["worker_class"]) == (threads, worker_class)
