"""Each resource's free time painted once from its kept rows and clipped to every
window asked after (labshare/catalogue/free_painted.py ``Painted``,
labshare/catalogue/free_time.py ``_fits_painted``): the same answer as
``availability()`` gives for the window alone, over holidays, make-up days, closures,
calibration expiry, buffers, offers, capacity and a change of daylight saving time,
on both databases; and what is painted follows the rows it was painted from."""

from __future__ import annotations

import datetime as dt
import random
from array import array
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from labshare.booking.rules import effective_rules
from labshare.catalogue import free_memo, free_painted, free_time
from labshare.catalogue.free_candidates import Candidates
from labshare.catalogue.free_time import has_free_slot, with_free_slot
from labshare.catalogue.search import ResourceFilters, search_resources
from labshare.models import Closure, Resource
from labshare.timeutil import set_clock
from tests import factories
from tests.catalogue import test_search_free_exact as exact
from tests.catalogue.test_search_free_exact import _calendar, _catalogue, _windows

#: NOW of test_search_free_exact (a Sunday in September 2030), workdays forgotten
clock = exact.clock

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture
def painted(monkeypatch: Any) -> list[bool]:
    """The answers ``_fits_painted`` gave (from the painted free time)."""
    given: list[bool] = []
    real = free_time._fits_painted

    def spy(*args: Any) -> bool:
        found = real(*args)
        given.append(found)
        return found

    monkeypatch.setattr(free_time, "_fits_painted", spy)
    return given


def _scan(
    resources: list[Resource], start: dt.datetime, end: dt.datetime, d: int | None
) -> list[int]:
    """The free ones of ``resources`` by a scan over candidates read through the memo
    (kept, with their stamps), as a search reads them."""
    ids = [r.id for r in resources]
    candidates = Candidates.of(free_memo.of_ids(ids))
    found = free_time.scan(candidates, lambda _s: (start, end), d, limit=len(ids))
    return found.found


def _expected(
    resources: list[Resource], start: dt.datetime, end: dt.datetime, d: int | None
) -> list[int]:
    return [r.id for r in resources if has_free_slot(r, effective_rules(r), start, end, d)]


@pytest.mark.usefixtures("clock")
def test_painted_free_time_is_availability_s_for_every_window(
    app: Any, db: Any, painted: list[bool]
) -> None:
    _calendar()
    resources = _catalogue()
    ids = [r.id for r in resources]
    windows = _windows(random.Random(9), 14)
    _scan(resources, *windows[0], None)  # reads and keeps every candidate's rows
    for start, end in windows:
        for duration in (None, 60, 180):
            expected = _expected(resources, start, end, duration)
            assert _scan(resources, start, end, duration) == expected, (start, end, duration)
    assert len(painted) > len(windows) * len(ids)  # most answers were painted ones
    assert True in painted and False in painted


def test_a_change_of_daylight_saving_time_inside_the_kept_span(
    app: Any, db: Any, painted: list[bool]
) -> None:
    """Berlin's clocks go forward on 30 March 2031: a month painted at once over the
    change answers as each window painted alone, on a 45-minute grid too."""
    now = dt.datetime(2031, 3, 20, 12, tzinfo=dt.UTC)
    set_clock(lambda: now)
    try:
        institute = factories.make_institute(timezone="Europe/Berlin")
        user = factories.make_user()
        made = []
        for n, hours in enumerate(
            [
                factories.weekday_hours("00:00", "23:59", range(7)),
                factories.weekday_hours("01:00", "04:00", range(7)),  # across the gap
            ]
        ):
            lab = factories.make_lab(institute=institute, hours=hours)
            made.append(lab)
            made.append(
                factories.make_instrument(
                    lab=lab,
                    rules={**factories.OPEN_RULES, "slot_minutes": 45, "min_minutes": 45},
                )
            )
            day = dt.datetime(2031, 3, 29 + n, 23, 30, tzinfo=dt.UTC)
            factories.make_booking(
                resource=made[-1], user=user, start=day, end=day + dt.timedelta(minutes=90)
            )
        db.session.commit()
        rnd = random.Random(3)
        windows = [
            (
                dt.datetime(2031, 3, 30, 0, 0, tzinfo=BERLIN),
                dt.datetime(2031, 3, 30, 5, tzinfo=BERLIN),
            )
        ]
        for _ in range(40):
            start = dt.datetime(2031, 3, 29, 20, tzinfo=dt.UTC) + dt.timedelta(
                minutes=rnd.randrange(0, 60 * 40, 5)
            )
            windows.append((start, start + dt.timedelta(minutes=rnd.choice((45, 50, 90, 200)))))
        _scan(made, *windows[0], None)
        for start, end in windows:
            for duration in (None, 90):
                assert _scan(made, start, end, duration) == _expected(made, start, end, duration)
        assert len(painted) > len(windows) * len(made)
    finally:
        set_clock(None)


def _bounds(spans: list[tuple[dt.datetime, dt.datetime]]) -> array[int]:
    out = array("q")
    for s, e in spans:
        out.extend((free_painted.micros(s), free_painted.micros(e)))
    return out


@pytest.mark.parametrize("tz", ["Asia/Shanghai", "Europe/Berlin", "America/New_York"])
def test_fits_painted_is_fits_over_the_clipped_spans(tz: str) -> None:
    """Against ``_fits`` of the spans clipped by hand, for windows starting inside a
    span, in a gap, on a bound, before the first and after the last; grids of 7, 30,
    45 and 90 minutes; across the zone's changes of daylight saving time."""
    rnd = random.Random(tz)
    base = dt.datetime(2031, 3, 8, tzinfo=dt.UTC)
    for _ in range(300):
        t, spans = base, []
        for _ in range(rnd.randrange(0, 8)):
            t += dt.timedelta(minutes=rnd.randrange(1, 600))
            end = t + dt.timedelta(minutes=rnd.randrange(1, 300))
            spans.append((t, end))
            t = end
        lo, hi = base, base + dt.timedelta(days=40)
        if spans and rnd.random() < 0.3:
            start = rnd.choice([s for span in spans for s in span])  # on a bound
        else:
            start = base + dt.timedelta(minutes=rnd.randrange(0, 60 * 24 * 4))
        end = start + dt.timedelta(minutes=rnd.randrange(1, 900))
        slot = rnd.choice((7, 30, 45, 90))
        length = dt.timedelta(minutes=slot * rnd.randrange(1, 4))
        kept = free_painted.Painted(
            None,  # type: ignore[arg-type]
            free_painted.micros(lo),
            free_painted.micros(hi),
            _bounds(spans),
        )
        subject = type("S", (), {"timezone": tz})()
        rules = type("R", (), {"slot_minutes": slot})()
        candidate = type("C", (), {"subject": subject, "rules": rules})()
        got = free_time._fits_painted(kept, free_time._Cut((start, end), length), candidate)  # type: ignore[arg-type]
        clipped = [(max(s, start), min(e, end)) for s, e in spans if s < end and e > start]
        assert got == free_time._fits(clipped, slot, length, tz), (spans, start, end, slot)


@pytest.mark.usefixtures("clock")
def test_a_change_after_painting_is_painted_again(app: Any, db: Any, painted: list[bool]) -> None:
    """Painted from the rows it was: a closure changes the stamp, the rows are read
    again, and the next windows paint them again rather than the old picture."""
    lab = factories.make_lab(hours=factories.weekday_hours("08:00", "18:00", range(7)))
    instrument = factories.make_instrument(lab=lab, rules=dict(factories.OPEN_RULES))
    db.session.commit()
    day = dt.datetime(2030, 9, 10, 2, tzinfo=dt.UTC)  # 10:00 in Shanghai
    window = (day, day + dt.timedelta(hours=3))
    resources = [instrument]
    for _ in range(2):
        assert _scan(resources, *window, None) == [instrument.id]
    assert painted == [True]
    db.session.add(
        Closure(resource_id=instrument.id, start_at=day, end_at=day + dt.timedelta(hours=3))
    )
    db.session.commit()
    painted.clear()
    for _ in range(3):  # read again; then painted from the new rows, twice
        assert _scan(resources, *window, None) == []
    assert painted == [False, False]
    assert _scan(
        resources, window[0] - dt.timedelta(days=1), window[1] - dt.timedelta(days=1), None
    )


@pytest.mark.usefixtures("clock")
def test_the_painted_span_ends_a_buffer_before_the_rows_read(
    app: Any, db: Any, painted: list[bool]
) -> None:
    """A booking just beyond the rows read (AHEAD from the scan) reaches into them by
    its buffer: the last buffer of the span is not painted, so a window there reads
    the rows again and sees the buffer."""
    lab = factories.make_lab(hours=factories.weekday_hours("00:00", "23:59", range(7)))
    instrument = factories.make_instrument(
        lab=lab, rules={**factories.OPEN_RULES, "buffer_minutes": 60}
    )
    user = factories.make_user()
    edge = exact.NOW + free_memo.AHEAD
    factories.make_booking(
        resource=instrument,
        user=user,
        start=edge + dt.timedelta(minutes=30),
        end=edge + dt.timedelta(minutes=90),
    )
    db.session.commit()
    day = exact.NOW + dt.timedelta(days=3)
    for _ in range(2):  # read over [NOW, NOW + AHEAD], then painted
        assert _scan([instrument], day, day + dt.timedelta(hours=2), None) == [instrument.id]
    assert painted == [True]
    window = (edge - dt.timedelta(minutes=60), edge)
    assert _expected([instrument], *window, 60) == []
    assert _scan([instrument], *window, 60) == []


def _holiday_lab() -> tuple[Any, Any, tuple[dt.datetime, dt.datetime]]:
    """A lab open every day that follows the holidays, its instrument, and a window
    on the National Day (a holiday)."""
    _calendar()
    lab = factories.make_lab(hours=factories.weekday_hours("08:00", "18:00", range(7)))
    instrument = factories.make_instrument(lab=lab, rules=dict(factories.OPEN_RULES))
    return (
        lab,
        instrument,
        (exact.local(exact.NATIONAL_DAY, 9), exact.local(exact.NATIONAL_DAY, 12)),
    )


@pytest.mark.usefixtures("clock")
@pytest.mark.parametrize("how", ["scan", "with_free_slot", "search"])
def test_a_lab_opting_out_of_the_holidays_is_painted_again(
    app: Any, db: Any, painted: list[bool], how: str
) -> None:
    """Whether a lab follows the holidays changes no calendar version (the holidays it
    follows are read with each candidate): time painted for the candidate as it was
    is not the candidate's now, however it was read."""
    lab, instrument, window = _holiday_lab()
    db.session.commit()
    for _ in range(2):  # read and kept, then painted: closed for the holiday
        assert _scan([instrument], *window, None) == []
    assert painted == [False]
    version = (instrument.calendar_version, lab.calendar_version)
    lab.follows_holidays = False
    db.session.commit()
    db.session.refresh(instrument)
    assert (instrument.calendar_version, lab.calendar_version) == version
    assert _expected([instrument], *window, None) == [instrument.id]
    if how == "scan":
        got = _scan([instrument], *window, None)
    elif how == "with_free_slot":
        got = [r.id for r in with_free_slot([instrument], *window)]
    else:
        filters = ResourceFilters(available_from=window[0], available_to=window[1])
        got = [r.id for r in search_resources(filters, page=1, per_page=50).items]
    assert instrument.id in got


@pytest.mark.usefixtures("clock")
def test_a_search_that_read_its_candidates_before_a_change_does_not_paint_for_later_ones(
    app: Any, db: Any, painted: list[bool]
) -> None:
    """A search read its candidates, the lab opted out of the holidays, another search
    read them again (the same rows, the same stamp); the first then paints the old
    picture, which the searches after it do not use."""
    lab, instrument, window = _holiday_lab()
    db.session.commit()
    assert _scan([instrument], *window, None) == []  # rows kept
    before = free_memo.of_ids([instrument.id])
    lab.follows_holidays = False
    db.session.commit()
    free_memo.of_ids([instrument.id])
    found = free_time.scan(Candidates.of(before), lambda _s: window, None, limit=1)
    assert found.found == []  # as it was read
    assert _scan([instrument], *window, None) == [instrument.id]


@pytest.mark.usefixtures("clock")
def test_rows_read_again_drop_the_time_painted_from_the_old_ones(app: Any, db: Any) -> None:
    lab = factories.make_lab(hours=factories.weekday_hours("08:00", "18:00", range(7)))
    instrument = factories.make_instrument(lab=lab, rules=dict(factories.OPEN_RULES))
    db.session.commit()
    day = dt.datetime(2030, 9, 10, 2, tzinfo=dt.UTC)
    window = (day, day + dt.timedelta(hours=3))
    for _ in range(2):
        _scan([instrument], *window, None)
    memo = free_memo.memo_of(app)
    assert memo.kept[instrument.id].painted is not None
    db.session.add(
        Closure(resource_id=instrument.id, start_at=day, end_at=day + dt.timedelta(hours=1))
    )
    db.session.commit()
    _scan([instrument], *window, None)  # the rows read again
    assert memo.kept[instrument.id].painted is None


@pytest.mark.usefixtures("clock")
def test_only_a_window_the_rows_can_answer_is_painted(app: Any, db: Any, monkeypatch: Any) -> None:
    """Far windows asked in turn each read their own rows (replacing the other's):
    none is painted for a window its rows cannot answer; a far window asked again
    paints its own rows once."""
    calls: list[int] = []
    real = free_painted._paint
    monkeypatch.setattr(free_painted, "_paint", lambda *a: calls.append(1) or real(*a))
    lab = factories.make_lab(hours=factories.weekday_hours("08:00", "18:00", range(7)))
    instrument = factories.make_instrument(lab=lab, rules=dict(factories.OPEN_RULES))
    db.session.commit()
    far = exact.NOW + dt.timedelta(days=40)
    windows = [
        (far, far + dt.timedelta(days=2)),
        (far + dt.timedelta(days=10), far + dt.timedelta(days=12)),
    ]
    for n in range(6):
        _scan([instrument], *windows[n % 2], None)
    assert calls == []
    for _ in range(3):
        _scan([instrument], *windows[1], None)
    assert calls == [1]


@pytest.mark.usefixtures("clock")
def test_a_window_beyond_the_painted_span_reads_its_own_rows(
    app: Any, db: Any, painted: list[bool]
) -> None:
    lab = factories.make_lab(hours=factories.weekday_hours("00:00", "23:59", range(7)))
    instrument = factories.make_instrument(lab=lab, rules=dict(factories.OPEN_RULES))
    db.session.commit()
    day = exact.NOW + dt.timedelta(days=3)
    for _ in range(2):
        assert _scan([instrument], day, day + dt.timedelta(hours=2), None) == [instrument.id]
    assert painted == [True]
    far = exact.NOW + free_memo.AHEAD + dt.timedelta(days=8)
    assert _scan([instrument], far, far + dt.timedelta(hours=2), None) == [instrument.id]
    assert painted == [True]


@pytest.mark.usefixtures("clock")
def test_a_catalogue_change_elsewhere_keeps_the_painted_time(
    app: Any, db: Any, painted: list[bool]
) -> None:
    """Another instrument renamed moves the catalogue's version, so the candidate is
    read again: its rows and its painting stay (its calendar did not change)."""
    lab = factories.make_lab(hours=factories.weekday_hours("08:00", "18:00", range(7)))
    instrument = factories.make_instrument(lab=lab, rules=dict(factories.OPEN_RULES))
    other = factories.make_instrument(lab=factories.make_lab())
    db.session.commit()
    day = dt.datetime(2030, 9, 10, 2, tzinfo=dt.UTC)
    window = (day, day + dt.timedelta(hours=3))
    for _ in range(2):
        assert _scan([instrument], *window, None) == [instrument.id]
    memo = free_memo.memo_of(app)
    before = memo.kept[instrument.id]
    assert before.painted is not None
    other.name = "另一台"
    db.session.commit()
    free_memo.of_ids([instrument.id])
    after = memo.kept[instrument.id]
    assert after.version != before.version
    assert after.rows is before.rows and after.painted is before.painted
    assert _scan([instrument], *window, None) == [instrument.id]
    assert painted == [True, True]
