"""Staff book for a company that phoned in, in a real headless Chromium: a weekly
series of a lab, then the lab with one of its instruments ticked (a group). Every
booking is recorded as made by staff for the company, and the company is told."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from flask import Flask

from labshare.extensions import db
from labshare.models import Booking, Notification, Role
from labshare.timeutil import to_local
from tests import factories
from tests.e2e.conftest import login_page, screenshot

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def behalf_world(live_app: tuple[Flask, str]) -> dict[str, Any]:
    app, base = live_app
    with app.app_context():
        institute = factories.make_institute(code="BHLF", name="北京市计量检测科学研究院")
        lab = factories.make_lab(institute=institute, name="长度实验室", name_en="Length lab")
        gauge = factories.make_instrument(
            lab=lab, name="量块比较仪", name_en="Gauge block comparator"
        )
        staff = factories.make_user(Role.STAFF, institute=institute, email="desk@bhlf.example")
        member = factories.make_user(Role.SME, email="phoned@company.example")
        db.session.commit()
        start = (dt.datetime.now(dt.UTC) + dt.timedelta(days=8)).replace(
            hour=2, minute=0, second=0, microsecond=0
        )
        local = to_local(start, institute.timezone)
        return {
            "app": app,
            "base": base,
            "lab_id": lab.id,
            "gauge_id": gauge.id,
            "staff": staff.email,
            "staff_id": staff.id,
            "member_id": member.id,
            "company_id": member.company_id,
            "credit_code": member.company.credit_code,
            "local": local,
        }


def _login(browser: Any, base: str, email: str) -> Any:
    return login_page(browser, base, email, (1280, 900))


def _fill(page: Any, world: dict[str, Any], start: dt.datetime, purpose: str) -> None:
    page.fill("input[name=credit_code]", world["credit_code"])
    page.fill("input[name=start]", start.strftime("%Y-%m-%dT%H:%M"))
    page.fill("input[name=end]", (start + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"))
    page.fill("textarea[name=purpose]", purpose)


def test_staff_book_a_weekly_series_and_a_group_for_a_company(
    browser: Any, behalf_world: dict[str, Any]
) -> None:
    world, base, app = behalf_world, behalf_world["base"], behalf_world["app"]
    page = _login(browser, base, world["staff"])

    page.goto(f"{base}/manage/resources/{world['lab_id']}/book-for")
    _fill(page, world, world["local"], "Weekly gauge block checks")
    page.select_option("select[name=freq]", "weekly")
    page.fill("input[name=count]", "2")
    page.locator("main form button[type=submit]", has_text="Book for the company").click()
    page.wait_for_load_state()
    assert "/series/" in page.url, page.locator("main").inner_text()[:800]
    screenshot(page, "on-behalf-series")

    page.goto(f"{base}/manage/resources/{world['lab_id']}/book-for")
    _fill(page, world, world["local"] + dt.timedelta(days=1), "Lab and comparator")
    page.check(f"input[name=instrument_ids][value='{world['gauge_id']}']")
    page.locator("main form button[type=submit]", has_text="Book for the company").click()
    page.wait_for_load_state()
    assert "/bookings/" in page.url, page.locator("main").inner_text()[:800]
    screenshot(page, "on-behalf-group")
    page.context.close()

    with app.app_context():
        rows = db.session.scalars(
            db.select(Booking).where(Booking.company_id == world["company_id"])
        ).all()
        # two of the series (the lab), then the lab and the comparator together
        assert sorted(b.resource_id for b in rows) == sorted(
            [world["lab_id"]] * 3 + [world["gauge_id"]]
        )
        assert {b.booked_by_id for b in rows} == {world["staff_id"]}
        assert {b.user_id for b in rows} == {world["member_id"]}
        told = db.session.scalars(
            db.select(Notification).where(Notification.user_id == world["member_id"])
        ).all()
        assert told, "the company was not told"
