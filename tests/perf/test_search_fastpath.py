"""The search fast path (labshare/fastpath.py): a cookie-less search is answered
before Flask, computed or from the cache, byte for byte and header for header as
Flask answers it; a query Flask would refuse, facets, a cookie, a database error
or the fast path off reach Flask."""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.exc import OperationalError

from labshare.api import search_answer
from labshare.booking import calendar_cache
from labshare.catalogue import free_time, search_cache
from labshare.extensions import db as _db
from labshare.fastpath import EXTENSION, CalendarFastPath
from labshare.models import Instrument
from labshare.timeutil import set_clock
from tests.factories import weekday_hours
from tests.helpers import in_a_thread, through_flask

GENERATED_ID = re.compile(r"[0-9a-f]{12}")
NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
PATH = "/api/v1/resources"


@pytest.fixture
def fast(app: Flask) -> Iterator[CalendarFastPath]:
    found = app.extensions[EXTENSION]
    assert isinstance(found, CalendarFastPath)
    assert found.search_enabled, "the testing configuration runs with the fast path"
    search_cache.cache_of(app).clear()
    yield found
    found.search_enabled = True


@pytest.fixture
def catalogue(db: Any, make_instrument: Any) -> list[int]:
    made = [
        make_instrument(name="压力校验仪", name_en="Pressure calibrator"),
        make_instrument(name="数字压力计", name_en="Digital manometer"),
        make_instrument(name="三坐标测量机", name_en="Coordinate measuring machine"),
    ]
    db.session.commit()
    return [i.id for i in made]


def send(client: FlaskClient, path: str, **kw: Any) -> Any:
    _db.session.remove()  # as a server ends each request's session
    return client.get(path, **kw)


def answered_by_fast(client: FlaskClient, fast: CalendarFastPath, path: str, **kw: Any) -> Any:
    before = fast.searches
    response = send(client, path, **kw)
    assert fast.searches == before + 1
    return response


def headers(response: Any) -> list[tuple[str, str]]:
    return sorted((k.lower(), v) for k, v in response.headers if k.lower() != "x-request-id")


def assert_same(a: Any, b: Any) -> None:
    assert a.status_code == b.status_code
    assert a.get_data() == b.get_data()
    assert headers(a) == headers(b)
    for response in (a, b):
        assert GENERATED_ID.fullmatch(response.headers["X-Request-Id"])


@pytest.mark.parametrize(
    "query",
    [
        "q=%E5%8E%8B%E5%8A%9B",  # 压力
        "q=pressure&per_page=2",
        "per_page=2&q=pressure",
        "q=pressure&per_page=1&page=2",
        "q=yali&near=31",
        "q=+pressure+&kind=&province=",  # blanks, as Flask reads them
        "q=pressure&q=yali",  # a repeated key: its first value, as Flask reads it
        "measurand=pressure",
        "measurand=pressure&value=5&unit=MPa",
        "measurand=%E5%8E%8B%E5%BC%BA&value=5000&unit=kPa",  # 压强
        "kind=lab&field=mechanical",
        "q=%25%22*NEAR_",  # only operators and punctuation: empty
        "page=999",
        "",
    ],
)
@pytest.mark.parametrize("threaded", [False, True], ids=["test-context", "own-context"])
def test_a_search_is_answered_before_flask_as_flask_answers_it(
    client: FlaskClient, fast: CalendarFastPath, catalogue: list[int], query: str, threaded: bool
) -> None:
    # threaded: no application context, as in a server's request thread (the fast
    # path's own context and, on PostgreSQL, its kept connection)
    store = search_cache.cache_of(client.application)
    path = f"{PATH}?{query}"

    def fast_answer() -> Any:
        if not threaded:
            return answered_by_fast(client, fast, path)
        _db.session.remove()
        before = fast.searches
        response = in_a_thread(lambda: client.get(path))
        assert fast.searches == before + 1
        return response

    computed = fast_answer()
    assert computed.status_code == 200
    assert store.hits == 0
    kept = fast_answer()  # computed, kept: now a hit
    assert store.hits == 1
    assert_same(kept, computed)
    assert_same(computed, through_flask(client, fast, f"{PATH}?{query}"))


def test_the_page_is_the_search_s(
    client: FlaskClient, fast: CalendarFastPath, catalogue: list[int]
) -> None:
    everything = answered_by_fast(client, fast, f"{PATH}?q=pressure&per_page=3").get_json()
    second = answered_by_fast(client, fast, f"{PATH}?q=pressure&per_page=1&page=2").get_json()
    assert second["total"] == everything["total"] == 3
    assert (second["page"], second["per_page"]) == (2, 1)
    assert second["items"] == everything["items"][1:2]


def test_a_window_search_is_computed_as_flask_computes_it(
    client: FlaskClient,
    fast: CalendarFastPath,
    db: Any,
    make_institute: Any,
    make_lab: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    set_clock(lambda: NOW)
    institute = make_institute()
    for _ in range(4):
        make_lab(institute=institute, hours=weekday_hours("09:00", "17:00", range(5)))
    db.session.commit()
    monkeypatch.setattr(free_time, "AVAILABILITY_SCAN_LIMIT", 2)  # checks 3: truncated
    # Saturday: every candidate is examined (and closed), the scan stops at the limit
    window = "available_from=2030-01-05T00:00:00%2B08:00&available_to=2030-01-06T00:00:00%2B08:00"
    open_days = (
        "available_from=2030-01-07T09:00:00%2B08:00&available_to=2030-01-07T12:00:00%2B08:00"
    )
    for query in (window, open_days, "per_page=1&" + open_days):
        computed = answered_by_fast(client, fast, f"{PATH}?{query}")
        assert_same(computed, through_flask(client, fast, f"{PATH}?{query}"))
    truncated = answered_by_fast(client, fast, f"{PATH}?{window}")
    assert truncated.headers["X-Availability-Truncated"] == "true"
    assert truncated.get_json()["total"] == 0
    free = answered_by_fast(client, fast, f"{PATH}?per_page=1&{open_days}")
    assert len(free.get_json()["items"]) == 1


def test_the_request_id_is_echoed_as_in_flask(
    client: FlaskClient, fast: CalendarFastPath, catalogue: list[int]
) -> None:
    sent = {"X-Request-Id": "r" * 100}
    computed = answered_by_fast(client, fast, f"{PATH}?q=pressure", headers=sent)
    assert computed.headers["X-Request-Id"] == "r" * 64
    kept = answered_by_fast(client, fast, f"{PATH}?q=pressure", headers=sent)
    assert kept.headers["X-Request-Id"] == "r" * 64


def test_a_catalogue_change_is_seen_at_once(
    client: FlaskClient, fast: CalendarFastPath, catalogue: list[int], db: Any
) -> None:
    assert answered_by_fast(client, fast, f"{PATH}?q=vortexa").get_json()["total"] == 0
    answered_by_fast(client, fast, f"{PATH}?q=vortexa")
    instrument = db.session.get(Instrument, catalogue[2])
    instrument.name_en = "Vortexa flow bench"
    db.session.commit()
    second = answered_by_fast(client, fast, f"{PATH}?q=vortexa")  # computed again
    assert [i["id"] for i in second.get_json()["items"]] == [catalogue[2]]
    third = answered_by_fast(client, fast, f"{PATH}?q=vortexa")
    assert third.get_data() == second.get_data()


@pytest.mark.parametrize(
    "query, status",
    [
        ("q=" + "x" * 10_000, 422),
        ("q=%00", 422),
        ("province=%00", 422),
        ("per_page=0", 422),
        ("page=x", 422),
        ("value=5&unit=MPa", 422),  # a value without a measurand: the search refuses it
        ("measurand=pressure&value=5&unit=furlong", 422),
        ("available_from=2030-01-07T09:00:00", 422),  # naive
        ("q=pressure&facets=true", 200),
    ],
)
def test_what_flask_would_refuse_or_translate_reaches_flask(
    client: FlaskClient,
    fast: CalendarFastPath,
    catalogue: list[int],
    query: str,
    status: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    before = fast.searches
    with caplog.at_level(logging.DEBUG, logger="labshare.fastpath"):
        for language in ("en", "zh"):
            headers = {"Accept-Language": language}
            response = send(client, f"{PATH}?{query}", headers=headers)
            assert response.status_code == status, response.get_data(as_text=True)
    assert fast.searches == before
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # not a fault


def test_a_refusal_names_the_field_in_the_user_s_language(
    client: FlaskClient, fast: CalendarFastPath, catalogue: list[int]
) -> None:
    naive = f"{PATH}?available_from=2030-01-07T09:00:00&available_to=2030-01-08T09:00:00%2B08:00"
    english = send(client, naive, headers={"Accept-Language": "en"})
    chinese = send(client, naive, headers={"Accept-Language": "zh"})
    for response in (english, chinese):
        assert response.status_code == 422
        assert response.get_json()["error"]["field"] == "available_from"
    assert english.get_json()["error"]["message"] != chinese.get_json()["error"]["message"]
    assert re.search("[\u4e00-\u9fff]", chinese.get_json()["error"]["message"])


def test_a_request_with_a_cookie_reaches_flask(
    client: FlaskClient, fast: CalendarFastPath, catalogue: list[int]
) -> None:
    answered_by_fast(client, fast, f"{PATH}?q=pressure")
    client.set_cookie("unrelated", "1")
    before = fast.searches
    response = send(client, f"{PATH}?q=pressure")
    assert fast.searches == before
    assert response.status_code == 200


def test_with_the_cache_off_every_search_is_computed_before_flask(
    app: Flask, client: FlaskClient, fast: CalendarFastPath, catalogue: list[int]
) -> None:
    budget = app.config.get("SEARCH_CACHE_BYTES", search_cache.DEFAULT_BYTES)
    app.config["SEARCH_CACHE_BYTES"] = 0
    app.extensions.pop(search_cache.EXTENSION, None)
    try:
        first = answered_by_fast(client, fast, f"{PATH}?q=pressure")
        second = answered_by_fast(client, fast, f"{PATH}?q=pressure")
        assert_same(first, second)
        assert_same(first, through_flask(client, fast, f"{PATH}?q=pressure"))
        assert search_cache.cache_of(app).entries == {}
    finally:
        app.config["SEARCH_CACHE_BYTES"] = budget
        app.extensions.pop(search_cache.EXTENSION, None)


def test_with_the_fast_path_off_every_search_reaches_flask(
    client: FlaskClient, fast: CalendarFastPath, catalogue: list[int]
) -> None:
    fast.search_enabled = False
    before = fast.searches
    for _ in range(2):
        assert send(client, f"{PATH}?q=pressure").status_code == 200
    assert fast.searches == before


def test_a_database_error_is_left_to_flask(
    client: FlaskClient,
    fast: CalendarFastPath,
    catalogue: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = answered_by_fast(client, fast, f"{PATH}?q=pressure")

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise OperationalError("SELECT 1", {}, Exception("server closed the connection"))

    monkeypatch.setattr(calendar_cache, "plain_reader", broken)
    before = fast.searches
    response = send(client, f"{PATH}?q=pressure")
    assert fast.searches == before
    assert response.status_code == 200
    assert response.get_data() == first.get_data()  # Flask's own cache hit


def test_a_database_error_while_computing_is_left_to_flask(
    client: FlaskClient,
    fast: CalendarFastPath,
    catalogue: list[int],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = []
    answer = search_answer.answer

    def fails_once(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        if len(calls) == 1:  # the fast path's call; Flask's succeeds
            raise OperationalError("SELECT 1", {}, Exception("server closed the connection"))
        return answer(*args, **kwargs)

    monkeypatch.setattr(search_answer, "answer", fails_once)
    before = fast.searches
    with caplog.at_level(logging.WARNING, logger="labshare.fastpath"):
        response = send(client, f"{PATH}?q=pressure")
    assert [r.exc_info[0] for r in caplog.records if r.exc_info] == [OperationalError]
    assert len(calls) == 2
    assert fast.searches == before
    assert response.status_code == 200
    monkeypatch.setattr(search_answer, "answer", answer)
    assert response.get_data() == through_flask(client, fast, f"{PATH}?q=pressure").get_data()


def test_the_aliases_are_bounded(app: Flask, fast: CalendarFastPath) -> None:
    store = search_cache.cache_of(app)
    for n in range(search_cache.MAX_ALIASES + 10):
        store.alias(f"q={n}", ("q", str(n)))
    assert len(store.aliases) <= search_cache.MAX_ALIASES
    store.alias("q=" + "x" * search_cache.MAX_ALIAS_QUERY, ("q", "x"))
    assert store.key_of("q=" + "x" * search_cache.MAX_ALIAS_QUERY) is None


def test_a_query_string_s_model_is_read_once_and_shared(
    client: FlaskClient, fast: CalendarFastPath, catalogue: list[int], no_answer_cache: None
) -> None:
    """The search's model is a function of the query string alone: kept per query
    string (frozen, since it is shared), not for a very long one; a refusal is never
    kept (``test_what_flask_would_refuse_or_translate_reaches_flask``)."""
    from pydantic import ValidationError

    from labshare import fastpath

    fastpath._kept_query.cache_clear()
    query = "q=pressure&per_page=2"
    first = answered_by_fast(client, fast, f"{PATH}?{query}")
    second = answered_by_fast(client, fast, f"{PATH}?{query}")
    assert_same(first, second)
    info = fastpath._kept_query.cache_info()
    assert (info.misses, info.hits) == (1, 1)
    model = fastpath._kept_query(query)
    assert model is not None and model.per_page == 2
    with pytest.raises(ValidationError):
        model.per_page = 3
    long = f"{query}&{'x=1&' * 300}"
    assert len(long) > fastpath._KEPT_QUERY
    assert_same(answered_by_fast(client, fast, f"{PATH}?{long}"), first)
    assert fastpath._kept_query.cache_info().currsize == 1
