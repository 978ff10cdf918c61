"""The main flows in a real headless Chromium against a real server.

An SME registers, finds an instrument by capability, books a free slot in the
calendar and sees it pending; staff approve it; the SME sees it approved and
cancels it; staff import an XLSX with one bad row and see the error.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from typing import Any
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from flask import Flask

from labshare.accounts.credit_code import make_credit_code
from labshare.extensions import db
from labshare.models import Booking, BookingStatus, Instrument, Notification, Role
from tests import factories
from tests.e2e.conftest import ARTIFACTS, screenshot

pytestmark = pytest.mark.browser

PASSWORD = factories.PASSWORD


@pytest.fixture(scope="module")
def seeded(live_app: tuple[Flask, str]) -> dict[str, Any]:
    app, base = live_app
    with app.app_context():
        institute = factories.make_institute(code="JSIM", name="江苏省计量科学研究院")
        lab = factories.make_lab(
            institute=institute,
            name="压力计量开放实验室",
            name_en="Pressure metrology lab",
            hours=factories.weekday_hours("08:00", "18:00"),
        )
        instrument = factories.make_instrument(
            lab=lab,
            name="数字压力校验仪",
            name_en="Digital pressure calibrator",
            calibration_valid_until=dt.date.today() + dt.timedelta(days=365),
        )
        factories.make_instrument(
            lab=lab,
            name="小量程压力计",
            name_en="Low-range manometer",
            range_min=0.0,
            range_max=1.0,
            range_min_base=0.0,
            range_max_base=1_000_000.0,
        )
        staff = factories.make_user(
            Role.STAFF, institute=institute, email="staff@jsim.example", name="王工"
        )
        db.session.commit()
        return {
            "base": base,
            "app": app,
            "instrument_id": instrument.id,
            "lab_name": lab.name,
            "staff_email": staff.email,
        }


@pytest.fixture(scope="module")
def sme_page(browser: Any) -> Any:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    yield page
    context.close()


@pytest.fixture(scope="module")
def staff_page(browser: Any, seeded: dict[str, Any]) -> Any:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
    page = context.new_page()
    page.goto(seeded["base"] + "/login")
    page.fill("input[name=email]", seeded["staff_email"])
    page.fill("input[name=password]", PASSWORD)
    page.locator("main form button[type=submit]").click()
    page.wait_for_load_state()
    yield page
    context.close()


def _booking(app: Flask) -> Booking:
    with app.app_context():
        booking = db.session.scalars(db.select(Booking)).one()
        db.session.expunge(booking)
        return booking


def _mailed_path(app: Flask, kind: str, prefix: str) -> str:
    """The path of the link in the newest outbox message of ``kind``."""
    with app.app_context():
        body = db.session.scalars(
            db.select(Notification.body_text)
            .where(Notification.kind == kind)
            .order_by(Notification.id.desc())
        ).first()
    assert body is not None
    found = re.search(re.escape(prefix) + r"\S+", body)
    assert found, body
    return found.group(0)


def test_1_sme_registers_finds_by_capability_and_books(
    seeded: dict[str, Any], sme_page: Any, staff_page: Any
) -> None:
    page, base = sme_page, seeded["base"]
    page.goto(base + "/")
    screenshot(page, "home")
    page.goto(base + "/register")
    page.fill("input[name=company_name]", "苏州精密机械有限公司")
    page.fill("input[name=credit_code]", make_credit_code("320500", "12345678"))
    page.select_option("select[name=province]", "江苏省")
    page.fill("input[name=name]", "李经理")
    page.fill("input[name=email]", "li@precision.example")
    page.fill("input[name=password]", "a long enough passphrase 42")
    page.fill("input[name=confirm]", "a long enough passphrase 42")
    page.select_option("select[name=locale]", "en")
    screenshot(page, "register")
    page.locator("main form button[type=submit]").click()
    page.wait_for_load_state()
    assert "Check your mailbox" in page.locator("main").inner_text()
    # The address is confirmed through the mailed link, then the new member signs in.
    page.goto(base + _mailed_path(seeded["app"], "verify_email", "/verify/"))
    page.wait_for_load_state()
    page.goto(base + "/login")
    page.fill("input[name=email]", "li@precision.example")
    page.fill("input[name=password]", "a long enough passphrase 42")
    page.locator("main form button[type=submit]").click()
    page.wait_for_load_state()
    assert page.locator(".user-name").inner_text().strip() == "李经理"
    # A new company books once an institute's staff confirm it.
    staff_page.goto(seeded["base"] + "/companies")
    row = staff_page.locator("#pending-companies tr", has_text="苏州精密机械有限公司")
    row.locator("button", has_text="Confirm").click()
    staff_page.wait_for_load_state()
    assert "is confirmed" in staff_page.locator(".flashes").inner_text()

    # Find the instrument by what it must measure: 8 MPa of pressure.
    page.goto(base + "/catalogue")
    capability_form = page.locator("select[name=measurand]").count() > 0
    if capability_form:
        page.select_option("select[name=measurand]", "pressure")
        page.fill("input[name=value]", "8")
        unit = page.locator("[name=unit]")
        if unit.evaluate("e => e.tagName") == "SELECT":
            page.select_option("select[name=unit]", "MPa")
        else:
            unit.fill("MPa")
        # the results' page, not the form's: requestSubmit() only starts the navigation,
        # and the form's page is loaded already (under load the old page was read)
        with page.expect_navigation():
            page.locator("select[name=measurand]").evaluate("e => e.form.requestSubmit()")
        results = page.locator("main").inner_text()
        assert "Digital pressure calibrator" in results or "数字压力校验仪" in results
        assert "Low-range manometer" not in results and "小量程压力计" not in results
        screenshot(page, "catalogue-capability")
    else:
        page.goto(base + "/catalogue?q=pressure")
    page.goto(f"{base}/resources/{seeded['instrument_id']}")
    screenshot(page, "resource")

    # The week calendar: next week, the first free slot.
    page.goto(f"{base}/resources/{seeded['instrument_id']}/calendar")
    page.locator("a[rel=next]").first.click()
    page.wait_for_load_state()
    screenshot(page, "calendar")
    free = page.locator("td.slot-free a").first
    free.click()
    page.wait_for_load_state()
    assert re.search(r"/book\?start=", page.url)
    assert page.input_value("input[name=start]")
    page.fill("textarea[name=purpose]", "校准压力变送器 (calibrate pressure transmitters)")
    screenshot(page, "booking-form")
    # The form has a second submit button, "Repeat…", which goes to the series form.
    page.locator("form.booking-form button[type=submit]:not([formaction])").click()
    page.wait_for_load_state()
    main = page.locator("main").inner_text()
    assert "Pending approval" in main, main
    screenshot(page, "booking-pending")
    page.goto(base + "/bookings")
    assert "Pending approval" in page.locator("main").inner_text()
    screenshot(page, "my-bookings")
    if not capability_form:
        pytest.fail("the catalogue has no capability search form (measurand, value, unit)")


def test_2_staff_approves(seeded: dict[str, Any], staff_page: Any) -> None:
    page, base = staff_page, seeded["base"]
    booking = _booking(seeded["app"])
    page.goto(base + "/manage")
    assert f"request-{booking.id}" in page.content()
    screenshot(page, "dashboard")
    page.locator(f"#request-{booking.id} button", has_text="Approve").click()
    page.wait_for_load_state()
    assert f"Booking #{booking.id} approved." in page.locator(".flashes").inner_text()
    assert _booking(seeded["app"]).status == BookingStatus.APPROVED


def test_3_sme_sees_approved_and_cancels(seeded: dict[str, Any], sme_page: Any) -> None:
    page, base = sme_page, seeded["base"]
    page.goto(base + "/bookings")
    row = page.locator("table.bookings tbody tr").first
    assert "Approved" in row.inner_text()
    row.locator("button", has_text="Cancel").click()  # the confirm dialog is accepted
    page.wait_for_load_state()
    assert "The booking was cancelled." in page.locator(".flashes").inner_text()
    assert "Cancelled" in page.locator("main").inner_text()
    assert _booking(seeded["app"]).status == BookingStatus.CANCELLED
    page.goto(base + "/notifications")
    screenshot(page, "notifications")


def test_4_staff_imports_xlsx_with_one_bad_row(
    seeded: dict[str, Any], staff_page: Any, tmp_path: Any
) -> None:
    page, base = staff_page, seeded["base"]
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["lab", "name", "field", "measurand", "unit", "range_min", "range_max"])
    sheet.append([seeded["lab_name"], "活塞式压力计", "mechanical", "pressure", "MPa", 0.1, 60])
    sheet.append([seeded["lab_name"], "坏行", "mechanical", "pressure", "kg", 0, 1])
    buffer = io.BytesIO()
    workbook.save(buffer)
    path = tmp_path / "instruments.xlsx"
    path.write_bytes(buffer.getvalue())
    app = seeded["app"]
    with app.app_context():
        before = db.session.scalar(db.select(db.func.count(Instrument.id)))

    page.goto(base + "/manage/import")
    page.set_input_files("input[name=file]", str(path))
    page.locator("main form[enctype] button[type=submit]").click()
    page.wait_for_load_state()
    errors = page.locator(".import-errors")
    assert errors.count() == 1
    text = errors.inner_text()
    assert "Nothing was imported" in text
    first = page.locator("tr.import-error").first.inner_text()
    assert first.split()[:2] == ["3", "unit"], first
    screenshot(page, "import-error")
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(Instrument.id))) == before
    assert ARTIFACTS.joinpath("calendar-390x844.png").exists()


def test_5_sme_books_a_weekly_series_skipping_a_taken_week(
    seeded: dict[str, Any], sme_page: Any
) -> None:
    """Repeat…: the preview marks the week that is taken; "book the rest" books the others."""
    page, base, app = sme_page, seeded["base"], seeded["app"]
    tz = ZoneInfo("Asia/Shanghai")  # the factories' institute zone
    today = dt.datetime.now(tz).date()
    monday = today + dt.timedelta(days=(7 - today.weekday()) % 7 or 7)
    if (monday - today).days < 3:
        monday += dt.timedelta(days=7)
    first = dt.datetime.combine(monday, dt.time(10, 0), tzinfo=tz)
    with app.app_context():
        instrument = db.session.get(Instrument, seeded["instrument_id"])
        factories.make_booking(
            resource=instrument,
            user=factories.make_user(Role.SME),
            start=(first + dt.timedelta(days=7)).astimezone(dt.UTC),
            end=(first + dt.timedelta(days=7, hours=2)).astimezone(dt.UTC),
            status=BookingStatus.APPROVED,
        )
        db.session.commit()

    page.goto(f"{base}/resources/{seeded['instrument_id']}/book/series")
    page.fill("input[name=start]", first.strftime("%Y-%m-%dT%H:%M"))
    page.fill("input[name=end]", (first + dt.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"))
    page.fill("textarea[name=purpose]", "每周校准 (weekly calibration)")
    page.select_option("select[name=freq]", "weekly")
    page.fill("input[name=count]", "3")
    page.get_by_role("button", name="Preview the occurrences").click()
    page.wait_for_load_state()
    rows = page.locator(".series-preview tbody tr")
    assert rows.count() == 3, page.locator("main").inner_text()
    classes = [rows.nth(i).get_attribute("class") for i in range(3)]
    assert classes == ["occurrence-ok", "occurrence-refused", "occurrence-ok"]
    screenshot(page, "series-preview")
    page.get_by_role("button", name=re.compile("Book the rest")).click()
    page.wait_for_load_state()
    assert "2 bookings made; 1 occurrences skipped." in page.locator(".flashes").inner_text()
    screenshot(page, "series")
    with app.app_context():
        held = db.session.scalars(
            db.select(Booking).where(Booking.series_id.is_not(None)).order_by(Booking.start_at)
        ).all()
        assert [b.start_at for b in held] == [
            first.astimezone(dt.UTC),
            (first + dt.timedelta(days=14)).astimezone(dt.UTC),
        ]
        assert {b.status for b in held} == {BookingStatus.PENDING}
