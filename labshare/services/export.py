"""The monthly usage export: XLSX (Summary, Institutes, Instruments, Bookings) and
CSV (the booking detail, UTF-8 with a BOM so that Excel reads the Chinese text).

Both stream: the booking detail comes from a server-side cursor (``yield_per``) and
goes out through a write-only workbook or a generator of CSV chunks, so exporting a
million bookings never holds them in memory. Headers are in the current locale
(call inside ``force_locale`` for someone else's).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import IO, Any, cast

from flask_babel import gettext as _
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet._write_only import WriteOnlyWorksheet
from sqlalchemy import Table, func, select

from labshare.errors import NotAllowed, NotFound, ValidationFailed
from labshare.extensions import db
from labshare.labels import label
from labshare.models import (
    Booking,
    BookingStatus,
    Company,
    Field,
    Institute,
    Resource,
    ResourceKind,
    Role,
    ServiceType,
    UsageRecord,
    User,
)
from labshare.services import stats
from labshare.services.stats import Counters, Period, Scope
from labshare.timeutil import zone

Progress = Callable[[int], None]
MONEY = "#,##0.00"
HOURS = "0.00"
PERCENT = "0.0%"
INTEGER = "0"
STAMP = "yyyy-mm-dd hh:mm"
PROGRESS_EVERY = 5000


@dataclass
class Column:
    title: str
    width: int
    number_format: str | None = None


def booking_columns() -> list[Column]:
    return [
        Column(_("Booking no."), 11, INTEGER),
        Column(_("Institute code"), 14),
        Column(_("Institute"), 28),
        Column(_("Province"), 12),
        Column(_("Kind"), 10),
        Column(_("Lab or instrument"), 30),
        Column(_("Measurement field"), 16),
        Column(_("Company"), 30),
        Column(_("Credit code"), 21),
        Column(_("Start (local time)"), 17, STAMP),
        Column(_("End (local time)"), 17, STAMP),
        Column(_("Status"), 12),
        Column(_("Service type"), 12),
        Column(_("Usage hours"), 11, HOURS),
        Column(_("Samples"), 9, INTEGER),
        Column(_("Problem solved"), 10),
        Column(_("Fee"), 12, MONEY),
        Column(_("Fee waived"), 12, MONEY),
        Column(_("Fee charged"), 12, MONEY),
    ]


def _counter_columns() -> list[Column]:
    return [
        Column(_("Bookings requested"), 12, INTEGER),
        Column(_("Pending"), 10, INTEGER),
        Column(_("Approved"), 10, INTEGER),
        Column(_("Rejected"), 10, INTEGER),
        Column(_("Cancelled"), 10, INTEGER),
        Column(_("Completed"), 10, INTEGER),
        Column(_("No-show"), 10, INTEGER),
        Column(_("Usage hours"), 11, HOURS),
        *[Column(label(s), 10, INTEGER) for s in ServiceType],
        Column(_("Problems solved"), 10, INTEGER),
        Column(_("Fees charged"), 14, MONEY),
        Column(_("Fees waived"), 14, MONEY),
    ]


def _counter_values(c: Counters) -> list[Any]:
    return [
        c["bookings_total"],
        *[c[s] for s in stats.STATUS_FIELDS],
        c.usage_hours,
        *[c[s] for s in stats.SERVICE_FIELDS],
        c["problems_solved"],
        c.fees_charged,
        Decimal(c["fees_waived"]),
    ]


def institute_columns() -> list[Column]:
    return [
        Column(_("Institute code"), 14),
        Column(_("Institute"), 30),
        Column(_("Province"), 12),
        Column(_("Open labs"), 10, INTEGER),
        Column(_("Shared instruments"), 12, INTEGER),
        Column(_("SMEs served"), 10, INTEGER),
        *_counter_columns(),
    ]


def instrument_columns() -> list[Column]:
    return [
        Column(_("Institute code"), 14),
        Column(_("Instrument no."), 11, INTEGER),
        Column(_("Instrument"), 32),
        Column(_("Measurement field"), 16),
        *_counter_columns(),
        Column(_("Booked hours"), 11, HOURS),
        Column(_("Open hours"), 11, HOURS),
        Column(_("Utilisation"), 11, PERCENT),
    ]


@dataclass
class Report:
    """Everything but the booking detail, computed once per export."""

    period: Period
    scope: Scope
    figures: stats.Statistics
    resources: dict[int, stats.ResourceInfo]
    by_resource: dict[int, Counters]
    util: stats.Utilisation
    smes_by_institute: dict[int, int]


def build_report(period: Period, scope: Scope) -> Report:
    resources = stats.resources_in(scope)
    return Report(
        period=period,
        scope=scope,
        figures=stats.statistics_for(period, scope),
        resources=resources,
        by_resource=stats.counters_by(period, scope, "resource"),
        util=stats.utilisation(period, scope, resources, heat_map=False),
        smes_by_institute=stats.distinct_smes_by_institute(period, scope),
    )


def summary_rows(report: Report) -> list[tuple[str, Any, str | None]]:
    f = report.figures
    c = f.counters
    rows: list[tuple[str, Any, str | None]] = [
        (_("Period"), report.period.label(), None),
        (_("Open labs"), f.open_labs, INTEGER),
        (_("Shared instruments"), f.shared_instruments, INTEGER),
        (_("Bookings requested"), c["bookings_total"], INTEGER),
        (_("Pending"), c["pending"], INTEGER),
        (_("Approved"), c["approved"], INTEGER),
        (_("Rejected"), c["rejected"], INTEGER),
        (_("Cancelled"), c["cancelled"], INTEGER),
        (_("Completed"), c["completed"], INTEGER),
        (_("No-show"), c["no_show"], INTEGER),
        (_("Approval rate"), f.approval_rate, PERCENT),
        (_("Median hours to a decision"), f.median_decision_hours, HOURS),
        (_("Usage hours"), c.usage_hours, HOURS),
        (_("SMEs served"), f.distinct_smes, INTEGER),
        (_("New SMEs"), f.new_smes, INTEGER),
        (_("Service person-times"), c.person_times, INTEGER),
    ]
    rows += [(label(ServiceType(s)), c[s], INTEGER) for s in stats.SERVICE_FIELDS]
    rows += [
        (_("Problems solved"), c["problems_solved"], INTEGER),
        (_("Fees charged"), c.fees_charged, MONEY),
        (_("Fees waived"), Decimal(c["fees_waived"]), MONEY),
    ]
    return rows


def institute_rows(report: Report) -> Iterator[list[Any]]:
    per: dict[int, Counters] = defaultdict(Counters)
    shared = stats.shared_instrument_ids(report.by_resource, report.resources)
    open_labs = stats.open_lab_ids(report.resources, report.util.open_hours)
    names: dict[int, stats.ResourceInfo] = {}
    for rid, info in report.resources.items():
        names.setdefault(info.institute_id, info)
        if rid in report.by_resource:
            per[info.institute_id].add(report.by_resource[rid])
    institutes = db.session.execute(
        select(Institute.id, Institute.code, Institute.name, Institute.province)
        .where(
            Institute.id.in_(
                [g for z in stats.zone_groups(report.period, report.scope) for g in z.institute_ids]
            )
        )
        .order_by(Institute.code)
    )
    for iid, code, name, province in institutes:
        counters = per.get(iid, Counters())
        yield [
            code,
            name,
            province,
            sum(1 for r in open_labs if report.resources[r].institute_id == iid),
            sum(1 for r in shared if report.resources[r].institute_id == iid),
            report.smes_by_institute.get(iid, 0),
            *_counter_values(counters),
        ]


def instrument_rows(report: Report) -> Iterator[list[Any]]:
    for rid, info in sorted(report.resources.items(), key=lambda kv: (kv[1].institute_code, kv[0])):
        if info.kind != ResourceKind.INSTRUMENT:
            continue
        yield [
            info.institute_code,
            rid,
            info.name,
            label(Field(info.field)),
            *_counter_values(report.by_resource.get(rid, Counters())),
            round(report.util.booked_hours.get(rid, 0.0), 2),
            round(report.util.open_hours.get(rid, 0.0), 2),
            report.util.ratio(rid),
        ]


_RESOURCE = cast(Table, Resource.__table__)


def booking_rows(period: Period, scope: Scope) -> Iterator[list[Any]]:
    """One row per booking starting in the period (local days), streamed."""
    kinds = {k.value: label(k) for k in ResourceKind}
    statuses = {s.value: label(s) for s in BookingStatus}
    services = {s.value: label(s) for s in ServiceType}
    fields = {f.value: label(f) for f in Field}
    yes, no = _("yes"), _("no")
    for group in stats.zone_groups(period, scope):
        z = zone(group.timezone)
        stmt = (
            select(
                Booking.id,
                Institute.code,
                Institute.name,
                Institute.province,
                Booking.resource_kind,
                _RESOURCE.c.name,
                _RESOURCE.c.field,
                Company.name,
                Company.credit_code,
                Booking.start_at,
                Booking.end_at,
                Booking.status,
                UsageRecord.service_type,
                UsageRecord.checked_in_at,
                UsageRecord.checked_out_at,
                UsageRecord.samples_count,
                UsageRecord.problem_solved,
                Booking.fee,
                Booking.fee_waived,
            )
            .join(_RESOURCE, _RESOURCE.c.id == Booking.resource_id)
            .join(Institute, Institute.id == Booking.institute_id)
            .join(Company, Company.id == Booking.company_id)
            .outerjoin(UsageRecord, UsageRecord.booking_id == Booking.id)
            .where(stats.booking_window(group, scope))
            .order_by(Booking.start_at, Booking.id)
            .execution_options(yield_per=5000, stream_results=True)
        )
        for row in db.session.execute(stmt):
            (
                bid,
                icode,
                iname,
                prov,
                kind,
                rname,
                fld,
                cname,
                ccode,
                start,
                end,
                status,
                service,
                cin,
                cout,
                samples,
                solved,
                fee,
                waived,
            ) = row
            fee = fee or Decimal("0")
            waived = waived or Decimal("0")
            yield [
                bid,
                icode,
                iname,
                prov,
                kinds.get(str(kind), str(kind)),
                rname,
                fields.get(str(fld), str(fld)),
                cname,
                ccode,
                start.astimezone(z).replace(tzinfo=None),
                end.astimezone(z).replace(tzinfo=None),
                statuses.get(str(status), str(status)),
                services.get(str(service), "") if service is not None else "",
                round(stats.usage_minutes_of(cin, cout) / 60, 2) if cin is not None else None,
                samples,
                (yes if solved else no) if solved is not None else "",
                fee,
                waived,
                fee - waived if status == BookingStatus.COMPLETED else Decimal("0"),
            ]


def count_bookings(period: Period, scope: Scope) -> int:
    return sum(
        int(
            db.session.scalar(select(func.count(Booking.id)).where(stats.booking_window(g, scope)))
            or 0
        )
        for g in stats.zone_groups(period, scope)
    )


# -- XLSX ------------------------------------------------------------------------------


def _sheet(wb: Workbook, title: str, columns: list[Column]) -> WriteOnlyWorksheet:
    ws = cast(WriteOnlyWorksheet, wb.create_sheet(title))
    for n, col in enumerate(columns, start=1):
        ws.column_dimensions[get_column_letter(n)].width = col.width
    ws.freeze_panes = "A2"
    bold = Font(bold=True)
    header = []
    for col in columns:
        cell = WriteOnlyCell(ws, value=col.title)
        cell.font = bold
        header.append(cell)
    ws.append(header)
    return ws


def _styled(ws: WriteOnlyWorksheet, columns: list[Column]) -> Callable[[list[Any]], list[Any]]:
    """Number formats on the numeric columns: one styled cell object per column,
    reused (write-only cells are serialised at append time)."""
    formatted = [(i, c.number_format) for i, c in enumerate(columns) if c.number_format]
    cells = {i: WriteOnlyCell(ws) for i, _f in formatted}
    for i, fmt in formatted:
        cells[i].number_format = fmt

    def apply(values: list[Any]) -> list[Any]:
        for i, _fmt in formatted:
            cell = cells[i]
            cell.value = values[i]
            values[i] = cell
        return values

    return apply


def write_xlsx(
    target: IO[bytes] | str, period: Period, scope: Scope, progress: Progress | None = None
) -> int:
    """Write the workbook; returns the number of booking rows."""
    report = build_report(period, scope)
    wb = Workbook(write_only=True)
    summary = _sheet(wb, _("Summary"), [Column(_("Figure"), 34), Column(_("Value"), 24)])
    for title, value, fmt in summary_rows(report):
        cell = WriteOnlyCell(summary, value=value)
        if fmt:
            cell.number_format = fmt
        summary.append([title, cell])
    for title, columns, rows in (
        (_("Institutes"), institute_columns(), institute_rows(report)),
        (_("Instruments"), instrument_columns(), instrument_rows(report)),
    ):
        ws = _sheet(wb, title, columns)
        style = _styled(ws, columns)
        for values in rows:
            ws.append(style(values))
    columns = booking_columns()
    ws = _sheet(wb, _("Bookings"), columns)
    style = _styled(ws, columns)
    count = 0
    for values in booking_rows(period, scope):
        ws.append(style(values))
        count += 1
        if progress is not None and count % PROGRESS_EVERY == 0:
            progress(PROGRESS_EVERY)
    if progress is not None:
        progress(count % PROGRESS_EVERY)
    wb.save(target)
    return count


# -- CSV -------------------------------------------------------------------------------


def _csv_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    return "" if value is None else value


def iter_csv(period: Period, scope: Scope, progress: Progress | None = None) -> Iterator[bytes]:
    """The booking detail as CSV chunks, the first starting with the UTF-8 BOM."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([c.title for c in booking_columns()])
    first = True
    count = 0
    for values in booking_rows(period, scope):
        writer.writerow([_csv_value(v) for v in values])
        count += 1
        if count % 2000 == 0:
            chunk = buffer.getvalue().encode("utf-8")
            yield (b"\xef\xbb\xbf" + chunk) if first else chunk
            first = False
            buffer.seek(0)
            buffer.truncate()
            if progress is not None:
                progress(2000)
    chunk = buffer.getvalue().encode("utf-8")
    yield (b"\xef\xbb\xbf" + chunk) if first else chunk
    if progress is not None:
        progress(count % 2000)


def write_csv(
    target: IO[bytes], period: Period, scope: Scope, progress: Progress | None = None
) -> None:
    for chunk in iter_csv(period, scope, progress):
        target.write(chunk)


def scope_for(user: User | None, institute_code: str | None) -> tuple[Scope, Institute | None]:
    """Who may export what: admins (and the CLI, ``user`` None) any institute or
    all; staff their own institute only; SMEs nothing."""
    if user is not None and user.role not in (Role.ADMIN, Role.STAFF):
        raise NotAllowed(_("Only institute staff and platform admins see usage reports."))
    institute: Institute | None = None
    if institute_code:
        institute = db.session.scalar(select(Institute).where(Institute.code == institute_code))
        if institute is None:
            raise NotFound(_("No institute %(code)s.", code=institute_code), field="institute")
    if user is not None and user.role == Role.STAFF:
        if institute is not None and institute.id != user.institute_id:
            raise NotAllowed(_("Staff see their own institute's statistics only."))
        institute = db.session.get(Institute, user.institute_id)
    if institute is None:
        return Scope.everything(), None
    return Scope.institute(institute.id), institute


def parse_month(text: str | None) -> Period:
    try:
        return Period.month(text or "")
    except ValueError:
        raise ValidationFailed(
            _("month must be a month as YYYY-MM, e.g. 2030-01."), field="month"
        ) from None


def filename(period: Period, institute: Institute | None, ext: str) -> str:
    who = institute.code if institute is not None else "all"
    return f"usage-{period.start.strftime('%Y-%m')}-{who}.{ext}"
