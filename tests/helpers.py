"""Helpers shared by the tests of every folder: a signed-in client, a bearer header,
the API's error shape and schemas, the messages queued, ``flask db`` (factories
are in tests/factories.py, fixtures in the conftest.py files)."""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import statistics
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import jsonschema
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, func, select

from labshare.accounts.tokens import issue_login_token
from labshare.catalogue import search_cache
from labshare.extensions import db
from labshare.models import Booking, BookingStatus, Notification, ResourceKind, User

T = TypeVar("T")

NOW = dt.datetime(2030, 1, 1, 0, 0, tzinfo=dt.UTC)  # Tuesday 08:00 in Shanghai
#: Monday 2030-01-07, 09:00-11:00 in Shanghai: inside the default rules' horizon.
START = "2030-01-07T09:00:00+08:00"
END = "2030-01-07T11:00:00+08:00"


def signed_in(app: Flask, user: User) -> FlaskClient:
    """A test client of its own, signed in as ``user`` through the login form (for
    tests that need several users' browsers at once)."""
    from tests import factories

    client = app.test_client()
    response = client.post("/login", data={"email": user.email, "password": factories.PASSWORD})
    assert response.status_code in (302, 303), response.get_data(as_text=True)[:500]
    return client


def bearer(user: User) -> dict[str, str]:
    """An Authorization header for ``user`` (the token is committed)."""
    issued = issue_login_token(user, 24)
    db.session.commit()
    return {"Authorization": f"Bearer {issued.secret}"}


def error_of(response: Any) -> dict[str, Any]:
    assert response.is_json, response.get_data(as_text=True)[:300]
    body = response.get_json()
    assert set(body) == {"error"}, body
    assert {"code", "message"} <= set(body["error"]), body
    return dict(body["error"])


_DOCUMENTS: weakref.WeakKeyDictionary[Flask, dict[str, Any]] = weakref.WeakKeyDictionary()


def served_openapi(client: Any) -> dict[str, Any]:
    """The OpenAPI document ``client``'s app serves, fetched once per app: building it
    walks every endpoint's schemas (the slowest request the app has), and it cannot
    change while the app lives (endpoints register at import)."""
    app = client.application
    if app not in _DOCUMENTS:
        response = client.get("/api/v1/openapi.json")
        assert response.status_code == 200, response.status_code
        _DOCUMENTS[app] = response.get_json()
    return _DOCUMENTS[app]


def check_schema(client: Any, schema_name: str, payload: Any) -> None:
    """Validate ``payload`` against ``#/components/schemas/<schema_name>`` of the
    served OpenAPI document."""
    document = served_openapi(client)
    schema = {"$ref": f"#/components/schemas/{schema_name}", **document}
    jsonschema.validate(payload, schema, cls=jsonschema.Draft202012Validator)


def booking_by_sql(resource: Any, user: Any, start: dt.datetime, end: dt.datetime) -> None:
    """An approved booking of the instrument ``resource`` by ``user`` (anything with
    ``id``/``institute_id``, ``id``/``company_id``), written by SQL on a connection of
    its own: as another process would, bypassing the ORM's session."""
    with db.engine.begin() as conn:
        conn.execute(
            Booking.__table__.insert().values(
                resource_id=resource.id,
                resource_kind=ResourceKind.INSTRUMENT,
                institute_id=resource.institute_id,
                company_id=user.company_id,
                user_id=user.id,
                start_at=start,
                end_at=end,
                status=BookingStatus.APPROVED,
                purpose="x",
            )
        )


def count_rows(model: Any) -> int:
    """How many rows ``model``'s table holds now."""
    return int(db.session.scalar(select(func.count()).select_from(model)) or 0)


def mails(kind: str) -> list[Notification]:
    """The messages of ``kind`` queued so far, oldest first."""
    return list(
        db.session.scalars(
            select(Notification).where(Notification.kind == kind).order_by(Notification.id)
        )
    )


def flask_db(app: Flask, *args: str) -> None:
    """``flask db <args>`` (Flask-Migrate) on ``app``; fails the test on an error."""
    result = app.test_cli_runner().invoke(args=["db", *args])
    assert result.exit_code == 0, f"flask db {' '.join(args)}: {result.output}\n{result.exception}"


def naive_wait_minutes(created: dt.datetime, decided: dt.datetime) -> int:
    """A decision wait as the statistics count it, written out independently: the
    wait in milliseconds rounded half away from zero, then whole minutes towards zero."""
    ms = (decided - created) / dt.timedelta(milliseconds=1)
    rounded = math.floor(abs(ms) + 0.5) * (1 if ms >= 0 else -1)
    return math.trunc(rounded / 60000)


def naive_median_hours(minutes: list[int]) -> float | None:
    """The median decision time of these waits (whole minutes), in hours to 0.01."""
    return round(statistics.median(minutes) / 60, 2) if minutes else None


@contextlib.contextmanager
def listening(listener: Any, name: str = "before_cursor_execute") -> Iterator[None]:
    """``listener`` on the app's engine's event ``name`` within, removed after."""
    engine = db.engine
    event.listen(engine, name, listener)
    try:
        yield
    finally:
        event.remove(engine, name, listener)


@contextlib.contextmanager
def sent_statements() -> Iterator[list[str]]:
    """Every statement sent to the database within, whitespace collapsed."""
    sent: list[str] = []

    def listener(_c: Any, _cur: Any, statement: str, *_a: Any) -> None:
        sent.append(" ".join(statement.split()))

    with listening(listener):
        yield sent


def threads_started(monkeypatch: Any) -> list[Any]:
    """The threads started from now on (they still run), in order."""
    started: list[threading.Thread] = []
    real = threading.Thread.start

    def start(thread: threading.Thread) -> None:
        started.append(thread)
        real(thread)

    monkeypatch.setattr(threading.Thread, "start", start)
    return started


def in_a_thread(work: Callable[[], T]) -> T:
    """``work``'s result, run in a thread of its own: no application context there,
    as in a server's request thread."""
    out: list[T] = []
    failed: list[BaseException] = []

    def run() -> None:
        try:
            out.append(work())
        except BaseException as exc:  # re-raised in the test's thread
            failed.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if failed:
        raise failed[0]
    return out[0]


def through_flask(client: FlaskClient, fast: Any, path: str, **kw: Any) -> Any:
    """The search answer Flask computes itself: the search fast path (``fast``, the
    app's ``CalendarFastPath``) off and nothing kept, before and after."""
    store = search_cache.cache_of(client.application)
    store.clear()
    fast.search_enabled = False
    try:
        before = fast.searches
        db.session.remove()  # as a server ends each request's session
        response = client.get(path, **kw)
        assert fast.searches == before
        return response
    finally:
        fast.search_enabled = True
        store.clear()
