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
    for name in ("DATABASE_URL", "GUNICORN_THREADS", "WEB_CONCURRENCY", "GUNICORN_TIMEOUT"):
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


@pytest.mark.parametrize("name", ["GUNICORN_THREADS", "WEB_CONCURRENCY", "GUNICORN_TIMEOUT"])
@pytest.mark.parametrize("value", ["abc", "0", "-2", "1.5"])
def test_a_bad_number_stops_with_a_message_naming_it(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    with pytest.raises(SystemExit, match=f"{name} must be a whole number of at least 1"):
        _settings(monkeypatch, **{name: value})


def test_blank_numbers_take_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    conf = _settings(monkeypatch, GUNICORN_THREADS=" ", WEB_CONCURRENCY="", GUNICORN_TIMEOUT="")
    assert (conf["threads"], conf["timeout"]) == (2, 30)
    assert 1 <= conf["workers"] <= 8
