"""Capability + a free window, the ``duration`` of the free time, and the "free this
week" facet: answers known in advance, including the case where the only instrument
that can measure the value is booked, closed or out of calibration in the window."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import event

from labshare.catalogue import free_time, search_result
from labshare.extensions import db as _db
from labshare.models import BookingStatus, Closure, ResourceStatus
from labshare.timeutil import set_clock
from tests.factories import weekday_hours
from tests.helpers import error_of

#: Tuesday 1 January 2030, 08:00 in Shanghai.
NOW = dt.datetime(2030, 1, 1, 0, 0, tzinfo=dt.UTC)
#: Tuesday 8 January, 09:00-12:00 in Shanghai.
WINDOW = {
    "available_from": "2030-01-08T09:00:00+08:00",
    "available_to": "2030-01-08T12:00:00+08:00",
}
ASK = {"measurand": "pressure", "value": "5", "unit": "MPa", **WINDOW}


@pytest.fixture
def clock(app: Any) -> Any:
    set_clock(lambda: NOW)
    yield
    set_clock(None)


def _at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2030, 1, day, hour, minute, tzinfo=dt.UTC)


def _ids(response: Any) -> list[int]:
    assert response.status_code == 200, response.get_data(as_text=True)
    return [item["id"] for item in response.get_json()["items"]]


@pytest.fixture
def lab(db: Any, make_lab: Any) -> Any:
    return make_lab(hours=weekday_hours("08:00", "18:00", range(5)))


@pytest.mark.parametrize(
    "blocked_by",
    ["nothing", "booking", "closure", "lab_closure", "calibration", "maintenance", "hours"],
)
def test_the_only_fitting_instrument(
    client: Any,
    clock: Any,
    lab: Any,
    make_lab: Any,
    make_instrument: Any,
    make_booking: Any,
    blocked_by: str,
) -> None:
    # Cannot measure 5 MPa, but free: never an answer.
    make_instrument(lab=lab, range_max=1.0, range_max_base=1e6)
    make_instrument(
        lab=lab,
        measurand="temperature",
        unit="°C",
        range_min=-40,
        range_max=200,
        range_min_base=233.15,
        range_max_base=473.15,
    )
    if blocked_by == "hours":  # its lab opens only at weekends
        lab = make_lab(hours=weekday_hours("08:00", "18:00", range(5, 7)))
    fit = make_instrument(lab=lab)
    if blocked_by == "booking":
        make_booking(resource=fit, start=_at(8, 1), end=_at(8, 4), status=BookingStatus.PENDING)
    elif blocked_by == "closure":
        _db.session.add(Closure(resource_id=fit.id, start_at=_at(8, 0), end_at=_at(9, 0)))
    elif blocked_by == "lab_closure":
        _db.session.add(Closure(resource_id=lab.id, start_at=_at(8, 1), end_at=_at(8, 4)))
    elif blocked_by == "calibration":
        fit.calibration_valid_until = dt.date(2030, 1, 7)
    elif blocked_by == "maintenance":
        fit.status = ResourceStatus.MAINTENANCE
    _db.session.commit()
    expected = [fit.id] if blocked_by == "nothing" else []
    assert _ids(client.get("/api/v1/resources", query_string=ASK)) == expected


def test_a_cancelled_booking_does_not_block_and_a_lab_holds_up_to_capacity(
    client: Any, clock: Any, lab: Any, make_instrument: Any, make_booking: Any
) -> None:
    fit = make_instrument(lab=lab)
    make_booking(resource=fit, start=_at(8, 1), end=_at(8, 4), status=BookingStatus.CANCELLED)
    _db.session.commit()
    assert _ids(client.get("/api/v1/resources", query_string=ASK)) == [fit.id]


@pytest.mark.parametrize(
    ("duration", "found"), [(None, True), (60, True), (90, True), (91, False), (180, False)]
)
def test_the_free_time_must_last_the_duration(
    client: Any,
    clock: Any,
    lab: Any,
    make_instrument: Any,
    make_booking: Any,
    duration: int | None,
    found: bool,
) -> None:
    fit = make_instrument(lab=lab)
    # Free 10:30-12:00 Shanghai only: 90 minutes.
    make_booking(resource=fit, start=_at(8, 1), end=_at(8, 2, 30), status=BookingStatus.APPROVED)
    _db.session.commit()
    params = {**ASK} | ({} if duration is None else {"duration": str(duration)})
    assert _ids(client.get("/api/v1/resources", query_string=params)) == ([fit.id] if found else [])


def test_a_duration_beyond_the_longest_booking_finds_nothing(
    client: Any, clock: Any, lab: Any, make_instrument: Any
) -> None:
    make_instrument(lab=lab, rules={"max_minutes": 60})
    long_one = make_instrument(lab=lab)
    _db.session.commit()
    params = ASK | {"duration": "120"}
    assert _ids(client.get("/api/v1/resources", query_string=params)) == [long_one.id]


def test_ranked_by_fit_and_in_one_calendar_statement(
    client: Any, clock: Any, lab: Any, make_instrument: Any
) -> None:
    wide = make_instrument(lab=lab, range_max=100.0, range_max_base=1e8)
    narrow = make_instrument(lab=lab, range_max=6.0, range_max_base=6e6)
    _db.session.commit()
    _db.session.expire_all()
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(args[2])

    event.listen(_db.engine, "before_cursor_execute", record)
    try:
        ids = _ids(client.get("/api/v1/resources", query_string=ASK))
    finally:
        event.remove(_db.engine, "before_cursor_execute", record)
    assert ids == [narrow.id, wide.id]
    # the bookings, closures, waitlist offers and opening periods of the candidates:
    # one statement (one batch)
    calendar = [s for s in statements if "opening_period" in s or "closure" in s]
    assert len(calendar) == 1, calendar
    assert all(t in calendar[0] for t in ("booking", "closure", "waitlist_entry"))


# -- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "en", "zh"),
    [
        ({"duration": "60"}, "Give the window", "请给出"),
        (WINDOW | {"duration": "181"}, "longer than the window", "长于时间窗口"),
        (WINDOW | {"duration": "0"}, None, None),
        (WINDOW | {"duration": "abc"}, None, None),
        (WINDOW | {"duration": "1.5"}, None, None),
        (WINDOW | {"duration": str(31 * 24 * 60 + 1)}, None, None),
    ],
)
def test_bad_duration_is_a_422_naming_it_in_both_languages(
    client: Any,
    clock: Any,
    lab: Any,
    make_instrument: Any,
    params: dict[str, str],
    en: str | None,
    zh: str | None,
) -> None:
    make_instrument(lab=lab)
    _db.session.commit()
    for language, words in (("en", en), ("zh-CN", zh)):
        response = client.get(
            "/api/v1/resources", query_string=params, headers={"Accept-Language": language}
        )
        assert response.status_code == 422
        error = error_of(response)
        assert error["field"] == "duration"
        if words:
            assert words in error["message"], error


# -- the "free this week" facet -----------------------------------------------------------


def _week_facet(client: Any, **params: str) -> list[dict[str, Any]]:
    response = client.get("/api/v1/resources", query_string={"facets": "true", **params})
    assert response.status_code == 200, response.get_data(as_text=True)
    facets = response.get_json()["facets"]
    assert {"field", "kind", "province", "institute", "free_this_week"} <= set(facets)
    return list(facets["free_this_week"])


def test_free_this_week_counts_the_matches_free_before_sunday_night(
    client: Any, clock: Any, lab: Any, make_lab: Any, make_instrument: Any, make_booking: Any
) -> None:
    make_instrument(lab=lab)  # free this week
    make_instrument(lab=lab, measurand="temperature", unit="°C")  # free, but not matched
    busy = make_instrument(lab=lab)
    # Booked from Wednesday 08:00 (inside the lead time before) to Saturday.
    make_booking(resource=busy, start=_at(2, 0), end=_at(5, 0), status=BookingStatus.APPROVED)
    mondays = make_lab(hours=weekday_hours("08:00", "18:00", range(1)))
    make_instrument(lab=mondays)  # opens next Monday: next week
    make_instrument(lab=lab, status=ResourceStatus.MAINTENANCE)
    _db.session.commit()
    facet = _week_facet(client, measurand="pressure")
    assert facet == [{"value": "true", "label": "Free this week", "count": 1}]
    # Free for 4 hours: the busy one is not; the free one is.
    assert _week_facet(client, measurand="pressure", duration="240")[0]["count"] == 1
    # Ten hours at once: the lab's day is shorter, nobody is.
    assert _week_facet(client, measurand="pressure", duration="600") == []


def test_free_this_week_is_in_the_institutes_zone_and_translated(
    client: Any, clock: Any, make_institute: Any, make_lab: Any, make_instrument: Any
) -> None:
    # Sunday 23:00-24:00 in Urumqi is Monday 01:00 in Shanghai: still this week there.
    urumqi = make_institute(timezone="Asia/Urumqi")
    late = make_lab(institute=urumqi, hours=weekday_hours("23:00", "24:00", range(6, 7)))
    make_instrument(lab=late)
    _db.session.commit()
    response = client.get(
        "/api/v1/resources",
        query_string={"facets": "true", "measurand": "pressure"},
        headers={"Accept-Language": "zh-CN"},
    )
    assert response.get_json()["facets"]["free_this_week"] == [
        {"value": "true", "label": "本周有空", "count": 1}
    ]


def test_free_this_week_stops_counting_at_its_limit(
    client: Any, clock: Any, lab: Any, make_instrument: Any, monkeypatch: Any
) -> None:
    for _ in range(3):
        make_instrument(lab=lab)
    _db.session.commit()
    assert _week_facet(client, measurand="pressure")[0]["count"] == 3
    monkeypatch.setattr(free_time, "AVAILABILITY_SCAN_LIMIT", 2)
    monkeypatch.setattr(search_result, "FREE_WEEK_LIMIT", 2)
    assert _week_facet(client, measurand="pressure") == [
        {"value": "true", "label": "Free this week", "count": 2, "count_exact": False}
    ]


def test_facets_without_a_match_have_an_empty_week(client: Any, clock: Any, lab: Any) -> None:
    assert _week_facet(client, q="nothing-like-this") == []


def test_the_catalogue_page_shows_the_week_count(
    client: Any, clock: Any, lab: Any, make_instrument: Any
) -> None:
    make_instrument(lab=lab)
    make_instrument(lab=lab)
    _db.session.commit()
    page = client.get(
        "/catalogue", query_string={"measurand": "pressure"}, headers={"Accept-Language": "zh-CN"}
    ).get_data(as_text=True)
    assert "facet-free-week" in page
    assert "本周有空" in page


def test_the_catalogue_page_says_at_least_beyond_the_week_limit(
    client: Any, clock: Any, lab: Any, make_instrument: Any, monkeypatch: Any
) -> None:
    for _ in range(3):
        make_instrument(lab=lab)
    _db.session.commit()
    monkeypatch.setattr(search_result, "FREE_WEEK_LIMIT", 2)
    for lang, words in (("zh-CN", "至少 2 个"), ("en", "At least 2")):
        page = client.get(
            "/catalogue", query_string={"measurand": "pressure"}, headers={"Accept-Language": lang}
        ).get_data(as_text=True)
        assert words in page
