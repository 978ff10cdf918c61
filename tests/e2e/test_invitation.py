"""A company administrator invites a colleague in a real headless Chromium; the
invitation arrives over real SMTP (aiosmtpd); the colleague follows the link from the
mail in a signed-out browser at phone width, registers into the company and sees its
bookings."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from flask import Flask

from labshare.extensions import db
from labshare.jobs import run_job
from labshare.models import BookingStatus, Role, User
from tests import factories
from tests.e2e.conftest import VIEWPORTS, screenshot
from tests.jobsutil import SmtpServer

pytestmark = pytest.mark.browser

NEW_PASSWORD = "a long enough passphrase 42"


@pytest.fixture(scope="module")
def company_world(live_app: tuple[Flask, str]) -> dict[str, Any]:
    app, base = live_app
    with app.app_context():
        institute = factories.make_institute(code="ZJIM", name="浙江省计量科学研究院")
        instrument = factories.make_instrument(
            institute=institute, name="三坐标测量机", name_en="Coordinate measuring machine"
        )
        company = factories.make_company(name="杭州精工有限公司")
        admin = factories.make_user(
            Role.SME, company=company, company_admin=True, email="boss@jinggong.example"
        )
        start = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=3)
        factories.make_booking(
            resource=instrument,
            user=admin,
            start=start,
            end=start + dt.timedelta(hours=2),
            status=BookingStatus.APPROVED,
        )
        db.session.commit()
        return {"app": app, "base": base, "admin_email": admin.email}


def test_invited_colleague_registers_from_the_mail_and_sees_the_bookings(
    browser: Any, company_world: dict[str, Any], mail_server: SmtpServer
) -> None:
    app, base = company_world["app"], company_world["base"]
    admin_context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
    page = admin_context.new_page()
    page.goto(base + "/login")
    page.fill("input[name=email]", company_world["admin_email"])
    page.fill("input[name=password]", factories.PASSWORD)
    page.locator("main form button[type=submit]").click()
    page.wait_for_load_state()
    page.goto(base + "/company")
    page.fill("input[name=email]", "colleague@jinggong.example")
    page.locator("main form button[type=submit]", has_text="Send the invitation").click()
    page.wait_for_load_state()
    assert "An invitation was sent" in page.locator(".flashes").inner_text()
    assert "colleague@jinggong.example" in page.locator("#invitations").inner_text()
    screenshot(page, "company-invited")
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    admin_context.close()

    with app.app_context():
        run_job("deliver")
    [mail] = [m for m in mail_server.messages if m["To"] == "colleague@jinggong.example"]
    text = mail.get_body(preferencelist=("plain",)).get_content()
    found = re.search(r"https?://\S+/invitations/\S+", text)
    assert found, text

    width, height = VIEWPORTS["phone"]
    context = browser.new_context(viewport={"width": width, "height": height}, locale="en-US")
    phone = context.new_page()
    phone.goto(found.group(0))
    assert phone.input_value("input[name=email]") == "colleague@jinggong.example"
    phone.fill("input[name=name]", "赵工")
    phone.fill("input[name=password]", NEW_PASSWORD)
    phone.fill("input[name=confirm]", NEW_PASSWORD)
    phone.select_option("select[name=locale]", "en")
    screenshot(phone, "invitation-accept-phone")
    phone.locator("main form button[type=submit]").click()
    phone.wait_for_load_state()
    assert "Welcome to 杭州精工有限公司" in phone.locator(".flashes").inner_text()
    assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    phone.goto(base + "/bookings")
    main = phone.locator("main").inner_text()
    assert "Coordinate measuring machine" in main or "三坐标测量机" in main
    screenshot(phone, "invited-member-bookings")

    # The link works once.
    phone.goto(base + "/login")  # signed in: the link page refuses anyone signed in
    fresh = browser.new_context(viewport={"width": width, "height": height}, locale="en-US")
    again = fresh.new_page()
    again.goto(found.group(0))
    assert "already used" in again.locator("main").inner_text()
    fresh.close()
    context.close()
    with app.app_context():
        member = db.session.scalar(
            db.select(User).where(User.email == "colleague@jinggong.example")
        )
        assert member is not None and member.company.name == "杭州精工有限公司"
