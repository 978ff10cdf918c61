"""A holiday and a make-up Saturday in a real headless Chromium: the week calendar names
both above their columns, paints the holiday's slots, offers the Saturday's slots (with
Monday's hours), and a slot taken from it becomes a booking."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from flask import Flask

from labshare.booking import holiday_admin
from labshare.extensions import db
from labshare.models import Booking, OpeningPeriod, Role
from tests import factories
from tests.e2e.conftest import screenshot

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def holiday_world(live_app: tuple[Flask, str]) -> dict[str, Any]:
    app, base = live_app
    today = dt.date.today()
    monday = today - dt.timedelta(days=today.weekday()) + dt.timedelta(days=14)
    wednesday, saturday = monday + dt.timedelta(days=2), monday + dt.timedelta(days=5)
    with app.app_context():
        hours = [
            OpeningPeriod(weekday=0, opens=dt.time(9), closes=dt.time(12)),
            *factories.weekday_hours("08:00", "18:00", range(1, 5)),
        ]
        lab = factories.make_lab(hours=hours)
        instrument = factories.make_instrument(lab=lab, rules=dict(factories.OPEN_RULES))
        member = factories.make_user(Role.SME, email="holiday@e2e.example", locale="en")
        holiday_admin.put_day(
            None, day=wednesday.isoformat(), kind="holiday", name="国庆节", name_en="National Day"
        )
        holiday_admin.put_day(
            None, day=saturday.isoformat(), kind="workday", name="国庆节", name_en="National Day"
        )
        db.session.commit()
        year, week, _ = monday.isocalendar()
        return {
            "app": app,
            "base": base,
            "instrument_id": instrument.id,
            "member": member.email,
            "week": f"{year}-W{week:02d}",
            "wednesday": wednesday,
            "saturday": saturday,
        }


def test_the_week_shows_the_holiday_and_books_the_make_up_saturday(
    browser: Any, holiday_world: dict[str, Any]
) -> None:
    w = holiday_world
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
    page = context.new_page()
    page.goto(w["base"] + "/login")
    page.fill("input[name=email]", w["member"])
    page.fill("input[name=password]", factories.PASSWORD)
    page.locator("main form button[type=submit]").click()
    page.wait_for_load_state()
    page.goto(f"{w['base']}/resources/{w['instrument_id']}/calendar?week={w['week']}")
    screenshot(page, "calendar-holidays")
    head = page.locator("thead").inner_text()
    assert "Holiday: National Day" in head and "Make-up workday (National Day)" in head, head
    assert page.locator("td.slot-holiday").count() > 0
    saturday = w["saturday"].isoformat()
    free = page.locator(f"td.slot-free a[data-slot-start^='{saturday}']")
    assert free.count() == 6  # Monday's 09:00-12:00 in half-hour rows
    assert free.first.get_attribute("data-slot-start") == f"{saturday}T09:00"
    assert page.locator(f"td.slot-free a[data-slot-start^='{w['wednesday']}']").count() == 0
    free.first.click()
    page.wait_for_load_state()
    page.fill("textarea[name=purpose]", "make-up day")
    page.locator("form.booking-form button[type=submit]:not([formaction])").click()
    page.wait_for_load_state()
    with w["app"].app_context():
        booking = db.session.query(Booking).filter_by(resource_id=w["instrument_id"]).one()
        assert booking.status == "approved"
    context.close()
