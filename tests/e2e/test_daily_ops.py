"""Staff close an instrument over two bookings in a real headless Chromium: the
confirmation step lists them, staff ask the companies to move them, the companies are
told; the audit log and the booking page show what happened; the notifications link of
a company member counts the message."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from flask import Flask

from labshare.extensions import db
from labshare.models import Booking, BookingStatus, Notification, Role
from labshare.timeutil import to_local
from tests import factories
from tests.e2e.conftest import login_page, screenshot

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def ops_world(live_app: tuple[Flask, str]) -> dict[str, Any]:
    app, base = live_app
    with app.app_context():
        institute = factories.make_institute(code="SHIM", name="上海市计量测试技术研究院")
        instrument = factories.make_instrument(
            institute=institute, name="激光干涉仪", name_en="Laser interferometer"
        )
        staff = factories.make_user(Role.STAFF, institute=institute, email="ops@shim.example")
        start = (dt.datetime.now(dt.UTC) + dt.timedelta(days=5)).replace(
            minute=0, second=0, microsecond=0
        )
        members = []
        for hour in range(2):
            member = factories.make_user(Role.SME, email=f"m{hour}@ops.example")
            members.append(member.email)
            factories.make_booking(
                resource=instrument,
                user=member,
                start=start + dt.timedelta(hours=hour),
                end=start + dt.timedelta(hours=hour + 1),
                status=BookingStatus.APPROVED,
            )
        db.session.commit()
        local = to_local(start, institute.timezone)
        return {
            "app": app,
            "base": base,
            "instrument_id": instrument.id,
            "staff": staff.email,
            "members": members,
            "from": (local - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
            "until": (local + dt.timedelta(hours=4)).strftime("%Y-%m-%dT%H:%M"),
        }


def _login(browser: Any, base: str, email: str) -> Any:
    return login_page(browser, base, email, (1280, 800))


def test_closure_confirmation_audit_and_unread_count(
    browser: Any, ops_world: dict[str, Any]
) -> None:
    base, app = ops_world["base"], ops_world["app"]
    page = _login(browser, base, ops_world["staff"])
    page.goto(f"{base}/manage/resources/{ops_world['instrument_id']}/closures")
    page.fill("input[name=start]", ops_world["from"])
    page.fill("input[name=end]", ops_world["until"])
    page.select_option("select[name=kind]", "maintenance")
    page.locator("main form button[type=submit]", has_text="Add the closure").click()
    page.wait_for_load_state()
    confirm = page.locator(".closure-confirm")
    assert "2 bookings fall in this closure" in confirm.inner_text()
    screenshot(page, "closure-confirm")
    page.check("input[name=on_bookings][value=ask_move]")
    page.fill("textarea[name=message]", "Annual calibration of the laser")
    page.locator("main form button[type=submit]", has_text="Close and tell").click()
    page.wait_for_load_state()
    assert "Closure added" in page.locator(".flashes").inner_text()
    with app.app_context():
        statuses = set(db.session.scalars(db.select(Booking.status)))
        assert BookingStatus.APPROVED not in statuses
        notices = db.session.scalars(
            db.select(Notification).where(Notification.kind == "closure_notice")
        ).all()
        assert len(notices) == 2
        booking_id = db.session.scalars(db.select(Booking.id).order_by(Booking.id)).first()

    page.goto(f"{base}/audit/?object=booking")
    log = page.locator("table.audit-log").inner_text()
    assert "booking.closure_hold" in log
    screenshot(page, "audit-log")
    page.goto(f"{base}/bookings/{booking_id}")
    assert "booking.closure_hold" in page.locator(".booking-history").inner_text()
    page.context.close()

    member = _login(browser, base, ops_world["members"][0])
    count = member.locator(".main-nav .nav-count")
    assert count.inner_text().startswith("1")
    member.context.close()
