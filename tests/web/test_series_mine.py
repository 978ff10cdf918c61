"""My bookings lists the company's recurring series (resource, how it repeats, how
many occurrences, how many still active, a link to the series page), and only the
company's: a colleague's series is there, another company's is not. Both databases."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from flask import Flask

from labshare.booking.bookings import cancel_booking
from labshare.booking.policies import recurrence
from labshare.booking.policies.recurrence import create_series, series_bookings, validate_spec
from labshare.extensions import db
from labshare.models import Booking, Role
from labshare.timeutil import set_clock
from labshare.web.bookings import views as booking_views
from tests import factories
from tests.helpers import signed_in

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)  # Tuesday
SH = ZoneInfo("Asia/Shanghai")
START = dt.datetime(2030, 1, 7, 9, tzinfo=SH)  # Monday
END = dt.datetime(2030, 1, 7, 11, tzinfo=SH)
RULES = {**factories.OPEN_RULES, "max_active_per_company": 200}


@pytest.fixture
def env(app: Flask) -> SimpleNamespace:
    """Company A: ``sme`` books a weekly series of 3 on the instrument (one occurrence
    then cancelled) and ``colleague`` a daily series of 2 on the lab. Company B books a
    monthly series of 2 on the instrument at another hour."""
    set_clock(lambda: NOW)
    lab = factories.make_lab(rules=dict(RULES))
    inst = factories.make_instrument(rules=dict(RULES), lab=lab, name_en="Pressure calibrator")
    company = factories.make_company()
    sme = factories.make_user(Role.SME, company=company)
    colleague = factories.make_user(Role.SME, company=company)
    other = factories.make_user(Role.SME)
    weekly = create_series(
        inst,
        sme,
        START,
        END,
        validate_spec("weekly", weekdays=[0], count=3),
        purpose="weekly",
        skip_conflicting=False,
    ).series
    daily = create_series(
        lab,
        colleague,
        START.replace(day=8),
        END.replace(day=8),
        validate_spec("daily", count=2),
        purpose="daily",
        skip_conflicting=False,
    ).series
    foreign = create_series(
        inst,
        other,
        START.replace(hour=14),
        END.replace(hour=15),
        validate_spec("monthly", count=2),
        purpose="monthly",
        skip_conflicting=False,
    ).series
    db.session.commit()
    first = series_bookings(weekly)[0]
    cancel_booking(db.session.get(Booking, first.id), sme)
    db.session.commit()
    return SimpleNamespace(
        inst=inst,
        lab=lab,
        sme=sme,
        colleague=colleague,
        other=other,
        weekly=weekly,
        daily=daily,
        foreign=foreign,
    )


def test_overview_counts_the_company_series(env: SimpleNamespace) -> None:
    items, total = recurrence.series_overview(env.sme, NOW, limit=10)
    assert total == 2
    got = {i.series.id: (i.occurrences, i.active) for i in items}
    assert got == {env.weekly.id: (3, 2), env.daily.id: (2, 2)}
    # The other company sees only its own.
    items, total = recurrence.series_overview(env.other, NOW, limit=10)
    assert (total, [i.series.id for i in items]) == (1, [env.foreign.id])


def test_overview_counts_past_occurrences_as_no_longer_active(env: SimpleNamespace) -> None:
    after_the_first_week = dt.datetime(2030, 1, 10, tzinfo=dt.UTC)
    items, _total = recurrence.series_overview(env.sme, after_the_first_week, limit=10)
    got = {i.series.id: (i.occurrences, i.active) for i in items}
    # weekly: Jan 7 cancelled, Jan 14 and 21 ahead; daily: Jan 8 and 9 are over.
    assert got == {env.weekly.id: (3, 2), env.daily.id: (2, 0)}
    assert [i.series.id for i in items] == [env.weekly.id, env.daily.id]  # running first


def test_my_bookings_lists_the_company_series(app: Flask, env: SimpleNamespace) -> None:
    html = signed_in(app, env.colleague).get("/bookings").get_data(as_text=True)
    assert "Recurring bookings" in html
    assert f'href="/series/{env.weekly.id}"' in html  # a colleague's series too
    assert f'href="/series/{env.daily.id}"' in html
    assert f'href="/series/{env.foreign.id}"' not in html
    assert "Pressure calibrator" in html
    assert "every 1 week(s): Monday" in html and "3 times" in html
    assert "every 1 day(s)" in html
    assert "09:00 – 11:00" in html
    row = html[html.index(f'href="/series/{env.weekly.id}"') :]
    row = row[: row.index("</tr>")]
    assert '<td class="num" data-label="Occurrences">3</td>' in row
    assert '<td class="num" data-label="Still active">2</td>' in row

    other = signed_in(app, env.other).get("/bookings").get_data(as_text=True)
    assert f'href="/series/{env.foreign.id}"' in other
    assert f'href="/series/{env.weekly.id}"' not in other
    assert "every 1 month(s)" in other


def test_my_bookings_without_series_has_no_series_section(app: Flask) -> None:
    set_clock(lambda: NOW)
    lonely = factories.make_user(Role.SME)
    db.session.commit()
    html = signed_in(app, lonely).get("/bookings").get_data(as_text=True)
    assert "Recurring bookings" not in html


def test_my_bookings_keeps_the_series_list_short(
    app: Flask, env: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(booking_views, "SERIES_LIMIT", 1)
    html = signed_in(app, env.sme).get("/bookings").get_data(as_text=True)
    assert html.count('href="/series/') == 1
    assert "Showing 1 of 2 series" in html
