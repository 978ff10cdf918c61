"""The monthly export: last month's bookings as CSV, stored and sent to the admins.

Only a minimal export lives here: one row per booking of the month (by the local
day on which it starts, in its institute's zone), UTF-8 with a BOM so that Excel
opens the Chinese text. The full statistics export (XLSX with summary sheets) is
``flask export-usage``'s; when it exists this job can write that instead.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
from pathlib import Path
from typing import Any

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from labshare.database import begin_write
from labshare.extensions import db
from labshare.jobs.markers import claim
from labshare.messaging import staff_notices
from labshare.models import Booking, Role, User
from labshare.safety import spreadsheet_text
from labshare.timeutil import to_local, utcnow

COLUMNS = [
    "booking_id",
    "institute_code",
    "institute",
    "resource_id",
    "resource_kind",
    "resource",
    "company",
    "credit_code",
    "start_local",
    "end_local",
    "timezone",
    "status",
    "service_type",
    "usage_minutes",
    "samples_count",
    "problem_solved",
    "fee",
    "fee_waived",
]


def previous_month(today: dt.date) -> str:
    last = today.replace(day=1) - dt.timedelta(days=1)
    return f"{last.year:04d}-{last.month:02d}"


def month_rows(month: str) -> list[list[Any]]:
    year, mon = (int(p) for p in month.split("-"))
    first = dt.date(year, mon, 1)
    nxt = (first + dt.timedelta(days=32)).replace(day=1)
    # A day of slack each side; the local month is decided per booking below.
    start = dt.datetime.combine(first, dt.time(), dt.UTC) - dt.timedelta(days=1)
    end = dt.datetime.combine(nxt, dt.time(), dt.UTC) + dt.timedelta(days=1)
    bookings = db.session.scalars(
        select(Booking)
        .options(selectinload(Booking.usage), selectinload(Booking.company))
        .where(Booking.start_at >= start, Booking.start_at < end)
        .order_by(Booking.start_at, Booking.id)
    )
    rows: list[list[Any]] = []
    for b in bookings:
        tz = b.resource.institute.timezone
        local_start = to_local(b.start_at, tz)
        if not (first <= local_start.date() < nxt):
            continue
        usage = b.usage
        minutes = (
            int((usage.checked_out_at - usage.checked_in_at).total_seconds() // 60) if usage else ""
        )
        rows.append(
            [
                b.id,
                b.resource.institute.code,
                b.resource.institute.name,
                b.resource_id,
                str(b.resource_kind),
                b.resource.name,
                b.company.name,
                b.company.credit_code,
                local_start.strftime("%Y-%m-%d %H:%M"),
                to_local(b.end_at, tz).strftime("%Y-%m-%d %H:%M"),
                tz,
                str(b.status),
                str(usage.service_type) if usage else "",
                minutes,
                usage.samples_count if usage else "",
                ("yes" if usage.problem_solved else "no") if usage else "",
                f"{b.fee:.2f}",
                f"{b.fee_waived:.2f}",
            ]
        )
    return rows


def write_csv(month: str) -> tuple[Path, int]:
    """Write ``instance/exports/usage-<month>.csv`` (atomically: a reader never sees
    half a file) and return its path and row count."""
    rows = month_rows(month)
    folder = Path(current_app.config["INSTANCE_DIR"]) / "exports"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"usage-{month}.csv"
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    writer.writerows([spreadsheet_text(cell) for cell in row] for row in rows)
    tmp = path.with_suffix(f".csv.{os.getpid()}.tmp")
    tmp.write_bytes(buffer.getvalue().encode("utf-8-sig"))
    tmp.replace(path)
    return path, len(rows)


def write_xlsx(month: str) -> Path:
    """The full export (Summary, Institutes, Instruments, Bookings) of every
    institute, ``instance/exports/usage-<month>.xlsx``, streamed, written atomically."""
    from labshare.campaign import export

    folder = Path(current_app.config["INSTANCE_DIR"]) / "exports"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"usage-{month}.xlsx"
    tmp = path.with_suffix(f".xlsx.{os.getpid()}.tmp")
    export.write_xlsx(str(tmp), export.Period.month(month), export.Scope.everything())
    tmp.replace(path)
    return path


def monthly_export() -> dict[str, Any]:
    """Export last month once (in the platform's default zone), the first time this
    runs on or after the 1st, and tell every active admin."""
    tz = str(current_app.config.get("DEFAULT_TIMEZONE", "Asia/Shanghai"))
    month = previous_month(to_local(utcnow(), tz).date())
    begin_write()
    if not claim(f"monthly-export:{month}", "monthly-export"):
        return {"month": month, "exported": False}
    path, count = write_csv(month)
    write_xlsx(month)
    admins = db.session.scalars(
        select(User).where(User.role == Role.ADMIN, User.active.is_(True)).order_by(User.id)
    )
    sent = sum(
        1 for admin in admins if staff_notices.monthly_export_ready(admin, month, path.name, count)
    )
    return {"month": month, "exported": True, "rows": count, "file": str(path), "messages": sent}
