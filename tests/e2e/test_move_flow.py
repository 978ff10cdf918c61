"""A company member moves a booking in a real headless Chromium: from the booking's
page to the move page, a free slot of the week grid fills the form, the move is
confirmed, and the booking page shows the new time (waiting for approval, since the
default rules require it) and the move in its history."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from flask import Flask

from labshare.extensions import db
from labshare.models import Booking, BookingStatus, Role
from tests import factories
from tests.e2e.conftest import screenshot

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def move_world(live_app: tuple[Flask, str]) -> dict[str, Any]:
    app, base = live_app
    with app.app_context():
        instrument = factories.make_instrument(name="三坐标测量机", name_en="CMM")
        member = factories.make_user(Role.SME, email="mover@move.example")
        start = (dt.datetime.now(dt.UTC) + dt.timedelta(days=5)).replace(
            hour=2, minute=0, second=0, microsecond=0
        )
        booking = factories.make_booking(
            resource=instrument,
            user=member,
            start=start,
            end=start + dt.timedelta(hours=1),
            status=BookingStatus.APPROVED,
        )
        db.session.commit()
        return {"app": app, "base": base, "booking_id": booking.id, "start": start}


def test_company_moves_a_booking_from_the_week_grid(
    browser: Any, move_world: dict[str, Any]
) -> None:
    base, app, booking_id = move_world["base"], move_world["app"], move_world["booking_id"]
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
    page = context.new_page()
    page.goto(base + "/login")
    page.fill("input[name=email]", "mover@move.example")
    page.fill("input[name=password]", factories.PASSWORD)
    page.locator("main form button[type=submit]").click()
    page.wait_for_load_state()

    page.goto(f"{base}/bookings/{booking_id}")
    page.locator("a", has_text="Move to another time").click()
    page.wait_for_load_state()
    assert page.locator("table.calendar").count() == 1
    slots = page.locator("table.calendar a[data-slot-start]")
    assert slots.count() > 0
    chosen = slots.last.get_attribute("data-slot-start")
    slots.last.click()
    page.wait_for_load_state()
    assert page.input_value("input[name=start]") == chosen
    screenshot(page, "move-booking")
    page.locator("form.move-form button[type=submit]").click()
    page.wait_for_load_state()
    body = page.inner_text("main")
    assert "moved" in body
    assert "booking.move" in body  # the booking's own history
    context.close()

    with app.app_context():
        booking = db.session.get(Booking, booking_id)
        assert booking.start_at != move_world["start"]
        assert booking.status == BookingStatus.PENDING  # the default rules ask approval
        assert booking.moves == 1
