"""Window searches served again from the answer cache (labshare/catalogue/window_cache.py):
only at the same catalogue version, while the calendars the free-time scan examined
keep their versions and before the clock could change the answer. Every change that
frees or fills a slot (by SQL from another connection, or the ORM) and every clock
move that cuts the window is seen at once, on both databases; what the clock changes
continuously (a horizon inside the window, an open offer, the week's facet) is never
kept."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import text

from labshare.booking import holiday_admin
from labshare.catalogue import search_cache, window_cache
from labshare.extensions import db as _db
from labshare.fastpath import EXTENSION
from labshare.models import (
    BookingStatus,
    Closure,
    WaitlistEntry,
    WaitlistStatus,
)
from labshare.timeutil import set_clock
from tests.helpers import booking_by_sql, listening, sent_statements

UTC = dt.UTC
NOW = dt.datetime(2030, 1, 1, 0, 0, tzinfo=UTC)  # a Tuesday
#: Tuesday 8 January 09:00-12:00 in Shanghai: after the default lead time (24 h),
#: within the default horizon (90 days)
WINDOW = {
    "available_from": "2030-01-08T09:00:00+08:00",
    "available_to": "2030-01-08T12:00:00+08:00",
}
START = dt.datetime(2030, 1, 8, 1, 0, tzinfo=UTC)
END = START + dt.timedelta(hours=3)


@pytest.fixture
def store(app: Any) -> Any:
    set_clock(lambda: NOW)
    found = search_cache.cache_of(app)
    found.clear()
    return found


@pytest.fixture
def pair(make_lab: Any, make_instrument: Any) -> tuple[Any, Any]:
    """Two free instruments of one lab (open around the clock, every day)."""
    lab = make_lab()
    first = make_instrument(lab=lab, name="压力校验仪甲")
    second = make_instrument(lab=lab, name="压力校验仪乙")
    _db.session.commit()
    # plain values: each request ends the test's session (its instances detached)
    return tuple(
        SimpleNamespace(id=i.id, kind=i.kind, lab_id=i.lab_id, institute_id=i.institute_id)
        for i in (first, second)
    )


def _get(client: Any, **params: Any) -> Any:
    _db.session.remove()  # a server's request has a session of its own
    response = client.get(
        "/api/v1/resources", query_string={"measurand": "pressure", **WINDOW, **params}
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    return response


def _ids(response: Any) -> set[int]:
    return {item["id"] for item in response.get_json()["items"]}


def _fresh(client: Any, store: Any, **params: Any) -> bytes:
    """What an empty cache computes now."""
    store.clear()
    return bytes(_get(client, **params).get_data())


def test_a_repeated_window_search_is_served_again_identically(
    app: Any, client: Any, store: Any, pair: Any
) -> None:
    first = _get(client)
    assert _ids(first) == {pair[0].id, pair[1].id}
    hits = store.hits
    assert _get(client).get_data() == first.get_data()
    assert store.hits == hits + 1
    fast = app.extensions[EXTENSION]
    served = fast.searches
    assert _get(client).get_data() == first.get_data()  # before Flask, the same bytes
    assert fast.searches == served + 1


def _booking_by_sql(first: Any, _second: Any, user: Any) -> None:
    """An approved booking over the window, written on a connection of its own."""
    booking_by_sql(first, user, START, END)


def _offer(resource_id: int, user: Any) -> None:
    """An open waitlist offer of the window's first hour, for two hours from now."""
    _db.session.add(
        WaitlistEntry(
            resource_id=resource_id,
            company_id=user.company_id,
            user_id=user.id,
            start_at=START,
            end_at=START + dt.timedelta(hours=1),
            purpose="x",
            status=WaitlistStatus.OFFERED,
            offered_at=NOW,
            offer_expires_at=NOW + dt.timedelta(hours=2),
        )
    )
    _db.session.commit()


def _booking_by_orm(first: Any, _second: Any, user: Any, make_booking: Any) -> None:
    make_booking(resource=first, user=user, start=START, end=END, status=BookingStatus.PENDING)


def _closure_of_the_instrument(first: Any, _second: Any, user: Any) -> None:
    _db.session.add(Closure(resource_id=first.id, start_at=START, end_at=END, note="维修"))


def _closure_of_the_lab(first: Any, _second: Any, user: Any) -> None:
    _db.session.add(Closure(resource_id=first.lab_id, start_at=START, end_at=END, note="停电"))


def _opening_hours_of_the_lab(first: Any, _second: Any, user: Any) -> None:
    with _db.engine.begin() as conn:
        conn.execute(text("DELETE FROM opening_period WHERE lab_id = :l"), {"l": first.lab_id})


def _a_holiday(first: Any, _second: Any, user: Any) -> None:
    holiday_admin.put_day(None, day="2030-01-08", kind="holiday", name="测试假日")


@pytest.mark.parametrize(
    ("change", "both"),
    [
        (_booking_by_sql, False),
        (_booking_by_orm, False),
        (_closure_of_the_instrument, False),
        (_closure_of_the_lab, True),
        (_opening_hours_of_the_lab, True),
        (_a_holiday, True),
    ],
)
def test_a_calendar_change_is_seen_at_once(
    client: Any,
    store: Any,
    pair: Any,
    make_user: Any,
    make_booking: Any,
    change: Any,
    both: bool,
) -> None:
    user = SimpleNamespace(id=(u := make_user()).id, company_id=u.company_id)
    _db.session.commit()
    before = _get(client)
    assert _get(client).get_data() == before.get_data()  # kept
    first, second = pair
    if change is _booking_by_orm:
        change(first, second, user, make_booking)
    else:
        change(first, second, user)
    _db.session.commit()
    after = _get(client)
    assert _ids(after) == (set() if both else {second.id})
    assert after.get_data() == _fresh(client, store)


def test_a_booking_written_while_the_search_reads_is_not_hidden_afterwards(
    client: Any, store: Any, pair: Any, make_user: Any
) -> None:
    """The versions a kept answer must match were read before its bookings: a booking
    committed between the two is never covered by a stamp that includes it."""
    second = _book_during_search(client, pair, make_user, lambda s: "own_version" in s)
    assert _ids(_get(client)) == {second.id}
    assert _ids(_get(client)) == {second.id}


def _book_during_search(client: Any, pair: Any, make_user: Any, when: Callable[[str], bool]) -> Any:
    """Search once, booking the first of ``pair`` by SQL (another transaction) right
    after the first statement the search sends that ``when`` picks; the second."""
    user = SimpleNamespace(id=(u := make_user()).id, company_id=u.company_id)
    _db.session.commit()
    first, second = pair
    fired: list[bool] = []

    def book_now(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if when(statement) and not fired:
            fired.append(True)
            _booking_by_sql(first, second, user)

    with listening(book_now, "after_cursor_execute"):
        _get(client)
    assert fired
    return second


def test_an_entry_ends_when_the_lead_time_reaches_the_window(
    client: Any, store: Any, pair: Any
) -> None:
    one_hour = {"available_to": "2030-01-08T10:00:00+08:00"}
    set_clock(lambda: START - dt.timedelta(hours=25))
    kept = _get(client, **one_hour)
    assert len(_ids(kept)) == 2
    hits = store.hits
    set_clock(lambda: START - dt.timedelta(hours=24, seconds=1))
    assert _get(client, **one_hour).get_data() == kept.get_data()
    assert store.hits == hits + 1
    # once the lead time (24 h) cuts into the window, it is computed again
    set_clock(lambda: START - dt.timedelta(hours=23, minutes=15))
    now = _get(client, **one_hour)
    assert store.hits == hits + 1
    assert _ids(now) == set()  # 15 minutes are left, off the 30-minute grid
    assert now.get_data() == _fresh(client, store, **one_hour)


@pytest.mark.parametrize(
    "window",
    [
        # the horizon (90 days) ends inside it: it grows with the clock
        {
            "available_from": "2030-03-31T09:00:00+08:00",
            "available_to": "2030-04-02T12:00:00+08:00",
        },
        # beyond the horizon: bookable later
        {
            "available_from": "2030-06-04T09:00:00+08:00",
            "available_to": "2030-06-04T12:00:00+08:00",
        },
        # the lead time (24 h) cuts into it: it shrinks with the clock
        {
            "available_from": "2030-01-01T20:00:00+08:00",
            "available_to": "2030-01-02T12:00:00+08:00",
        },
    ],
)
def test_a_window_the_clock_cuts_is_never_kept(
    client: Any, store: Any, pair: Any, window: dict[str, str]
) -> None:
    for _ in range(2):
        _get(client, **window)
    assert not store.entries
    assert store.hits == 0


def test_a_window_wholly_inside_the_lead_time_is_kept(client: Any, store: Any, pair: Any) -> None:
    """Nothing there is bookable now, and the clock only moves the lead time later."""
    early = {
        "available_from": "2030-01-01T09:00:00+08:00",
        "available_to": "2030-01-01T12:00:00+08:00",
    }
    assert _ids(_get(client, **early)) == set()
    _get(client, **early)
    assert store.hits == 1


def test_an_open_offer_keeps_the_answer_out_of_the_cache(
    client: Any, store: Any, pair: Any, make_user: Any
) -> None:
    _offer(pair[0].id, make_user())
    for _ in range(2):
        assert len(_ids(_get(client))) == 2  # two free hours are left beside the offer
    assert not store.entries
    # when the offer has expired nothing depends on it: kept again
    set_clock(lambda: NOW + dt.timedelta(hours=3))
    _get(client)
    _get(client)
    assert store.hits == 1


def test_a_window_search_with_facets_is_never_kept(client: Any, store: Any, pair: Any) -> None:
    for _ in range(2):
        _get(client, facets="true")
    assert not store.entries


def test_a_text_search_with_a_window_is_kept_and_sees_a_booking(
    client: Any, store: Any, pair: Any, make_user: Any
) -> None:
    """The text search's candidates (read ranked by SQL, free_candidates.ranked) carry
    their versions too."""
    user = SimpleNamespace(id=(u := make_user()).id, company_id=u.company_id)
    _db.session.commit()
    params = {"measurand": None, "q": "压力校验仪"}
    before = _get(client, **params)
    assert len(_ids(before)) == 2
    _get(client, **params)
    assert store.hits == 1
    _booking_by_sql(pair[0], pair[1], user)
    assert _ids(_get(client, **params)) == {pair[1].id}


def test_a_booking_written_after_the_bookings_were_read_is_not_hidden_afterwards(
    client: Any, store: Any, pair: Any, make_user: Any
) -> None:
    """The other side of the race: committed after the search read the bookings (its
    answer shows the slot free), the booking must make the kept answer stale, which
    it does only because the versions were read before the bookings, not after."""
    second = _book_during_search(
        client, pair, make_user, lambda s: "FROM booking WHERE" in s and "UNION ALL" in s
    )
    assert _ids(_get(client)) == {second.id}


def test_a_clock_set_back_does_not_serve_what_the_horizon_would_cut(
    client: Any, store: Any, pair: Any
) -> None:
    """Computed with the window ending at the horizon (90 days): the clock set back
    45 minutes moves the horizon into the window, which no kept answer may hide."""
    end = NOW + dt.timedelta(days=90)
    window = {
        "available_from": (end - dt.timedelta(hours=1)).isoformat(),
        "available_to": end.isoformat(),
    }
    assert len(_ids(_get(client, **window))) == 2
    assert store.entries
    set_clock(lambda: NOW - dt.timedelta(minutes=45))
    served = _get(client, **window)
    assert _ids(served) == set()  # 15 minutes left, off the 30-minute grid
    assert served.get_data() == _fresh(client, store, **window)


def test_an_entry_found_stale_is_dropped_at_once(
    client: Any, store: Any, pair: Any, make_user: Any
) -> None:
    """Its calendars changed and the new answer may not be kept (an open offer): the
    old entry goes, so later requests do not read its versions again."""
    _get(client)
    assert len(store.entries) == 1
    _offer(pair[0].id, make_user())
    _get(client)
    assert not store.entries
    assert store.used == 0
    with sent_statements() as sent:
        _get(client)
    assert not [s for s in sent if "own_version" in s and "calendar_token" in s.split("FROM")[0]]


def test_the_budget_counts_each_entry_whole(
    client: Any,
    store: Any,
    make_lab: Any,
    make_instrument: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Answers of one item over past windows (nothing bookable: kept) examine every
    candidate: their guards and keys count against the budget, not the body alone."""
    lab = make_lab()
    for n in range(30):
        make_instrument(lab=lab, name=f"压力表{n}")
    _db.session.commit()
    monkeypatch.setattr(store, "budget", 8 * 1024)  # the app's cache: others use it next
    for minute in range(40):
        _get(
            client,
            per_page=1,
            available_from=f"2029-01-01T00:{minute:02d}:00Z",
            available_to=f"2029-01-01T01:{minute:02d}:00Z",
        )
    entries = list(store.entries.values())
    assert entries and all(e.guard is not None and len(e.guard.ids) == 30 for e in entries)
    assert store.used == sum(e.size for e in entries) <= store.budget
    assert all(e.size >= len(e.body) + 30 * 8 + search_cache.ENTRY_OVERHEAD for e in entries)
    assert len(entries) < 40


def test_a_candidate_read_twice_with_other_versions_is_not_kept() -> None:
    subject = SimpleNamespace(id=7)
    one = SimpleNamespace(subject=subject, stamp=(1, 2, "t"))
    other = SimpleNamespace(subject=subject, stamp=(3, 2, "t"))
    until = NOW + dt.timedelta(days=1)
    set_clock(lambda: NOW)
    assert window_cache.guard_of([one, one], NOW, until) is not None
    assert window_cache.guard_of([one, other], NOW, until) is None
    assert window_cache.guard_of([one], NOW, None) is None
    assert window_cache.guard_of([one], NOW, NOW) is None  # the clock changes it now
