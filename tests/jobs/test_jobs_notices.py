"""The monthly export and the calibration notices: once each."""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path
from typing import Any

import openpyxl
from sqlalchemy import select

from labshare.extensions import db
from labshare.jobs import run_job
from labshare.jobs.calibration import expired_calibrations
from labshare.messaging import mail
from labshare.models import BookingStatus, Notification, Role, User
from tests import factories
from tests.jobsutil import freeze


def test_monthly_export_once_with_bom_and_sent_to_admins(app: Any) -> None:
    admin = factories.make_user(Role.ADMIN)
    factories.make_user(Role.ADMIN, active=False)
    instrument = factories.make_instrument(name="三坐标测量机")
    # 2030-01-31 17:00 UTC is already February in Shanghai: not January's.
    jan = factories.make_booking(
        resource=instrument,
        start=dt.datetime(2030, 1, 31, 15, 0, tzinfo=dt.UTC),
        status=BookingStatus.COMPLETED,
    )
    factories.make_booking(
        resource=instrument,
        start=dt.datetime(2030, 1, 31, 17, 0, tzinfo=dt.UTC),
        status=BookingStatus.APPROVED,
    )
    # 2029-12-31 16:30 UTC is January 1st, 00:30 in Shanghai.
    new_year = factories.make_booking(
        resource=instrument, start=dt.datetime(2029, 12, 31, 16, 30, tzinfo=dt.UTC)
    )
    db.session.commit()

    freeze(dt.datetime(2030, 1, 31, 20, 0, tzinfo=dt.UTC))  # 04:00 on Feb 1st, local
    result = run_job("monthly-export")
    assert result["month"] == "2030-01" and result["rows"] == 2 and result["messages"] == 1
    assert run_job("monthly-export") == {"month": "2030-01", "exported": False}

    workbook = openpyxl.load_workbook(
        Path(app.config["INSTANCE_DIR"]) / "exports" / "usage-2030-01.xlsx", read_only=True
    )
    detail = list(workbook.worksheets[-1].iter_rows(values_only=True))
    assert len(workbook.sheetnames) == 5 and len(detail) == 3  # header + 2 (Orders before)
    path = Path(app.config["INSTANCE_DIR"]) / "exports" / "usage-2030-01.csv"
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0][:3] == ["booking_id", "institute_code", "institute"]
    assert [int(r[0]) for r in rows[1:]] == [new_year.id, jan.id]
    assert rows[1][5] == "三坐标测量机" and rows[1][8] == "2030-01-01 00:30"

    [note] = db.session.scalars(select(Notification).where(Notification.kind == "monthly_export"))
    assert note.user_id == admin.id
    user = db.session.get(User, admin.id)
    assert user is not None
    msg = mail.build_message(note, user)
    [attachment] = list(msg.iter_attachments())
    assert attachment.get_filename() == "usage-2030-01.csv"


def test_calibration_notice_30_days_ahead_and_expired_once(app: Any) -> None:
    institute = factories.make_institute()
    staff = factories.make_user(Role.STAFF, institute=institute)
    today = dt.date(2030, 1, 7)  # local date at the frozen time below
    soon = factories.make_instrument(
        institute=institute, calibration_valid_until=today + dt.timedelta(days=30)
    )
    later = factories.make_instrument(
        institute=institute, calibration_valid_until=today + dt.timedelta(days=31)
    )
    gone = factories.make_instrument(
        institute=institute,
        calibration_valid_until=today - dt.timedelta(days=1),
        certificate_number="JJ-2029-001",
    )
    last_day = factories.make_instrument(institute=institute, calibration_valid_until=today)
    db.session.commit()

    freeze(dt.datetime(2030, 1, 6, 16, 30, tzinfo=dt.UTC))  # 00:30 on the 7th, local
    result = run_job("calibration-notices")
    assert sorted(result["expiring"]) == sorted([soon.id, last_day.id])
    assert result["expired"] == [gone.id]
    assert run_job("calibration-notices") == {"expiring": [], "expired": []}
    assert [i.id for i in expired_calibrations(institute.id)] == [gone.id]
    notes = db.session.scalars(select(Notification).order_by(Notification.id)).all()
    assert {n.user_id for n in notes} == {staff.id}
    assert {n.kind for n in notes} == {"calibration_expiring", "calibration_expired"}
    assert later.id not in {int(n.dedupe_key.split(":")[2]) for n in notes}

    # A new certificate with a new date gets its own notice, in time.
    gone.calibration_valid_until = today + dt.timedelta(days=10)
    gone.certificate_number = "JJ-2030-007"
    db.session.commit()
    assert run_job("calibration-notices")["expiring"] == [gone.id]
