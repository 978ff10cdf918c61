"""Fixtures: every test that takes ``app`` (or anything built on it) runs twice,
once on SQLite and once on PostgreSQL.

Environment:
- TEST_POSTGRES_URL: the PostgreSQL server to use (a database ``labshare_test``
  on it is created afresh); default postgresql+psycopg://postgres@127.0.0.1:5432/labshare_test.
- LABSHARE_NO_SKIP=1 (set by CI): any skipped test fails the run, so a missing
  PostgreSQL or browser cannot pass silently.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from config import TestingConfig
from labshare import create_app
from labshare.extensions import db as _db
from labshare.timeutil import set_clock
from tests import factories

PG_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/labshare_test"
)
NO_SKIP = os.environ.get("LABSHARE_NO_SKIP") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: Any, call: Any) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if NO_SKIP and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under LABSHARE_NO_SKIP=1: {report.longrepr}"


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    """A test marked ``postgresql_only`` checks something only PostgreSQL has (an index
    plan, a constraint): its SQLite variant is deselected, not skipped, so CI's
    no-skip rule still holds."""
    keep, drop = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if item.get_closest_marker("postgresql_only") and params.get("database_url") == "sqlite":
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def _fresh_postgres_database(url: str) -> None:
    target = make_url(url)
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :d AND pid <> pg_backend_pid()"
            ),
            {"d": target.database},
        )
        conn.execute(text(f'DROP DATABASE IF EXISTS "{target.database}"'))
        conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()


def postgres_available() -> bool:
    try:
        eng = create_engine(make_url(PG_URL).set(database="postgres"))
        with eng.connect():
            pass
        eng.dispose()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'labshare.db'}"
    if not postgres_available():
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}")
    _fresh_postgres_database(PG_URL)
    return PG_URL


@pytest.fixture(scope="session")
def _app(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    import flask_migrate

    app = create_app(
        TestingConfig,
        SQLALCHEMY_DATABASE_URI=database_url,
        INSTANCE_DIR=str(tmp_path_factory.mktemp("instance")),
    )
    with app.app_context():
        flask_migrate.upgrade()
    yield app
    with app.app_context():
        _db.engine.dispose()


def _empty_all_tables() -> None:
    _db.session.remove()
    tables = list(_db.metadata.sorted_tables)
    with _db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            names = ", ".join(f'"{t.name}"' for t in tables)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(tables):
                conn.execute(table.delete())


@pytest.fixture
def app(_app: Flask) -> Iterator[Flask]:
    ctx = _app.app_context()
    ctx.push()
    try:
        yield _app
    finally:
        set_clock(None)
        _empty_all_tables()
        ctx.pop()


@pytest.fixture
def db(app: Flask) -> Any:
    return _db


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def login(client: FlaskClient) -> Callable[..., Any]:
    """``login(user_or_email, password=factories.PASSWORD)`` signs the test client in."""

    def _login(user: Any, password: str = factories.PASSWORD) -> Any:
        email = user if isinstance(user, str) else user.email
        response = client.post("/login", data={"email": email, "password": password})
        assert response.status_code in (302, 303), response.get_data(as_text=True)[:500]
        return response

    return _login


# Factory fixtures: each returns a function taking keyword overrides.
@pytest.fixture
def make_institute(app: Flask) -> Callable[..., Any]:
    return factories.make_institute


@pytest.fixture
def make_lab(app: Flask) -> Callable[..., Any]:
    return factories.make_lab


@pytest.fixture
def make_instrument(app: Flask) -> Callable[..., Any]:
    return factories.make_instrument


@pytest.fixture
def make_company(app: Flask) -> Callable[..., Any]:
    return factories.make_company


@pytest.fixture
def make_user(app: Flask) -> Callable[..., Any]:
    return factories.make_user


@pytest.fixture
def make_booking(app: Flask) -> Callable[..., Any]:
    return factories.make_booking


@pytest.fixture
def cheap_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    """Opt-in (``pytestmark = pytest.mark.usefixtures("cheap_passwords")`` or as a
    parameter): users made while it is active get the hash "x" instead of scrypt's
    deliberately slow one, so they cannot sign in. For tests that make many users
    that never log in."""
    monkeypatch.setattr(
        "labshare.models.user.generate_password_hash", lambda password, method=None: "x"
    )
