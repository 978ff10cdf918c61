"""The calendar's own PostgreSQL connections (booking/calendar_cache.py,
``_KeptConnections``) and a cache hit's one query (booking/calendar_read.py,
``stamp``): each calendar read in flight keeps a connection of its own, up to the
pool's size, and a hit sends the stamp through libpq as a prepared statement."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Connection, text

from labshare.booking import calendar_cache, calendar_read
from labshare.extensions import db as _db
from tests.helpers import listening

MONDAY = dt.datetime(2030, 1, 7, tzinfo=dt.UTC)
WEEK = {"from": MONDAY.isoformat(), "to": (MONDAY + dt.timedelta(days=7)).isoformat()}


@contextlib.contextmanager
def checkouts() -> Iterator[list[int]]:
    """How many connections the engine's pool hands out meanwhile."""
    seen: list[int] = []

    def listener(*_args: Any) -> None:
        seen.append(1)

    with listening(listener, "checkout"):
        yield seen


@pytest.fixture
def kept(app: Flask) -> Iterator[Any]:
    store = calendar_cache.cache_of(app)
    store.kept.close()
    yield store.kept
    store.kept.close()


@pytest.mark.postgresql_only
def test_reads_in_flight_at_once_each_keep_a_connection(app: Flask, kept: Any) -> None:
    """A threaded worker serves several calendars at once: after the first burst,
    the same burst again takes nothing from the pool."""
    engine = _db.engine
    for _ in range(2):
        with checkouts() as taken:
            with kept.reader(engine) as a, kept.reader(engine) as b, kept.reader(engine) as c:
                pids = {
                    conn.execute(text("SELECT pg_backend_pid()")).scalar_one() for conn in (a, b, c)
                }
            assert len(pids) == 3
        assert kept.open == 3
    assert taken == []


@pytest.mark.postgresql_only
def test_at_most_the_pools_size_are_kept(app: Flask, kept: Any) -> None:
    engine = _db.engine
    size = engine.pool.size()  # type: ignore[attr-defined]
    with contextlib.ExitStack() as stack:
        readers = [stack.enter_context(kept.reader(engine)) for _ in range(size + 1)]
        assert kept.open == size
        for conn in readers:  # the one beyond the limit is a pool connection of its own
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
    assert kept.open == size
    kept.close()
    assert kept.open == 0


@pytest.mark.postgresql_only
def test_a_bursts_extra_connections_go_back_to_the_pool_when_idle(
    app: Flask, kept: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = _db.engine
    with kept.reader(engine), kept.reader(engine), kept.reader(engine):
        pass
    assert kept.open == 3
    monkeypatch.setattr(calendar_cache._KeptConnections, "IDLE_SECONDS", 0.0)
    with kept.reader(engine) as conn:  # every idle one was idle too long: a new one
        assert conn.execute(text("SELECT 1")).scalar_one() == 1
        assert kept.open == 1


@pytest.mark.postgresql_only
def test_a_failed_read_drops_its_connection(app: Flask, kept: Any) -> None:
    engine = _db.engine
    with pytest.raises(ZeroDivisionError), kept.reader(engine):
        raise ZeroDivisionError
    assert kept.open == 0
    with kept.reader(engine) as conn:
        assert conn.execute(text("SELECT 1")).scalar_one() == 1
    assert kept.open == 1


def _url(rid: int) -> str:
    return f"/api/v1/resources/{rid}/availability"


def _get(client: FlaskClient, rid: int, **kw: Any) -> Any:
    response = client.get(_url(rid), query_string=WEEK, **kw)
    _db.session.rollback()  # as a server ends each request's session
    return response


@pytest.fixture(params=["fast path", "flask"])
def path(request: pytest.FixtureRequest, app: Flask) -> Iterator[str]:
    fast = app.extensions["labshare_fastpath"]
    fast.enabled = request.param == "fast path"
    try:
        yield request.param
    finally:
        fast.enabled = True


def test_a_hit_reads_the_stamp_alone(
    app: Flask, client: FlaskClient, make_instrument: Any, db: Any, path: str
) -> None:
    """The one query of a cache hit is ``STAMP`` (only the joins the versions need),
    not the render's subject row; and the stamp a hit reads is the one the render
    stored (else every request would render again: two statements)."""
    inst = make_instrument()
    db.session.commit()
    rid = inst.id
    first = _get(client, rid)
    seen: list[str] = []

    def listener(*args: Any) -> None:
        seen.append(args[2])

    with listening(listener):
        again = _get(client, rid)
    assert again.get_data() == first.get_data()
    assert again.headers["ETag"] == first.headers["ETag"]
    assert len(seen) == 1, seen
    assert " AS stamp" in seen[0] and "booking_rules" not in seen[0], seen[0]


def test_the_stamp_is_the_subject_rows(app: Flask, make_instrument: Any, make_lab: Any) -> None:
    """What a hit reads (``stamp``, through libpq on PostgreSQL) is exactly what the
    render read in its subject row (through psycopg's cursor or SQLAlchemy)."""
    lab = make_lab()
    inst = make_instrument(lab=lab)
    _db.session.commit()
    store = calendar_cache.cache_of(app)
    for rid in (inst.id, lab.id):
        with calendar_cache.plain_reader(store, _db.engine) as reader:
            hit = calendar_read.stamp(reader, rid)
            subject = calendar_read.execute(reader, calendar_read.SUBJECT, {"rid": rid})
        assert hit is not None and hit == subject[0].stamp
        assert hit == _db.session.execute(calendar_read.SUBJECT, {"rid": rid}).one().stamp
    with calendar_cache.plain_reader(store, _db.engine) as reader:
        assert calendar_read.stamp(reader, 999_999) is None


@pytest.mark.postgresql_only
def test_a_prepared_statement_dropped_meanwhile_is_prepared_again(
    app: Flask, client: FlaskClient, make_instrument: Any, db: Any, kept: Any, path: str
) -> None:
    inst = make_instrument()
    db.session.commit()
    first = _get(client, inst.id)
    assert _get(client, inst.id).status_code == 200  # a hit: prepared now
    with kept.reader(_db.engine) as conn:
        assert isinstance(conn, Connection)
        conn.exec_driver_sql("DEALLOCATE ALL")
    store = calendar_cache.cache_of(app)
    hits = store.hits
    again = _get(client, inst.id)
    assert again.status_code == 200
    assert again.get_data() == first.get_data()
    assert store.hits == hits + 1
    assert kept.open == 1  # the same connection: not dropped
