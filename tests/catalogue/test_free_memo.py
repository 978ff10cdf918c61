"""Each resource's candidate columns and calendar rows kept across window searches
(labshare/catalogue/free_memo.py), with the answer cache off so that every search
computes its answer: a new window reads no booking while nothing changed, and every
change (a booking, a closure, opening hours, a holiday, an offer, a catalogue edit,
the clock, a window beyond what was read) gives what a process that kept nothing
computes, on both databases."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import threading
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import text

from labshare.booking import holiday_admin
from labshare.catalogue import free_busy, free_memo, free_painted
from labshare.extensions import db as _db
from labshare.models import (
    Closure,
    Instrument,
    ResourceStatus,
    WaitlistEntry,
    WaitlistStatus,
)
from labshare.timeutil import set_clock
from tests.helpers import NOW, booking_by_sql, sent_statements

UTC = dt.UTC
#: Tuesday 8 January 09:00-12:00 in Shanghai (01:00-04:00 UTC)
START = dt.datetime(2030, 1, 8, 1, 0, tzinfo=UTC)
END = START + dt.timedelta(hours=3)

pytestmark = pytest.mark.usefixtures("no_answer_cache")

#: a capability search (ranked in memory: its candidates are kept too)
CAPABILITY = {"measurand": "pressure", "value": "5", "unit": "MPa"}
#: a text search (its candidates are read ranked by SQL; their rows are kept)
TEXT = {"measurand": None, "value": None, "unit": None, "q": "压力校验仪"}


def _window(start: dt.datetime, hours: int = 3) -> dict[str, str]:
    return {
        "available_from": start.isoformat(),
        "available_to": (start + dt.timedelta(hours=hours)).isoformat(),
    }


@pytest.fixture
def memo(app: Any) -> Any:
    set_clock(lambda: NOW)
    app.extensions.pop(free_memo.EXTENSION, None)
    found = free_memo.memo_of(app)
    assert found.size == free_memo.DEFAULT_RESOURCES  # on, as configured by default
    return found


@pytest.fixture
def pair(make_lab: Any, make_instrument: Any) -> tuple[Any, Any]:
    """Two free instruments of one lab (open around the clock, every day)."""
    lab = make_lab()
    made = [make_instrument(lab=lab, name=f"压力校验仪{n}") for n in "甲乙"]
    _db.session.commit()
    return tuple(
        SimpleNamespace(id=i.id, lab_id=i.lab_id, institute_id=i.institute_id) for i in made
    )


@pytest.fixture
def user(make_user: Any) -> Any:
    made = make_user()
    _db.session.commit()
    return SimpleNamespace(id=made.id, company_id=made.company_id)


def _get(client: Any, window: dict[str, str] | None = None, **params: Any) -> bytes:
    _db.session.remove()  # a server's request has a session of its own
    response = client.get(
        "/api/v1/resources",
        query_string={**CAPABILITY, **(window or _window(START)), **params},
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    return bytes(response.get_data())


def _ids(body: bytes) -> set[int]:
    return {item["id"] for item in json.loads(body)["items"]}


def _fresh(app: Any, client: Any, window: dict[str, str] | None = None, **params: Any) -> bytes:
    """What a process that keeps nothing computes now."""
    kept = app.extensions.pop(free_memo.EXTENSION)
    size = app.config.get("FREE_TIME_MEMO_RESOURCES")
    app.config["FREE_TIME_MEMO_RESOURCES"] = 0
    try:
        return _get(client, window, **params)
    finally:
        app.config["FREE_TIME_MEMO_RESOURCES"] = size
        app.extensions[free_memo.EXTENSION] = kept  # the test's, as it was


def _book(resource: Any, user: Any, start: dt.datetime = START, end: dt.datetime = END) -> None:
    booking_by_sql(resource, user, start, end)


def test_a_new_window_reads_no_booking_while_nothing_changed(
    client: Any, memo: Any, pair: Any
) -> None:
    first = _get(client)
    assert _ids(first) == {pair[0].id, pair[1].id}
    reads = memo.reads
    other = _window(START + dt.timedelta(days=3), hours=5)
    with sent_statements() as sent:
        again = _get(client, other)
    assert memo.reads == reads  # nothing read again
    assert not [s for s in sent if "FROM booking" in s]
    assert not [s for s in sent if "opening_period" in s]
    assert again == _fresh(client.application, client, other)


def _booking(first: Any, user: Any) -> None:
    _book(first, user)


def _closure_of_the_instrument(first: Any, user: Any) -> None:
    _db.session.add(Closure(resource_id=first.id, start_at=START, end_at=END, note="维修"))
    _db.session.commit()


def _closure_of_the_lab(first: Any, user: Any) -> None:
    _db.session.add(Closure(resource_id=first.lab_id, start_at=START, end_at=END, note="停电"))
    _db.session.commit()


def _opening_hours_of_the_lab(first: Any, user: Any) -> None:
    with _db.engine.begin() as conn:
        conn.execute(text("DELETE FROM opening_period WHERE lab_id = :l"), {"l": first.lab_id})


def _a_holiday(first: Any, user: Any) -> None:
    holiday_admin.put_day(None, day="2030-01-08", kind="holiday", name="测试假日")
    _db.session.commit()


def _an_offer_of_the_whole_window(first: Any, user: Any) -> None:
    _db.session.add(
        WaitlistEntry(
            resource_id=first.id,
            company_id=user.company_id,
            user_id=user.id,
            start_at=START,
            end_at=END,
            purpose="x",
            status=WaitlistStatus.OFFERED,
            offered_at=NOW,
            offer_expires_at=NOW + dt.timedelta(hours=2),
        )
    )
    _db.session.commit()


def _maintenance(first: Any, user: Any) -> None:
    with _db.engine.begin() as conn:
        conn.execute(
            text("UPDATE resource SET status = :s WHERE id = :i"),
            {"s": ResourceStatus.MAINTENANCE.value, "i": first.id},
        )


@pytest.mark.parametrize(
    ("change", "both"),
    [
        (_booking, False),
        (_closure_of_the_instrument, False),
        (_closure_of_the_lab, True),
        (_opening_hours_of_the_lab, True),
        (_a_holiday, True),
        (_an_offer_of_the_whole_window, False),
        (_maintenance, False),
    ],
)
@pytest.mark.parametrize("query", [CAPABILITY, TEXT], ids=["capability", "text"])
def test_a_change_is_seen_at_once(
    app: Any,
    client: Any,
    memo: Any,
    pair: Any,
    user: Any,
    change: Any,
    both: bool,
    query: dict[str, Any],
) -> None:
    assert _ids(_get(client, **query)) == {pair[0].id, pair[1].id}
    reads = memo.reads
    _get(client, _window(START + dt.timedelta(days=1)), **query)
    assert memo.reads == reads  # kept
    change(pair[0], user)
    after = _get(client, **query)
    assert _ids(after) == (set() if both else {pair[1].id})
    assert after == _fresh(app, client, **query)


def test_an_offer_stops_holding_its_slot_when_it_expires(
    app: Any, client: Any, memo: Any, pair: Any, user: Any
) -> None:
    """No version changes when an offer expires: the kept offer is left out then."""
    _an_offer_of_the_whole_window(pair[0], user)
    assert _ids(_get(client)) == {pair[1].id}
    reads = memo.reads
    set_clock(lambda: NOW + dt.timedelta(hours=2, seconds=1))
    after = _get(client)
    assert memo.reads == reads  # from what was kept
    assert _ids(after) == {pair[0].id, pair[1].id}
    assert after == _fresh(app, client)


def test_a_window_beyond_the_rows_kept_reads_them_again(
    app: Any, client: Any, memo: Any, pair: Any, user: Any, monkeypatch: Any
) -> None:
    """The rows kept cover AHEAD from their read: a booking further on is read when a
    window there is asked, over that window only (not every booking until then), and
    those rows do not replace the near ones."""
    for d in range(1, 60):  # a booking a day until well past AHEAD
        day = START + dt.timedelta(days=d, hours=4)
        _book(pair[0], user, day, day + dt.timedelta(hours=1))
    later = START + free_memo.AHEAD + dt.timedelta(days=10)
    _book(pair[0], user, later, later + dt.timedelta(hours=3))
    assert _ids(_get(client)) == {pair[0].id, pair[1].id}
    near = memo.kept[pair[0].id].rows
    assert near.hi - near.lo <= free_memo.AHEAD + dt.timedelta(days=1)
    spans: list[tuple[dt.datetime, dt.datetime]] = []
    real = free_memo.busy_rows

    def spy(subjects: Any, lo: dt.datetime, hi: dt.datetime, *args: Any) -> Any:
        spans.append((lo, hi))
        return real(subjects, lo, hi, *args)

    monkeypatch.setattr(free_memo, "busy_rows", spy)
    far = _get(client, _window(later))
    assert _ids(far) == {pair[1].id}
    assert spans and all(hi - lo < dt.timedelta(days=1) for lo, hi in spans)
    assert far == _fresh(app, client, _window(later))
    assert memo.kept[pair[0].id].rows == near  # kept for the near windows
    spans.clear()
    near_answer = _get(client)
    assert not spans  # from the rows kept
    assert near_answer == _fresh(app, client)


def test_a_far_windows_rows_replace_another_far_windows(client: Any, memo: Any, pair: Any) -> None:
    """Only near rows are kept against a far window's: rows of two far windows in
    turn each replace the other, so a repeated far window reads nothing."""
    first = START + free_memo.AHEAD + dt.timedelta(days=10)
    second = first + dt.timedelta(days=7)
    _get(client, _window(first))
    _get(client, _window(second))
    assert memo.kept[pair[0].id].rows.lo == second
    reads = memo.reads
    _get(client, _window(second))
    assert memo.reads == reads


def test_a_clock_set_back_does_not_use_offers_read_later(
    app: Any, client: Any, memo: Any, pair: Any, user: Any
) -> None:
    """An offer expired when the rows were read is not among them: set back to before
    its expiry, the clock must see it hold its slot again."""
    _an_offer_of_the_whole_window(pair[0], user)  # until NOW + 2 h
    set_clock(lambda: NOW + dt.timedelta(hours=3))
    assert _ids(_get(client)) == {pair[0].id, pair[1].id}
    set_clock(lambda: NOW + dt.timedelta(hours=1))
    got = _get(client)
    assert _ids(got) == {pair[1].id}
    assert got == _fresh(app, client)


def test_a_batch_of_two_reads_of_one_lab_uses_the_newer_lab_rows(
    app: Any, client: Any, memo: Any, pair: Any, user: Any
) -> None:
    """A scan's batch may hold candidates of two reads (Candidates.first reads more
    each time) with a change of their lab between them: the lab's rows of the later
    read are used for both, not the ones kept with the earlier."""
    _get(client)  # both kept, with their rows
    _db.session.remove()
    earlier = free_memo.of_ids([pair[0].id])[0]
    _closure_of_the_lab(pair[0], user)
    later = free_memo.of_ids([pair[1].id])[0]
    assert earlier.stamp is not None and later.stamp is not None
    assert earlier.stamp[1] != later.stamp[1]  # two versions of the lab in one batch
    busy = free_memo.busy_of([earlier, later], START, END, [], NOW)
    for c in (earlier, later):
        _held, closed, _offers = free_busy.own(c.subject, busy, START, END, NOW)
        assert closed == [(START, END)]


def test_a_batch_of_one_lab_kept_at_two_versions_is_read_again(
    app: Any, client: Any, memo: Any, pair: Any, user: Any
) -> None:
    """Both candidates' rows kept, at two versions of their lab (the later kept by
    another search): whatever the batch's order, the lab's rows of the newer read
    are used for both."""
    _get(client)
    _db.session.remove()
    earlier = free_memo.of_ids([pair[0].id])[0]
    _closure_of_the_lab(pair[0], user)
    later = free_memo.of_ids([pair[1].id])[0]
    free_memo.busy_of([later], START, END, [], NOW)  # its rows kept at the new version
    for batch in ([earlier, later], [later, earlier]):
        busy = free_memo.busy_of(batch, START, END, [], NOW)
        for c in batch:
            _held, closed, _offers = free_busy.own(c.subject, busy, START, END, NOW)
            assert closed == [(START, END)]


def test_a_batch_of_two_reads_of_one_lab_is_not_answered_from_painted_time(
    app: Any, client: Any, memo: Any, pair: Any, user: Any
) -> None:
    """As ``busy_of`` reads a lab's rows again for such a batch, its candidates' free
    time painted at the older lab version is not used."""
    _get(client)
    _get(client)  # painted
    _db.session.remove()
    earlier = free_memo.of_ids([pair[0].id])[0]
    span = (free_painted.micros(START), free_painted.micros(END))
    windows = {p.id: span for p in pair}
    assert pair[0].id in free_painted.painted_of([earlier], NOW, windows)
    _closure_of_the_lab(pair[0], user)
    later = free_memo.of_ids([pair[1].id])[0]
    assert free_painted.painted_of([earlier, later], NOW, windows) == {}


def test_painted_time_counts_against_the_budget(
    app: Any, client: Any, memo: Any, pair: Any, user: Any
) -> None:
    """Eight painted spans count as a row; painting what another request replaced
    since, or what would take more than an eighth of the budget, keeps nothing; past
    the budget the least recently used go."""
    _get(client)
    _get(client)
    first, second = (memo.kept[p.id] for p in pair)
    assert first.painted is not None and len(first.painted.bounds) >= 2
    counted = -(-len(first.painted.bounds) // 16)
    bare = [dataclasses.replace(k, painted=None) for k in (first, second)]
    small = free_memo.FreeMemo(1000)
    filler = free_memo._Kept(None, first.candidate)
    for rid in range(10_000, 10_080):  # 80 rows, the oldest first
        small.put(rid, filler)
    small.put(pair[0].id, bare[0])
    small.put(pair[1].id, bare[1])
    before = small.rows
    small.paint(pair[1].id, bare[0], second.painted)  # not what is kept for it
    assert small.kept[pair[1].id].painted is None and small.rows == before
    small.budget = free_memo._size(bare[0]) * 8  # its painting would pass an eighth
    small.paint(pair[0].id, bare[0], first.painted)
    assert small.kept[pair[0].id].painted is None
    small.budget = before + counted - 1
    assert small.budget // 8 >= free_memo._size(bare[0]) + counted
    small.paint(pair[0].id, bare[0], first.painted)  # over the budget: the oldest goes
    assert small.kept[pair[0].id].painted is first.painted
    assert small.rows == before + counted - 1 and 10_000 not in small.kept
    tiny = free_memo.FreeMemo(1)  # 40 rows: an entry past 5 keeps its candidate alone
    tiny.put(pair[0].id, first)
    assert tiny.kept[pair[0].id].rows is None and tiny.kept[pair[0].id].painted is None
    assert tiny.rows == 1


def test_painted_time_used_moves_its_resource_last(
    app: Any, client: Any, memo: Any, pair: Any
) -> None:
    """Searches whose candidates are not read through the memo (a text search ranked
    in SQL) use painted time too: it keeps its resource from being dropped first."""
    _get(client)
    _get(client)
    _db.session.remove()
    first = free_memo.of_ids([pair[0].id])[0]
    free_memo.of_ids([pair[1].id])
    assert list(memo.kept)[-2:] == [pair[0].id, pair[1].id]
    span = (free_painted.micros(START), free_painted.micros(END))
    assert pair[0].id in free_painted.painted_of([first], NOW, {pair[0].id: span})
    assert list(memo.kept)[-2:] == [pair[1].id, pair[0].id]


def test_several_look_ups_at_once_move_each_found_last(memo: Any, pair: Any) -> None:
    entries = {p.id: free_memo._Kept(None, object()) for p in pair}  # type: ignore[arg-type]
    for rid, kept in entries.items():
        memo.put(rid, kept)
    assert memo.get_many([pair[0].id, 999_999]) == [entries[pair[0].id], None]
    assert list(memo.kept) == [pair[1].id, pair[0].id]


def test_the_memo_keeps_at_most_its_rows(
    app: Any, client: Any, memo: Any, pair: Any, user: Any
) -> None:
    """Past ROWS_PER_RESOURCE rows a resource on average the least recently used go,
    and rows that would take more than an eighth of that are not kept at all (they
    would push out the rest)."""
    for d in range(30):
        day = START + dt.timedelta(days=d, hours=4)
        _book(pair[0], user, day, day + dt.timedelta(minutes=30))
    assert _ids(_get(client)) == {pair[1].id, pair[0].id}
    assert memo.kept[pair[0].id].rows is not None  # within the default budget
    small = free_memo.FreeMemo(3)  # 120 rows: at most 15 for one resource
    entries = {rid: memo.kept[rid] for rid in (pair[1].id, pair[0].id)}
    small.put(pair[1].id, entries[pair[1].id])
    small.put(pair[0].id, entries[pair[0].id])
    assert small.kept[pair[0].id].rows is None  # 30 bookings: its candidate alone
    assert small.kept[pair[1].id].rows is not None  # and nothing else pushed out
    assert small.rows == 2 + entries[pair[1].id].rows.size
    small.budget = 3 * 8  # past 24 rows (and 3 a resource) the oldest go
    for rid in range(100, 110):
        small.put(rid, free_memo._Kept(None, entries[pair[1].id].candidate))
    assert len(small.kept) == 3 and small.rows <= small.budget
    assert pair[0].id not in small.kept


def test_a_far_window_does_not_replace_the_rows_kept_for_near_ones(
    client: Any, memo: Any, pair: Any
) -> None:
    _get(client)
    reads = memo.reads
    _get(client, _window(START + free_memo.AHEAD + dt.timedelta(days=10)))
    assert memo.reads > reads  # read over its own span...
    reads = memo.reads
    _get(client, _window(START + dt.timedelta(days=2)))
    assert memo.reads == reads  # ...without dropping the near rows


def test_offers_are_read_at_the_scans_instant(app: Any, memo: Any, pair: Any, user: Any) -> None:
    """The rows' read filters the offers at the scan's instant (which the rows keep),
    not at the clock's when the statement runs."""
    _an_offer_of_the_whole_window(pair[0], user)  # until NOW + 2 h
    set_clock(lambda: NOW + dt.timedelta(hours=3))
    _db.session.remove()
    candidate = free_memo.of_ids([pair[0].id])[0]
    scan_at = NOW + dt.timedelta(hours=1)
    busy = free_memo.busy_of([candidate], START, END, [], scan_at)
    _held, _closed, offers = free_busy.own(candidate.subject, busy, START, END, scan_at)
    assert offers == [(START, END)]


def test_off_it_keeps_nothing_and_reads_no_stamps(
    app: Any, client: Any, memo: Any, pair: Any
) -> None:
    app.config["FREE_TIME_MEMO_RESOURCES"] = 0
    app.extensions.pop(free_memo.EXTENSION, None)
    with sent_statements() as sent:
        body = _get(client)
    assert _ids(body) == {pair[0].id, pair[1].id}
    assert not free_memo.memo_of(app).kept
    assert not [s for s in sent if "catalogue_version" in s and "own_version" in s]


def test_searches_in_threads_while_slots_are_booked_end_exact(
    app: Any, client: Any, memo: Any, pair: Any, user: Any
) -> None:
    """Four threads search windows (each its own request and session) while another
    books the windows one by one; afterwards each window's answer is what a process
    that kept nothing computes, and no search failed."""
    days = [START + dt.timedelta(days=d) for d in range(6)]
    failed: list[BaseException] = []
    stop = threading.Event()

    def search(n: int) -> None:
        try:
            with app.app_context():
                local = app.test_client()
                while not stop.is_set():
                    for day in days[n % 2 :: 2]:
                        _get(local, _window(day))
        except BaseException as exc:  # re-raised below
            failed.append(exc)
            stop.set()

    threads = [threading.Thread(target=search, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    try:
        for day in days:
            _book(pair[0], user, day, day + dt.timedelta(hours=3))
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert not failed, failed
    for day in days:
        got = _get(client, _window(day))
        assert _ids(got) == {pair[1].id}
        assert got == _fresh(app, client, _window(day))


def test_kept_rows_follow_the_resource_not_an_instrument_of_another_lab(
    app: Any, client: Any, memo: Any, pair: Any, make_lab: Any
) -> None:
    """An instrument moved to another lab (closed on the window's day) has another
    lab's stamp: its kept rows are not used."""
    _get(client)
    closed = make_lab(hours=[])
    _db.session.commit()
    instrument = _db.session.get(Instrument, pair[0].id)
    instrument.lab_id = closed.id
    _db.session.commit()
    after = _get(client)
    assert _ids(after) == {pair[1].id}
    assert after == _fresh(app, client)
