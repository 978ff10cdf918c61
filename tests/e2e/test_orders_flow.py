"""Service orders in a real headless Chromium: an SME orders two items, staff accept,
receive and complete them with PDFs, the SME downloads a certificate and the public
verification page confirms it."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask

from labshare.extensions import db
from labshare.models import Field, OrderServiceType, Role, ServiceOffering
from tests import factories
from tests.e2e.conftest import login_page, screenshot
from tests.factories import make_pdf

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def seeded(live_app: tuple[Flask, str]) -> dict[str, Any]:
    app, base = live_app
    with app.app_context():
        institute = factories.make_institute(code="ZJIM", name="浙江省计量科学研究院")
        calibration = ServiceOffering(
            institute_id=institute.id,
            field=Field.MECHANICAL,
            service_type=OrderServiceType.CALIBRATION,
            name="压力表校准",
            name_en="Pressure gauge calibration",
            fee=Decimal("150"),
            fee_waiver_percent=50,
            interval_months=12,
        )
        testing = ServiceOffering(
            institute_id=institute.id,
            field=Field.THERMAL,
            service_type=OrderServiceType.TESTING,
            name="温度计检测",
            name_en="Thermometer testing",
            fee=Decimal("90"),
        )
        db.session.add_all([calibration, testing])
        sme = factories.make_user(Role.SME, email="buyer@sme.example", name="赵工")
        staff = factories.make_user(
            Role.STAFF, institute=institute, email="lab@zjim.example", name="钱工"
        )
        db.session.commit()
        return {
            "base": base,
            "institute_id": institute.id,
            "offerings": [calibration.id, testing.id],
            "sme": sme.email,
            "staff": staff.email,
        }


def _login(browser: Any, base: str, email: str) -> Any:
    return login_page(browser, base, email, (390, 844))


def _submit(page: Any, selector: str) -> None:
    with page.expect_navigation():
        page.locator(selector).click()


def test_sme_orders_staff_complete_sme_downloads_and_verifies(
    browser: Any, seeded: dict[str, Any]
) -> None:
    base = seeded["base"]
    sme = _login(browser, base, seeded["sme"])
    sme.goto(base + "/orders/new")
    sme.select_option("select[name=institute_id]", str(seeded["institute_id"]))
    sme.select_option("select[name=delivery]", "courier")
    sme.fill("input[name=tracking_number]", "SF0001")
    for n, (offering, name) in enumerate(
        zip(seeded["offerings"], ["压力表", "温度计"], strict=True)
    ):
        sme.select_option(f"select[name=items-{n}-offering_id]", str(offering))
        sme.fill(f"input[name=items-{n}-name]", name)
        sme.fill(f"input[name=items-{n}-serial_number]", f"SN-{n}")
    _submit(sme, "main form.stacked-form button[type=submit]")
    assert sme.locator("#order-status").inner_text().strip() == "Submitted"
    order_url = sme.url
    order_id = int(re.search(r"/orders/(\d+)", order_url).group(1))  # type: ignore[union-attr]
    screenshot(sme, "order-submitted")

    staff = _login(browser, base, seeded["staff"])
    staff.goto(base + "/orders")
    assert f"#{order_id}" in staff.locator("main").inner_text()
    staff.goto(order_url)
    promised = (dt.date.today() + dt.timedelta(days=14)).isoformat()
    staff.fill("input[name=promised_date]", promised)
    _submit(staff, "form.action-accept button[type=submit]")
    assert staff.locator("#order-status").inner_text().strip() == "Accepted"
    _submit(staff, "form.action-receive button[type=submit]")
    _submit(staff, "form.action-start button[type=submit]")
    assert staff.locator("#order-status").inner_text().strip() == "In progress"
    for n in range(2):
        form = staff.locator("form.complete-form").first
        form.locator("select[name=result]").select_option("conforming")
        form.locator("input[name=certificate_number]").fill(f"ZJ-E2E-{n}")
        form.locator("input[name=file]").set_input_files(
            {"name": "certificate.pdf", "mimeType": "application/pdf", "buffer": make_pdf()}
        )
        with staff.expect_navigation():
            form.locator("button[type=submit]").click()
    assert staff.locator("#order-status").inner_text().strip() == "Completed"
    screenshot(staff, "order-completed-staff")

    sme.goto(order_url)
    code = sme.locator(".verification-code").first.inner_text().strip()
    with sme.expect_download() as info:
        sme.locator("a.download-certificate").first.click()
    path = info.value.path()
    with open(path, "rb") as fh:
        assert fh.read().startswith(b"%PDF-")

    visitor = browser.new_context(viewport={"width": 390, "height": 844}, locale="en-US").new_page()
    visitor.goto(base + "/verify")
    visitor.fill("input[name=number]", "ZJ-E2E-0")
    visitor.fill("input[name=code]", code)
    _submit(visitor, "main form button[type=submit]")
    assert "Genuine." in visitor.locator("#verify-answer").inner_text()
    screenshot(visitor, "certificate-verified")
