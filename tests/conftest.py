"""Fixtures: every test that takes ``app`` (or anything built on it) runs twice,
once on SQLite and once on PostgreSQL.

Environment and options:
- TEST_POSTGRES_URL: the PostgreSQL server to use (a database ``labshare_test``
  on it is created afresh); default postgresql+psycopg://postgres@127.0.0.1:5432/labshare_test.
  Under pytest-xdist each worker takes a database of its own, ``<name>_gw0``,
  ``<name>_gw1``, …, and so do the databases named after it (``PG_URL``).
- LABSHARE_NO_SKIP=1 (set by CI): any skipped test fails the run, so a missing
  PostgreSQL or browser cannot pass silently.
- ``--db sqlite`` (``make test-fast``) or ``--db postgresql``: run the variants on
  that database only; the others are deselected, not skipped.

Between tests: each test commits for real (threads, processes and servers see its
data), and afterwards the tables it filled are emptied, the identities restarted,
the clock, the app's configuration and its calendar cache put back.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from config import TestingConfig
from labshare import create_app
from labshare.booking.calendar_cache import cache_of
from labshare.booking.workdays import EMPTY_TOKEN, STATE_ID
from labshare.catalogue import capability_index, free_memo, row_memo, search_cache, text_index
from labshare.extensions import db as _db
from labshare.extensions import limiter
from labshare.timeutil import set_clock
from tests import factories
from tests.jobsutil import SmtpServer
from tests.serverutil import free_port, fresh_postgres, sibling_postgres_url


def worker_database(url: str) -> str:
    """``url`` with ``_<worker id>`` appended to its database name under pytest-xdist
    (PYTEST_XDIST_WORKER is "gw0", "gw1", …), unchanged otherwise."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return url
    u = make_url(url)
    return u.set(database=f"{u.database}_{worker}").render_as_string(hide_password=False)


PG_URL = worker_database(
    os.environ.get(
        "TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/labshare_test"
    )
)
NO_SKIP = os.environ.get("LABSHARE_NO_SKIP") == "1"
DATABASES = ("sqlite", "postgresql")
TRANSLATIONS = Path(__file__).resolve().parent.parent / "labshare" / "translations"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--db",
        choices=("both", *DATABASES),
        default="both",
        help="run the database-parametrized tests on this database only (default: both)",
    )


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):  # once, in the controller under xdist
        compile_catalogues()


def compile_catalogues() -> None:
    """Compile each stale ``.mo`` (``make translations`` does the same), so running
    pytest directly tests the current translations. Babel resolves ``zh_CN`` to
    ``zh_Hans_CN``, and gettext then looks for that folder: the zh_CN catalogue is
    compiled there too. Written to a temporary file and renamed, so a reader never
    sees half a catalogue."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    targets = [(po, po.with_suffix(".mo")) for po in TRANSLATIONS.glob("*/LC_MESSAGES/messages.po")]
    zh = TRANSLATIONS / "zh_CN" / "LC_MESSAGES" / "messages.po"
    if zh.exists():
        targets.append((zh, TRANSLATIONS / "zh_Hans_CN" / "LC_MESSAGES" / "messages.mo"))
    for po, mo in targets:
        if mo.exists() and not mo.is_symlink() and mo.stat().st_mtime >= po.stat().st_mtime:
            continue
        with po.open("rb") as fh:
            catalog = read_po(fh, locale=po.parent.parent.name)
        mo.parent.mkdir(parents=True, exist_ok=True)
        part = mo.with_name(f"{mo.name}.{os.getpid()}.part")
        with part.open("wb") as fh:
            write_mo(fh, catalog, use_fuzzy=True)
        if mo.is_symlink():
            mo.unlink()
        os.replace(part, mo)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: Any, call: Any) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if NO_SKIP and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under LABSHARE_NO_SKIP=1: {report.longrepr}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[Any]) -> None:
    """A test marked ``postgresql_only`` checks something only PostgreSQL has (an index
    plan, a constraint): its SQLite variant is deselected, not skipped, so CI's
    no-skip rule still holds; ``sqlite_only`` likewise (SQLite's write lock). Under
    ``--db``, the other database's variants (and the tests marked ``postgresql``
    under ``--db sqlite``) are deselected too."""
    only = config.getoption("--db")
    keep, drop = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        kinds = {v for v in params.values() if isinstance(v, str) and v in DATABASES}
        if (
            (item.get_closest_marker("postgresql_only") and params.get("database_url") == "sqlite")
            or (
                item.get_closest_marker("sqlite_only")
                and params.get("database_url") == "postgresql"
            )
            or (only != "both" and kinds and only not in kinds)
            or (only == "sqlite" and item.get_closest_marker("postgresql"))
        ):
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def postgres_available() -> bool:
    try:
        eng = create_engine(make_url(PG_URL).set(database="postgres"))
        with eng.connect():
            pass
        eng.dispose()
        return True
    except Exception:
        return False


class _Apps:
    """The session's apps, one per database, each built and migrated once. Tests
    of both databases may alternate (pytest-xdist hands a worker whole modules, each
    with its SQLite and PostgreSQL variants): switching costs nothing."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self.tmp = tmp_path_factory
        self.urls: dict[str, str] = {}
        self.apps: dict[str, Flask] = {}
        self.emptiers: dict[str, Callable[[], None]] = {}

    def url(self, kind: str) -> str:
        if kind not in self.urls:
            if kind == "sqlite":
                self.urls[kind] = f"sqlite:///{self.tmp.mktemp('sqlite') / 'labshare.db'}"
            elif postgres_available():
                fresh_postgres(PG_URL)
                self.urls[kind] = PG_URL
            else:
                self.urls[kind] = ""
        if not self.urls[kind]:
            pytest.skip(f"PostgreSQL not reachable at {PG_URL}")
        return self.urls[kind]

    def app(self, url: str) -> Flask:
        if url not in self.apps:
            import flask_migrate

            app = create_app(
                TestingConfig,
                SQLALCHEMY_DATABASE_URI=url,
                INSTANCE_DIR=str(self.tmp.mktemp("instance")),
            )
            with app.app_context():
                flask_migrate.upgrade()
                self.emptiers[url] = _table_emptier(_db.engine)
            self.apps[url] = app
        return self.apps[url]

    def close(self) -> None:
        for app in self.apps.values():
            with app.app_context():
                _db.engine.dispose()


@pytest.fixture(scope="session")
def _apps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Apps]:
    apps = _Apps(tmp_path_factory)
    yield apps
    apps.close()


@pytest.fixture(scope="session", params=DATABASES)
def database_url(request: pytest.FixtureRequest, _apps: _Apps) -> str:
    return _apps.url(request.param)


@pytest.fixture(scope="session")
def _app(database_url: str, _apps: _Apps) -> Flask:
    return _apps.app(database_url)


def _table_emptier(engine: Engine) -> Callable[[], None]:
    """Empty the tables that hold rows, in one transaction, and restart the
    identities: what ``TRUNCATE … RESTART IDENTITY`` of every table did, for a
    fraction of its cost (on PostgreSQL a TRUNCATE of every table took half a second
    per test; one query finds the few tables a test filled)."""
    tables = list(_db.metadata.sorted_tables)
    probe = text(
        " UNION ALL ".join(
            f"SELECT '{t.name}' WHERE EXISTS (SELECT 1 FROM \"{t.name}\")" for t in tables
        )
    )
    # the rows a migrated database starts with (the calendar's token: migration 0024)
    seed = text(
        "INSERT INTO calendar_state (id, token) SELECT :id, :token "
        "WHERE NOT EXISTS (SELECT 1 FROM calendar_state)"
    ).bindparams(id=STATE_ID, token=EMPTY_TOKEN)
    restart = None
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            sequences = conn.execute(
                text(
                    "SELECT format('%I.%I', schemaname, sequencename), start_value "
                    "FROM pg_sequences WHERE schemaname = current_schema()"
                )
            ).all()
        if sequences:
            restart = text(
                "SELECT "
                + ", ".join(f"setval('{name}', {int(start)}, false)" for name, start in sequences)
            )

    def empty() -> None:
        with engine.begin() as conn:
            full = {row[0] for row in conn.execute(probe)}
            for table in reversed(tables):
                if table.name in full:
                    conn.execute(table.delete())
            if restart is not None:
                conn.execute(restart)
            conn.execute(seed)

    return empty


def _empty_all_tables() -> None:
    """Empty the current app's database now (for tests that start over within one
    test, e.g. each example of a property test)."""
    _db.session.remove()
    _table_emptier(_db.engine)()


@pytest.fixture(autouse=True)
def _real_clock() -> Iterator[None]:
    """The clock is process-global (labshare.timeutil): a test that set it, with or
    without an app, leaves the real one behind."""
    yield
    set_clock(None)


@pytest.fixture
def app(_app: Flask, _apps: _Apps, database_url: str) -> Iterator[Flask]:
    config = dict(_app.config)
    ctx = _app.app_context()
    ctx.push()
    try:
        yield _app
    finally:
        set_clock(None)
        _db.session.remove()
        _apps.emptiers[database_url]()
        cache_of(_app).clear()
        capability_index.index_of(_app).clear()
        text_index.index_of(_app).clear()
        _app.config.clear()
        _app.config.update(config)
        _app.extensions.pop(free_memo.EXTENSION, None)  # made again from the config
        _app.extensions.pop(row_memo.EXTENSION, None)
        ctx.pop()


@pytest.fixture(params=["cache off", "cache on"])
def answer_cache(request: pytest.FixtureRequest, app: Flask) -> Iterator[bool]:
    """The answer cache off (every search computed) or on (each search a test asks
    for the first time: a miss, computed and stored): the test runs with both."""
    on = request.param == "cache on"
    app.config["SEARCH_CACHE_BYTES"] = search_cache.DEFAULT_BYTES if on else 0
    app.extensions.pop(search_cache.EXTENSION, None)
    yield on
    app.extensions.pop(search_cache.EXTENSION, None)


@pytest.fixture
def no_answer_cache(app: Flask) -> Iterator[None]:
    """The search's answer cache off for this test: every answer computed (the cache
    would serve the second of two equal searches)."""
    app.config["SEARCH_CACHE_BYTES"] = 0
    app.extensions.pop(search_cache.EXTENSION, None)
    yield
    app.extensions.pop(search_cache.EXTENSION, None)


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
def real_password_hash(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    """Passwords set while it is active are hashed as in production (scrypt), not
    with the test configuration's cheap PASSWORD_HASH_METHOD."""
    monkeypatch.setitem(app.config, "PASSWORD_HASH_METHOD", "scrypt")


@pytest.fixture
def cheap_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    """Opt-in (``pytestmark = pytest.mark.usefixtures("cheap_passwords")`` or as a
    parameter): users made while it is active get the hash "x" instead of one, so
    they cannot sign in. The test configuration's hash is cheap already; this
    skips even that, for tests that make many users that never log in."""
    monkeypatch.setattr(
        "labshare.models.user.generate_password_hash", lambda password, method=None: "x"
    )


@pytest.fixture
def smtp(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpServer]:
    """A running SMTP server (aiosmtpd on a free port), and the app configured to use it."""
    server = SmtpServer(free_port())
    server.start()
    monkeypatch.setitem(app.config, "MAIL_SERVER", "127.0.0.1")
    monkeypatch.setitem(app.config, "MAIL_PORT", server.port)
    yield server
    server.stop()


@pytest.fixture(params=DATABASES)
def empty_app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Flask]:
    """An app on a brand-new, empty database of its own, never the shared test
    database: a temporary SQLite file, or the test database's name plus ``_mig`` on
    PostgreSQL (dropped afterwards)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'migrations.db'}"
    else:
        if not postgres_available():
            pytest.skip(f"PostgreSQL not reachable at {PG_URL}")
        url = sibling_postgres_url(PG_URL, "mig")
        fresh_postgres(url)
    app = create_app(TestingConfig, SQLALCHEMY_DATABASE_URI=url, INSTANCE_DIR=str(tmp_path))
    ctx = app.app_context()
    ctx.push()
    try:
        yield app
    finally:
        _db.session.remove()
        _db.engine.dispose()
        ctx.pop()
        if request.param == "postgresql":
            fresh_postgres(url, drop_only=True)


# Small limits ("N per day", so no window boundary falls inside a test).
RATELIMIT_SMALL = {
    "RATELIMIT_LOGIN": "3 per day",
    "RATELIMIT_TOKEN": "3 per day",
    "RATELIMIT_REGISTER": "2 per day",
    "RATELIMIT_BOOKING": "2 per day",
}


@pytest.fixture
def limited(app: Flask, tmp_path: Path) -> Iterator[Callable[..., Flask]]:
    """``limited(storage_uri="memory://", **config)`` builds an app with the limiter
    on and RATELIMIT_SMALL's limits, on the same database as ``app``. The limiter
    object is process-global: afterwards it is bound to the session app (limits off)
    again."""
    built: list[Flask] = []

    def build(storage_uri: str = "memory://", **overrides: Any) -> Flask:
        limited_app = create_app(
            TestingConfig,
            SQLALCHEMY_DATABASE_URI=app.config["SQLALCHEMY_DATABASE_URI"],
            INSTANCE_DIR=str(tmp_path),
            RATELIMIT_ENABLED=True,
            RATELIMIT_STORAGE_URI=storage_uri,
            **{**RATELIMIT_SMALL, **overrides},
        )
        built.append(limited_app)
        return limited_app

    yield build
    for limited_app in built:
        with limited_app.app_context():
            _db.engine.dispose()
    limiter.init_app(app)
    assert not limiter.enabled
