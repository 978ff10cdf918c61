"""The search's answer cache: served again only at the catalogue version it was
computed at; every change a search can see (by the ORM, by SQL from another
connection) changes that version on both databases, a booking does not."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import text

from labshare.catalogue import search_cache
from labshare.extensions import db as _db
from labshare.models import BookingStatus, Instrument, Resource

PARAMS = {"q": "压力"}


def _version() -> Any:
    with _db.engine.connect() as conn:
        return conn.execute(text("SELECT version FROM catalogue_version WHERE id = 1")).scalar()


def _search(client: Any, **params: Any) -> Any:
    # Each request of the server has a session of its own; the test's app context
    # would otherwise keep one (and, on SQLite, its snapshot) across requests.
    _db.session.remove()
    response = client.get("/api/v1/resources", query_string=params or PARAMS)
    assert response.status_code == 200
    return response


def _names(client: Any, **params: Any) -> list[str]:
    return [i["name"] for i in _search(client, **params).get_json()["items"]]


@pytest.fixture
def store(app: Any) -> Any:
    found = search_cache.cache_of(app)
    found.clear()
    return found


def test_a_repeated_search_is_served_from_the_cache_identically(
    client: Any, store: Any, make_instrument: Any
) -> None:
    make_instrument()
    _db.session.commit()
    first = _search(client)
    hits = store.hits
    again = _search(client)
    assert store.hits == hits + 1
    assert again.get_data() == first.get_data()
    drop = {"Date", "X-Request-Id"}
    assert [(k, v) for k, v in again.headers if k not in drop] == [
        (k, v) for k, v in first.headers if k not in drop
    ]


def test_facets_and_windows_the_clock_changes_are_never_cached(
    client: Any, store: Any, make_instrument: Any
) -> None:
    """The window lies beyond the horizon (years ahead): bookable later, so never kept
    (tests/catalogue/test_window_cache.py has the windows that are)."""
    make_instrument()
    _db.session.commit()
    for _ in range(2):
        _search(client, q="压力", facets="true")
        _search(
            client,
            measurand="pressure",
            available_from="2030-01-08T09:00:00+08:00",
            available_to="2030-01-08T12:00:00+08:00",
        )
    assert store.hits == 0
    assert not store.entries


@pytest.mark.parametrize(
    "change",
    [
        "UPDATE resource SET name = '温度计' WHERE kind = 'instrument'",
        "UPDATE resource SET status = 'retired'",
        "UPDATE institute SET active = false",
        "UPDATE instrument SET model = 'X-1'",
        "DELETE FROM search_doc",
    ],
)
def test_a_change_by_another_connection_is_seen_at_once(
    client: Any, store: Any, make_instrument: Any, change: str
) -> None:
    make_instrument(name="压力表")
    _db.session.commit()
    before = _search(client).get_data()
    assert _search(client).get_data() == before
    version = _version()
    with _db.engine.begin() as conn:
        conn.execute(text(change))
    assert _version() != version
    after = _search(client).get_data()
    store.clear()
    assert after == _search(client).get_data()  # what an empty cache computes
    if "model" not in change:  # the model is not in the answer
        assert after != before


def test_rules_and_edits_through_the_orm_are_seen(
    client: Any, store: Any, make_instrument: Any, make_lab: Any
) -> None:
    from labshare.models import BookingRules

    instrument = make_instrument(name="压力表")
    iid = instrument.id
    _db.session.commit()
    assert _names(client) == ["压力表"]
    _db.session.add(BookingRules(resource_id=iid, min_minutes=60))
    _db.session.commit()
    assert _search(client).get_json()["items"][0]["rules"]["min_minutes"] == 60
    _db.session.get(Instrument, iid).name = "压力计"
    _db.session.commit()
    assert _names(client) == ["压力计"]
    make_instrument(name="新压力表", lab=make_lab())
    _db.session.commit()
    assert sorted(_names(client)) == ["压力计", "新压力表"]


def test_a_booking_keeps_the_version(
    client: Any, store: Any, make_instrument: Any, make_booking: Any
) -> None:
    instrument = make_instrument()
    _db.session.commit()
    version = _version()
    booking = make_booking(
        resource=instrument,
        start=dt.datetime(2030, 1, 8, 1, tzinfo=dt.UTC),
        end=dt.datetime(2030, 1, 8, 2, tzinfo=dt.UTC),
        status=BookingStatus.PENDING,
    )
    _db.session.commit()
    booking.status = BookingStatus.CANCELLED
    _db.session.commit()
    assert _version() == version
    _search(client)
    hits = store.hits
    _search(client)
    assert store.hits == hits + 1


def test_without_the_version_row_nothing_is_cached_and_answers_stay_right(
    client: Any, store: Any, make_instrument: Any
) -> None:
    instrument = make_instrument(name="压力表")
    iid = instrument.id
    _db.session.commit()
    with _db.engine.begin() as conn:
        conn.execute(text("DELETE FROM catalogue_version"))
    assert _names(client) == ["压力表"]
    assert not store.entries
    _db.session.get(Instrument, iid).name = "压力计"
    _db.session.commit()
    assert _version() is not None  # the next change writes it again
    assert _names(client) == ["压力计"]


def test_a_zero_budget_turns_it_off(app: Any, client: Any, make_instrument: Any) -> None:
    make_instrument()
    _db.session.commit()
    app.extensions.pop(search_cache.EXTENSION, None)
    app.config["SEARCH_CACHE_BYTES"] = 0
    try:
        _search(client)
        _search(client)
        assert search_cache.cache_of(app).hits == 0
    finally:
        app.extensions.pop(search_cache.EXTENSION, None)


#: An UPDATE of each column of ``resource`` but its id and ``calendar_version``, by
#: SQL from another connection (valid on both databases). A column added to the
#: table fails the test below until it is listed here and in the PostgreSQL
#: trigger's ``UPDATE OF`` list (migration 0030), which this test then checks too.
RESOURCE_CHANGES = {
    "kind": "kind = 'lab'",
    "institute_id": "institute_id = :other_institute",
    "name": "name = 'changed'",
    "name_en": "name_en = 'changed'",
    "description": "description = 'changed'",
    "field": "field = 'optical'",
    "status": "status = 'retired'",
    "requires_qualification": "requires_qualification = NOT requires_qualification",
    "fee_per_hour": "fee_per_hour = fee_per_hour + 1",
    "fee_waiver_percent": "fee_waiver_percent = fee_waiver_percent + 1",
    "created_at": "created_at = :when",
    "external_id": "external_id = 'changed'",
}


def test_every_resource_column_is_listed() -> None:
    columns = {c.name for c in Resource.__table__.c} - {"id", "calendar_version"}
    assert set(RESOURCE_CHANGES) == columns


@pytest.mark.parametrize("column", sorted(RESOURCE_CHANGES))
def test_an_update_of_any_resource_column_changes_the_version(
    make_instrument: Any, make_institute: Any, column: str
) -> None:
    instrument = make_instrument(name="压力表", name_en="gauge", fee_per_hour=100)
    other = make_institute()
    _db.session.commit()
    params = {
        "id": instrument.id,
        "other_institute": other.id,
        "when": dt.datetime(2031, 1, 2, 3, 4, tzinfo=dt.UTC),
    }
    version = _version()
    with _db.engine.begin() as conn:
        conn.execute(
            text(f"UPDATE resource SET {RESOURCE_CHANGES[column]} WHERE id = :id"),
            {k: v for k, v in params.items() if f":{k}" in RESOURCE_CHANGES[column] or k == "id"},
        )
    assert _version() != version


def test_a_calendar_bump_alone_keeps_the_version(make_instrument: Any) -> None:
    instrument = make_instrument()
    _db.session.commit()
    version = _version()
    with _db.engine.begin() as conn:
        conn.execute(
            text("UPDATE resource SET calendar_version = calendar_version + 1 WHERE id = :id"),
            {"id": instrument.id},
        )
    assert _version() == version


@pytest.mark.postgresql_only
def test_the_catalogue_trigger_fires_on_every_resource_column_but_the_calendar_version(
    app: Any,
) -> None:
    listed = _db.session.scalars(
        text(
            "SELECT a.attname FROM pg_trigger t JOIN pg_attribute a"
            " ON a.attrelid = t.tgrelid AND a.attnum = ANY(t.tgattr)"
            " WHERE t.tgname = 'catalogue_resource_upd'"
        )
    ).all()
    columns = {c.name for c in Resource.__table__.c}
    assert set(listed) == columns - {"calendar_version"}
