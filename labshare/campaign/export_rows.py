"""The rows of the monthly usage export, whatever writes them: the columns of each
sheet, the summary figures, one row per institute, instrument and booking (the
booking detail from a server-side cursor, ``yield_per``, so a million never sit in
memory), and who may export what. Headers are in the current locale (call inside
``force_locale`` for someone else's)."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

from flask_babel import gettext as _
from sqlalchemy import DateTime, String, Table, func, select, type_coerce

from labshare.campaign.counters import SERVICE_FIELDS, STATUS_FIELDS, Counters, usage_minutes_of
from labshare.campaign.figures import Statistics, distinct_smes_by_institute, statistics_for
from labshare.campaign.periods import Period, Scope, booking_window, zone_groups
from labshare.campaign.stored import counters_by
from labshare.campaign.utilisation import (
    ResourceInfo,
    Utilisation,
    open_lab_ids,
    resources_in,
    shared_instrument_ids,
    utilisation,
)
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
from labshare.sheets import HOURS, INTEGER, MONEY, PERCENT, STAMP, Column
from labshare.timeutil import zone

PROGRESS_EVERY = 5000


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
        *[c[s] for s in STATUS_FIELDS],
        c.usage_hours,
        *[c[s] for s in SERVICE_FIELDS],
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
    figures: Statistics
    resources: dict[int, ResourceInfo]
    by_resource: dict[int, Counters]
    util: Utilisation
    smes_by_institute: dict[int, int]


def build_report(period: Period, scope: Scope) -> Report:
    resources = resources_in(scope)
    return Report(
        period=period,
        scope=scope,
        figures=statistics_for(period, scope),
        resources=resources,
        by_resource=counters_by(period, scope, "resource"),
        util=utilisation(period, scope, resources, heat_map=False),
        smes_by_institute=distinct_smes_by_institute(period, scope),
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
    rows += [(label(ServiceType(s)), c[s], INTEGER) for s in SERVICE_FIELDS]
    rows += [
        (_("Problems solved"), c["problems_solved"], INTEGER),
        (_("Fees charged"), c.fees_charged, MONEY),
        (_("Fees waived"), Decimal(c["fees_waived"]), MONEY),
    ]
    return rows


def institute_rows(report: Report) -> Iterator[list[Any]]:
    per: dict[int, Counters] = defaultdict(Counters)
    shared = shared_instrument_ids(report.by_resource, report.resources)
    open_labs = open_lab_ids(report.resources, report.util.open_hours)
    names: dict[int, ResourceInfo] = {}
    for rid, info in report.resources.items():
        names.setdefault(info.institute_id, info)
        if rid in report.by_resource:
            per[info.institute_id].add(report.by_resource[rid])
    institutes = db.session.execute(
        select(Institute.id, Institute.code, Institute.name, Institute.province)
        .where(
            Institute.id.in_(
                [g for z in zone_groups(report.period, report.scope) for g in z.institute_ids]
            )
        )
        .order_by(Institute.code)
    )
    open_per = Counter(report.resources[r].institute_id for r in open_labs)
    shared_per = Counter(report.resources[r].institute_id for r in shared)
    for iid, code, name, province in institutes:
        counters = per.get(iid, Counters())
        yield [
            code,
            name,
            province,
            open_per[iid],
            shared_per[iid],
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
    """One row per booking starting in the period (local days), streamed.

    Plain Core rows from a server-side cursor (no ORM loading), enum and time columns
    read raw (no per-value type conversion: the labels come from lookups keyed by
    the stored value, and the times are read as aware or, on SQLite, naive UTC)."""
    kinds = {k.value: label(k) for k in ResourceKind}
    statuses = {s.value: label(s) for s in BookingStatus}
    # A late cancellation counts as a no-show in every figure; its row says which it is.
    late_text = _("Late cancellation")
    services: dict[str | None, str] = {s.value: label(s) for s in ServiceType}
    services[None] = ""
    fields = {f.value: label(f) for f in Field}
    solved_text = {True: _("yes"), False: _("no"), None: ""}
    completed = BookingStatus.COMPLETED.value
    cancelled = BookingStatus.CANCELLED.value
    zero = Decimal("0")
    utc = dt.UTC
    stamp = DateTime(timezone=True)
    connection = db.session.connection()
    for group in zone_groups(period, scope):
        z = zone(group.timezone)
        stmt = (
            select(
                Booking.id,
                Institute.code,
                Institute.name,
                Institute.province,
                type_coerce(Booking.resource_kind, String()),
                _RESOURCE.c.name,
                type_coerce(_RESOURCE.c.field, String()),
                Company.name,
                Company.credit_code,
                type_coerce(Booking.start_at, stamp),
                type_coerce(Booking.end_at, stamp),
                type_coerce(Booking.status, String()),
                type_coerce(UsageRecord.service_type, String()),
                type_coerce(UsageRecord.checked_in_at, stamp),
                type_coerce(UsageRecord.checked_out_at, stamp),
                UsageRecord.samples_count,
                UsageRecord.problem_solved,
                Booking.fee,
                Booking.fee_waived,
                Booking.late_cancellation,
            )
            .join(_RESOURCE, _RESOURCE.c.id == Booking.resource_id)
            .join(Institute, Institute.id == Booking.institute_id)
            .join(Company, Company.id == Booking.company_id)
            .outerjoin(UsageRecord, UsageRecord.booking_id == Booking.id)
            .where(booking_window(group, scope))
            .order_by(Booking.start_at, Booking.id)
            .execution_options(stream_results=True, yield_per=5000)
        )
        result = connection.execute(stmt)
        for (
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
            late,
        ) in result:
            if start.tzinfo is None:  # SQLite: naive UTC
                start = start.replace(tzinfo=utc)
                end = end.replace(tzinfo=utc)
            fee = fee or zero
            waived = waived or zero
            yield [
                bid,
                icode,
                iname,
                prov,
                kinds.get(kind, kind),
                rname,
                fields.get(fld, fld),
                cname,
                ccode,
                start.astimezone(z).replace(tzinfo=None),
                end.astimezone(z).replace(tzinfo=None),
                late_text if late and status == cancelled else statuses.get(status, status),
                services.get(service, service),
                round(usage_minutes_of(cin, cout) / 60, 2) if cin is not None else None,
                samples,
                solved_text[None if solved is None else bool(solved)],
                fee,
                waived,
                fee - waived if status == completed else zero,
            ]


def count_bookings(period: Period, scope: Scope) -> int:
    return sum(
        int(db.session.scalar(select(func.count(Booking.id)).where(booking_window(g, scope))) or 0)
        for g in zone_groups(period, scope)
    )


def order_sheet_columns() -> list[Column]:
    from labshare.orders.export import order_columns

    return order_columns()


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
