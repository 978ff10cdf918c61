"""Each resource's free time painted once from its kept rows and clipped to every
window asked after (labshare/catalogue/free_memo.py ``Painted``,
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
from labshare.catalogue import free_memo, free_time
from labshare.catalogue.free_candidates import Candidates
from labshare.catalogue.free_time import has_free_slot
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
    """The answers ``_fits_painted`` gave (not None: from the painted free time)."""
    given: list[bool] = []
    real = free_time._fits_painted

    def spy(*args: Any) -> bool | None:
        found = real(*args)
        if found is not None:
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
        out.extend((free_memo.micros(s), free_memo.micros(e)))
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
        kept = free_memo.Painted(None, free_memo.micros(lo), free_memo.micros(hi), _bounds(spans))  # type: ignore[arg-type]
        subject = type("S", (), {"timezone": tz})()
        rules = type("R", (), {"slot_minutes": slot})()
        candidate = type("C", (), {"subject": subject, "rules": rules})()
        got = free_time._fits_painted(kept, free_time._Cut((start, end), length), candidate)  # type: ignore[arg-type]
        clipped = [(max(s, start), min(e, end)) for s, e in spans if s < end and e > start]
        assert got == free_time._fits(clipped, slot, length, tz), (spans, start, end, slot)
    outside = free_memo.Painted(None, free_memo.micros(base), free_memo.micros(base), array("q"))  # type: ignore[arg-type]
    cut = free_time._Cut((base, base + dt.timedelta(hours=1)), dt.timedelta(minutes=30))
    assert free_time._fits_painted(outside, cut, candidate) is None  # type: ignore[arg-type]


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
