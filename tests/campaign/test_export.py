"""The monthly usage export: numbers equal the statistics service, the XLSX and CSV
shapes, who may export what (API, web page, CLI)."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal
from typing import Any

import openpyxl
import pytest
from flask_babel import force_locale

from labshare.campaign import export, stats, xlsx
from labshare.campaign.stats import Period, Scope
from labshare.extensions import db
from labshare.models import BookingStatus, Role, ServiceType, UsageRecord
from labshare.timeutil import set_clock
from tests import factories
from tests.helpers import bearer, error_of

MONTH = "2030-01"
NOW = dt.datetime(2030, 1, 20, 4, 0, tzinfo=dt.UTC)


@pytest.fixture
def world(app: Any) -> dict[str, Any]:
    a = factories.make_institute(code="JS01", name="江苏省计量院")
    b = factories.make_institute(code="BJ01", name="北京市计量院", province_code="110000")
    ins_a = factories.make_instrument(institute=a, name="三坐标测量机")
    ins_b = factories.make_instrument(institute=b)
    staff = factories.make_user(Role.STAFF, institute=a)
    sme = factories.make_user(Role.SME)
    for n, (ins, status) in enumerate(
        [
            (ins_a, BookingStatus.COMPLETED),
            (ins_a, BookingStatus.COMPLETED),
            (ins_a, BookingStatus.REJECTED),
            (ins_b, BookingStatus.COMPLETED),
            (ins_b, BookingStatus.NO_SHOW),
            (ins_a, BookingStatus.APPROVED),  # after "today": live
        ]
    ):
        start = dt.datetime(2030, 1, 3 + 4 * n, 1, 0, tzinfo=dt.UTC)
        booking = factories.make_booking(
            resource=ins,
            user=sme,
            start=start,
            status=status,
            fee=Decimal("200"),
            fee_waived=Decimal("50"),
            created_at=start - dt.timedelta(days=2),
            decided_at=start - dt.timedelta(days=1),
        )
        if status == BookingStatus.COMPLETED:
            db.session.add(
                UsageRecord(
                    booking_id=booking.id,
                    checked_in_at=start,
                    checked_out_at=start + dt.timedelta(minutes=90),
                    service_type=ServiceType.CALIBRATION,
                    problem_solved=True,
                    recorded_by_id=staff.id,
                )
            )
    db.session.commit()
    set_clock(lambda: NOW)
    # no roll-up, no job: the figures are counted from the bookings when asked
    db.session.commit()
    return {"a": a, "b": b, "staff": staff, "sme": sme, "admin": factories.make_user(Role.ADMIN)}


def _xlsx(data: bytes) -> Any:
    return openpyxl.load_workbook(io.BytesIO(data), read_only=True)


def test_xlsx_sheets_headers_and_numbers_equal_the_statistics(world: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    with force_locale("en"):
        rows = export.write_xlsx(buffer, Period.month(MONTH), Scope.everything())
    assert rows == 6
    wb = _xlsx(buffer.getvalue())
    assert wb.sheetnames == ["Summary", "Institutes", "Instruments", "Orders", "Bookings"]
    figures = stats.statistics_for(Period.month(MONTH), Scope.everything())
    summary = {r[0]: r[1] for r in wb["Summary"].iter_rows(min_row=2, values_only=True)}
    assert summary["Bookings requested"] == figures.counters["bookings_total"] == 6
    assert summary["Completed"] == figures.counters["completed"] == 3
    assert summary["Usage hours"] == figures.counters.usage_hours == 4.5
    assert summary["Fees charged"] == float(figures.counters.fees_charged) == 450
    assert summary["Fees waived"] == 150
    assert summary["SMEs served"] == figures.distinct_smes == 1
    assert summary["Approval rate"] == figures.approval_rate == 0.8333  # 5 of 6 decided
    assert summary["Calibration"] == 3
    institutes = list(wb["Institutes"].iter_rows(values_only=True))
    header = institutes[0]
    assert header[:3] == ("Institute code", "Institute", "Province")
    col = header.index("Bookings requested")
    assert sum(r[col] for r in institutes[1:]) == 6
    assert {r[0]: r[col] for r in institutes[1:]} == {"BJ01": 2, "JS01": 4}
    bookings = list(wb["Bookings"].iter_rows(values_only=True))
    assert bookings[0][0] == "Booking no." and len(bookings) == 7
    assert "三坐标测量机" in {r[5] for r in bookings[1:]}
    fee_col = bookings[0].index("Fee charged")
    assert sum(r[fee_col] for r in bookings[1:]) == 450


def test_headers_in_the_users_language(world: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    with force_locale("zh_CN"):
        export.write_xlsx(buffer, Period.month(MONTH), Scope.institute(world["a"].id))
        expected = export.booking_columns()[0].title
    wb = _xlsx(buffer.getvalue())
    assert next(wb.worksheets[-1].iter_rows(values_only=True))[0] == expected
    assert expected != "Booking no."  # translated


def test_csv_has_bom_and_chinese_round_trips(world: dict[str, Any]) -> None:
    with force_locale("en"):
        raw = b"".join(export.iter_csv(Period.month(MONTH), Scope.institute(world["a"].id)))
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0][0] == "Booking no."
    assert len(rows) == 5 and {r[2] for r in rows[1:]} == {"江苏省计量院"}
    assert rows[1][5] == "三坐标测量机"


def test_api_json_csv_xlsx_and_roles(client: Any, world: dict[str, Any]) -> None:
    url = "/api/v1/reports/usage"
    admin = bearer(world["admin"])
    r = client.get(url, query_string={"month": MONTH}, headers=admin)
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.get_json()["figures"]["requested"] == 6 and r.get_json()["institute"] is None
    r = client.get(url, query_string={"month": MONTH, "institute": "BJ01"}, headers=admin)
    assert r.get_json()["figures"]["requested"] == 2
    # Staff: their institute only, whatever they ask.
    staff = bearer(world["staff"])
    r = client.get(url, query_string={"month": MONTH}, headers=staff)
    assert r.get_json()["institute"]["code"] == "JS01" and r.get_json()["figures"]["requested"] == 4
    r = client.get(url, query_string={"month": MONTH, "institute": "BJ01"}, headers=staff)
    assert r.status_code == 403 and error_of(r)["code"] == "forbidden"
    r = client.get(url, query_string={"month": MONTH, "format": "csv"}, headers=staff)
    assert r.status_code == 200 and r.mimetype == "text/csv"
    body = r.get_data()
    assert body.startswith(b"\xef\xbb\xbf") and "北京市计量院" not in body.decode("utf-8-sig")
    r = client.get(url, query_string={"month": MONTH, "format": "xlsx"}, headers=staff)
    assert r.status_code == 200 and "spreadsheetml" in r.mimetype
    assert _xlsx(r.get_data()).sheetnames[-1] in ("Bookings", "预约明细")
    # SME: 403; anonymous: 401; bad input: 422 naming the field; unknown institute 404.
    r = client.get(url, query_string={"month": MONTH}, headers=bearer(world["sme"]))
    assert r.status_code == 403
    assert client.get(url, query_string={"month": MONTH}).status_code == 401
    for bad, field in (({"month": "2030-13"}, "month"), ({"month": "jan"}, "month"), ({}, "month")):
        r = client.get(url, query_string=bad, headers=admin)
        assert r.status_code == 422 and error_of(r)["field"] == field, bad
    r = client.get(url, query_string={"month": MONTH, "format": "pdf"}, headers=admin)
    assert r.status_code == 422 and error_of(r)["field"] == "format"
    r = client.get(url, query_string={"month": MONTH, "institute": "NOPE"}, headers=admin)
    assert r.status_code == 404 and error_of(r)["field"] == "institute"


def test_cli_export_usage(app: Any, world: dict[str, Any], tmp_path: Any) -> None:
    runner = app.test_cli_runner()
    out = tmp_path / "jan.xlsx"
    result = runner.invoke(
        args=["export-usage", "--month", MONTH, "--format", "xlsx", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "6 bookings" in result.output
    assert _xlsx(out.read_bytes()).sheetnames[0] in ("Summary", "汇总")
    out_csv = tmp_path / "jan.csv"
    result = runner.invoke(
        args=[
            "export-usage",
            "--month",
            MONTH,
            "--format",
            "csv",
            "--out",
            str(out_csv),
            "--institute",
            "BJ01",
        ]
    )
    assert result.exit_code == 0, result.output
    assert len(out_csv.read_bytes().decode("utf-8-sig").strip().splitlines()) == 3
    bad = runner.invoke(args=["export-usage", "--month", "2030-1", "--out", str(tmp_path / "x")])
    assert bad.exit_code != 0 and "--month" in bad.output
    assert not (tmp_path / "x").exists()
    bad = runner.invoke(
        args=["export-usage", "--month", MONTH, "--out", str(tmp_path / "y"), "--institute", "NO"]
    )
    assert bad.exit_code != 0 and "--institute" in bad.output


def test_xlsx_layout_formats_and_unsafe_text(world: dict[str, Any]) -> None:
    """The hand-written workbook: frozen header, widths, bold header, number formats,
    local times as real dates, and text with XML specials and control characters."""
    from sqlalchemy import select

    from labshare.models import Booking, Resource
    from labshare.timeutil import zone

    booking = db.session.scalars(select(Booking).order_by(Booking.start_at)).first()
    assert booking is not None
    resource = db.session.get(Resource, booking.resource_id)
    assert resource is not None
    resource.name = 'A&B <x> "q"\x01\x1f\ufffe y '
    db.session.commit()
    buffer = io.BytesIO()
    with force_locale("en"):
        rows = export.write_xlsx(buffer, Period.month(MONTH), Scope.everything())
        columns = export.booking_columns()
    assert rows == 6
    wb = openpyxl.load_workbook(io.BytesIO(buffer.getvalue()))
    assert wb.sheetnames == ["Summary", "Institutes", "Instruments", "Orders", "Bookings"]
    for ws in wb.worksheets:
        assert ws.freeze_panes == "A2"
        assert ws["A1"].font.b
    ws = wb["Bookings"]
    assert ws.max_row == 7 and ws.max_column == len(columns)
    for n, col in enumerate(columns, start=1):
        letter = openpyxl.utils.get_column_letter(n)
        assert ws.column_dimensions[letter].width == col.width
        assert ws.cell(row=1, column=n).value == col.title
        assert ws.cell(row=2, column=n).number_format == (col.number_format or "General")
    first = [c.value for c in ws[2]]
    assert first[0] == booking.id
    assert first[5] == 'A&B <x> "q" y '
    tz = zone(world["a"].timezone)
    assert first[9] == booking.start_at.astimezone(tz).replace(tzinfo=None)
    assert first[16] == 200 and first[17] == 50 and first[18] == 150
    # An empty value keeps its column's format (a rejected booking: no usage hours).
    rejected = next(r for r in ws.iter_rows(min_row=2) if r[13].value is None)
    assert rejected[13].number_format == export.HOURS
    assert rejected[14].number_format == export.INTEGER
    summary = wb["Summary"]
    formats = {r[0].value: r[1].number_format for r in summary.iter_rows(min_row=2)}
    assert formats["Approval rate"] == export.PERCENT
    assert formats["Fees charged"] == export.MONEY
    assert formats["Period"] == "General"


def test_xml_text_escapes_and_strips_illegal_characters() -> None:
    assert export.xml_text('a<b>&c"d') == "a&lt;b&gt;&amp;c&quot;d"
    assert export.xml_text("x\x00\x08\x0b\x0c\x0e\x1f\ud800\uffffy\t\n\r") == "xy\t\n\r"
    assert export.xml_text("江苏省计量院") == "江苏省计量院"


def test_xlsx_failure_mid_detail_stops_the_writer_thread(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database error while streaming the detail propagates; no thread is left."""
    import threading

    real = export.booking_rows

    def failing(period: Period, scope: Scope) -> Any:
        for n, row in enumerate(real(period, scope)):
            if n == 2:
                raise RuntimeError("connection lost")
            yield row

    monkeypatch.setattr(xlsx, "booking_rows", failing)
    before = threading.active_count()
    with force_locale("en"), pytest.raises(RuntimeError, match="connection lost"):
        export.write_xlsx(io.BytesIO(), Period.month(MONTH), Scope.everything())
    assert threading.active_count() == before
    assert not any(t.name == "xlsx-deflate" for t in threading.enumerate())
