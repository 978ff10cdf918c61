"""The search fast path (labshare/fastpath.py): a search Flask has answered and
cached is answered again before Flask, byte for byte and header for header as
Flask answers it; anything else (a query string Flask has not read, a changed
catalogue, a cookie, the cache off) reaches Flask."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.exc import OperationalError

from labshare.booking import calendar_cache
from labshare.catalogue import search_cache
from labshare.extensions import db as _db
from labshare.fastpath import EXTENSION, CalendarFastPath
from labshare.models import Instrument

GENERATED_ID = re.compile(r"[0-9a-f]{12}")
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


@pytest.mark.parametrize(
    "query",
    [
        "q=%E5%8E%8B%E5%8A%9B",  # 压力
        "q=pressure&per_page=2",
        "per_page=2&q=pressure",  # another string: read by Flask once, then fast
        "q=yali&near=31",
        "measurand=pressure",
        "q=%25%22*NEAR_",  # only operators and punctuation: empty, cached as such
    ],
)
def test_a_search_flask_has_answered_is_answered_again_identically(
    client: FlaskClient, fast: CalendarFastPath, catalogue: list[int], query: str
) -> None:
    before = fast.searches
    first = send(client, f"{PATH}?{query}")  # Flask: computed and cached
    assert fast.searches == before
    assert first.status_code == 200
    again = answered_by_fast(client, fast, f"{PATH}?{query}")
    assert again.status_code == 200
    assert again.get_data() == first.get_data()
    assert headers(again) == headers(first)
    assert GENERATED_ID.fullmatch(again.headers["X-Request-Id"])
    fast.search_enabled = False
    through_flask = send(client, f"{PATH}?{query}")  # Flask's own cache hit
    assert through_flask.get_data() == again.get_data()
    assert headers(through_flask) == headers(again)


def test_the_request_id_is_echoed_as_in_flask(
    client: FlaskClient, fast: CalendarFastPath, catalogue: list[int]
) -> None:
    send(client, f"{PATH}?q=pressure")
    sent = {"X-Request-Id": "r" * 100}
    response = answered_by_fast(client, fast, f"{PATH}?q=pressure", headers=sent)
    assert response.headers["X-Request-Id"] == "r" * 64


def test_a_catalogue_change_is_seen_at_once(
    client: FlaskClient, fast: CalendarFastPath, catalogue: list[int], db: Any
) -> None:
    assert send(client, f"{PATH}?q=vortexa").get_json()["total"] == 0
    answered_by_fast(client, fast, f"{PATH}?q=vortexa")
    instrument = db.session.get(Instrument, catalogue[2])
    instrument.name_en = "Vortexa flow bench"
    db.session.commit()
    before = fast.searches
    second = send(client, f"{PATH}?q=vortexa")
    assert fast.searches == before  # a new catalogue version: Flask computes it again
    assert [i["id"] for i in second.get_json()["items"]] == [catalogue[2]]
    third = answered_by_fast(client, fast, f"{PATH}?q=vortexa")
    assert third.get_data() == second.get_data()


@pytest.mark.parametrize(
    "query, status",
    [
        ("q=" + "x" * 10_000, 422),
        ("q=%00", 422),
        ("per_page=0", 422),
        (  # beyond the horizon: bookable later, never kept (test_window_cache.py)
            "available_from=2030-01-07T09:00:00%2B08:00&available_to=2030-01-07T12:00:00%2B08:00",
            200,
        ),
        ("q=pressure&facets=true", 200),
    ],
)
def test_what_flask_does_not_cache_always_reaches_flask(
    client: FlaskClient, fast: CalendarFastPath, catalogue: list[int], query: str, status: int
) -> None:
    before = fast.searches
    for _ in range(2):
        response = send(client, f"{PATH}?{query}")
        assert response.status_code == status, response.get_data(as_text=True)
    assert fast.searches == before


def test_a_request_with_a_cookie_reaches_flask(
    client: FlaskClient, fast: CalendarFastPath, catalogue: list[int]
) -> None:
    send(client, f"{PATH}?q=pressure")
    client.set_cookie("unrelated", "1")
    before = fast.searches
    response = send(client, f"{PATH}?q=pressure")
    assert fast.searches == before
    assert response.status_code == 200


def test_with_the_cache_off_every_search_reaches_flask(
    app: Flask, client: FlaskClient, fast: CalendarFastPath, catalogue: list[int]
) -> None:
    send(client, f"{PATH}?q=pressure")
    budget = app.config.get("SEARCH_CACHE_BYTES", search_cache.DEFAULT_BYTES)
    app.config["SEARCH_CACHE_BYTES"] = 0
    app.extensions.pop(search_cache.EXTENSION, None)
    try:
        before = fast.searches
        for _ in range(2):
            assert send(client, f"{PATH}?q=pressure").status_code == 200
        assert fast.searches == before
    finally:
        app.config["SEARCH_CACHE_BYTES"] = budget
        app.extensions.pop(search_cache.EXTENSION, None)


def test_a_database_error_is_left_to_flask(
    client: FlaskClient,
    fast: CalendarFastPath,
    catalogue: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = send(client, f"{PATH}?q=pressure")

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise OperationalError("SELECT 1", {}, Exception("server closed the connection"))

    monkeypatch.setattr(calendar_cache, "plain_reader", broken)
    before = fast.searches
    response = send(client, f"{PATH}?q=pressure")
    assert fast.searches == before
    assert response.status_code == 200
    assert response.get_data() == first.get_data()  # Flask's own cache hit


def test_the_aliases_are_bounded(app: Flask, fast: CalendarFastPath) -> None:
    store = search_cache.cache_of(app)
    for n in range(search_cache.MAX_ALIASES + 10):
        store.alias(f"q={n}", ("q", str(n)))
    assert len(store.aliases) <= search_cache.MAX_ALIASES
    store.alias("q=" + "x" * search_cache.MAX_ALIAS_QUERY, ("q", "x"))
    assert store.key_of("q=" + "x" * search_cache.MAX_ALIAS_QUERY) is None
