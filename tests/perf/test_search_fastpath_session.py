"""The session of a search the fast path computes (search_reads.kept_session): in a
server's request thread no application context is active, and on PostgreSQL the
search then reads on a kept autocommit connection, given back after the search
(dropped after an error); within an active context (a test's, the warm-up's) and
on SQLite it reads as Flask's handler does."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from labshare.api import search_answer
from labshare.booking import calendar_cache
from labshare.catalogue import search_cache
from labshare.catalogue import search_reads as reads
from labshare.extensions import db as _db
from labshare.fastpath import EXTENSION, CalendarFastPath
from labshare.models import Resource
from tests.helpers import in_a_thread, through_flask

PATH = "/api/v1/resources"


@pytest.fixture
def fast(app: Flask) -> CalendarFastPath:
    found = app.extensions[EXTENSION]
    assert isinstance(found, CalendarFastPath)
    search_cache.cache_of(app).clear()
    return found


@pytest.fixture
def catalogue(db: Any, make_instrument: Any) -> list[int]:
    made = [make_instrument(name="压力校验仪", name_en="Pressure calibrator") for _ in range(3)]
    db.session.commit()
    return [i.id for i in made]


def spied(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bool, bool]]:
    """For each search computed: (its session is on a kept connection, that
    connection is in the driver's autocommit)."""
    seen: list[tuple[bool, bool]] = []
    real = search_answer.answer

    def answer(*args: Any, **kwargs: Any) -> Any:
        session = _db.session()
        kept = bool(session.info.get(reads.KEPT))
        raw = session.connection().connection.dbapi_connection
        seen.append((kept, bool(getattr(raw, "autocommit", False))))
        return real(*args, **kwargs)

    monkeypatch.setattr(search_answer, "answer", answer)
    return seen


def get(client: FlaskClient, query: str) -> Any:
    return client.get(f"{PATH}?{query}")


def test_a_request_thread_s_search_reads_on_a_kept_connection(
    app: Flask,
    client: FlaskClient,
    fast: CalendarFastPath,
    catalogue: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen = spied(monkeypatch)
    before = fast.searches
    threaded = in_a_thread(lambda: get(client, "q=pressure&per_page=2"))
    assert fast.searches == before + 1
    on_postgres = _db.engine.dialect.name == "postgresql"
    assert seen == [(on_postgres, on_postgres)]
    flask_s = through_flask(client, fast, f"{PATH}?q=pressure&per_page=2")
    assert threaded.get_data() == flask_s.get_data()
    assert [i["id"] for i in threaded.get_json()["items"]] == catalogue[:2]


@pytest.mark.postgresql_only
def test_the_kept_connection_is_given_back_and_used_again(
    app: Flask, client: FlaskClient, fast: CalendarFastPath, catalogue: list[int]
) -> None:
    kept = calendar_cache.cache_of(app).kept
    kept.close()
    assert kept.open == 0
    for n in range(5):
        assert in_a_thread(lambda n=n: get(client, f"q=pressure&page={n + 1}")).status_code == 200
        assert kept.open == 1  # one connection, given back after each search


@pytest.mark.postgresql_only
def test_after_an_error_the_connection_is_dropped_and_flask_answers(
    app: Flask,
    client: FlaskClient,
    fast: CalendarFastPath,
    catalogue: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kept = calendar_cache.cache_of(app).kept
    kept.close()
    real = search_answer.answer
    calls: list[bool] = []

    def fails_in_the_kept_session(*args: Any, **kwargs: Any) -> Any:
        kept_session = bool(_db.session().info.get(reads.KEPT))
        calls.append(kept_session)
        if kept_session:
            raise OperationalError("SELECT 1", {}, Exception("server closed the connection"))
        return real(*args, **kwargs)

    monkeypatch.setattr(search_answer, "answer", fails_in_the_kept_session)
    before = fast.searches
    response = in_a_thread(lambda: get(client, "q=pressure"))
    assert response.status_code == 200  # Flask's answer, in its own session
    assert calls == [True, False]
    assert fast.searches == before
    assert kept.open == 0  # dropped, not kept for the next search
    monkeypatch.setattr(search_answer, "answer", real)
    assert in_a_thread(lambda: get(client, "q=pressure")).get_data() == response.get_data()
    assert kept.open == 1


@pytest.mark.postgresql_only
def test_the_kept_session_reads_on_its_connection_without_a_transaction_of_its_own(
    app: Flask, catalogue: list[int]
) -> None:
    """Its ``connection()`` is the kept connection itself: no session transaction is
    begun to join the connection's (there is none to track in autocommit); the ORM's
    execution works as usual in the same session, on the same connection."""

    def work() -> list[str]:
        with app.app_context(), reads.kept_session():
            session = _db.session()
            assert isinstance(session, reads.ReaderSession)
            conn = session.connection()
            assert conn is session.bind and session._transaction is None
            assert conn.connection.dbapi_connection.autocommit  # type: ignore[union-attr]
            names = session.scalars(select(Resource.name).where(Resource.id.in_(catalogue)))
            found = list(names)
            assert session._transaction is not None  # the ORM's, as usual
            assert session.connection() is conn
            return found

    assert in_a_thread(work) == ["压力校验仪"] * 3


def test_within_an_active_context_the_search_reads_as_flask_s_handler(
    client: FlaskClient,
    fast: CalendarFastPath,
    catalogue: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen = spied(monkeypatch)
    before = fast.searches
    assert get(client, "q=pressure").status_code == 200  # the test's context is active
    assert fast.searches == before + 1
    assert [kept for kept, _autocommit in seen] == [False]


def test_a_session_in_use_is_left_as_it_is(app: Flask, db: Any, catalogue: list[int]) -> None:
    session = db.session()
    with reads.kept_session():
        assert db.session() is session
        assert not db.session().info.get(reads.KEPT)
    assert db.session() is session
