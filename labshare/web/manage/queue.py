"""What the staff dashboard shows about bookings: the approval queue with what
conflicts with each request, the company's history, today's and coming bookings.
Read-only; ``approve_booking`` re-checks everything when staff decide."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from labshare.booking.availability import capacity_of, closure_spans
from labshare.booking.policies.no_shows import no_show_counts
from labshare.booking.rules import calibration_cutoff, institute_zone, local_instant
from labshare.extensions import db
from labshare.models import (
    HOLDING_STATUSES,
    Booking,
    BookingStatus,
    Institute,
    ResourceStatus,
)
from labshare.timeutil import to_local, utcnow

QUEUE_LIMIT = 100
LIST_LIMIT = 100


@dataclass
class QueueItem:
    booking: Booking
    conflicts: list[str] = field(default_factory=list)
    overlapping: list[Booking] = field(default_factory=list)
    history: dict[BookingStatus, int] = field(default_factory=dict)
    #: The company's no-shows + late cancellations here, last 365 days.
    no_shows: int = 0


@dataclass
class Dashboard:
    queue: list[QueueItem]
    today: list[Booking]
    upcoming: list[Booking]
    to_record: list[Booking]
    timezone: str


def _conflicts(booking: Booking, others: list[Booking]) -> list[str]:
    resource = booking.resource
    tz = institute_zone(resource)
    problems: list[str] = []
    if resource.status != ResourceStatus.AVAILABLE:
        problems.append(str(_l("The resource is not available (maintenance or retired).")))
    if closure_spans(resource, booking.start_at, booking.end_at):
        problems.append(str(_l("A closure falls in this time.")))
    cutoff = calibration_cutoff(resource, tz)
    if cutoff is not None and booking.end_at > cutoff:
        problems.append(str(_l("The calibration expires before the booking ends.")))
    if others:
        if capacity_of(resource) <= 1:
            problems.append(
                str(_l("Overlaps %(n)d other request(s) or booking(s).", n=len(others)))
            )
        elif len(others) >= capacity_of(resource):
            problems.append(str(_l("The lab may be over capacity at this time.")))
    return problems


def build_dashboard(institute: Institute) -> Dashboard:
    now = utcnow()
    tz = institute.timezone or "Asia/Shanghai"
    today = to_local(now, tz).date()
    day_start = local_instant(today, dt.time(0), tz)
    tomorrow = local_instant(today + dt.timedelta(days=1), dt.time(0), tz)
    week_end = local_instant(today + dt.timedelta(days=8), dt.time(0), tz)
    mine = Booking.institute_id == institute.id

    pending = list(
        db.session.scalars(
            select(Booking)
            .where(mine, Booking.status == BookingStatus.PENDING, Booking.end_at > now)
            .order_by(Booking.start_at)
            .limit(QUEUE_LIMIT)
        )
    )
    overlapping: dict[int, list[Booking]] = defaultdict(list)
    if pending:
        low = min(b.start_at for b in pending)
        high = max(b.end_at for b in pending)
        candidates = db.session.scalars(
            select(Booking).where(
                Booking.resource_id.in_({b.resource_id for b in pending}),
                Booking.status.in_(HOLDING_STATUSES),
                Booking.start_at < high,
                Booking.end_at > low,
            )
        ).all()
        for b in pending:
            overlapping[b.id] = [
                o
                for o in candidates
                if o.id != b.id
                and o.resource_id == b.resource_id
                and o.start_at < b.end_at
                and b.start_at < o.end_at
            ]
    history: dict[int, dict[BookingStatus, int]] = defaultdict(dict)
    company_ids = {b.company_id for b in pending}
    if company_ids:
        rows = db.session.execute(
            select(Booking.company_id, Booking.status, func.count(Booking.id))
            .where(mine, Booking.company_id.in_(company_ids))
            .group_by(Booking.company_id, Booking.status)
        )
        for company_id, status, count in rows:
            history[company_id][BookingStatus(status)] = int(count)
    no_show_record = no_show_counts(company_ids, institute.id, now)  # booking policies
    queue = [
        QueueItem(
            booking=b,
            conflicts=_conflicts(b, overlapping[b.id]),
            overlapping=overlapping[b.id],
            history=history[b.company_id],
            no_shows=no_show_record.get(b.company_id, 0),
        )
        for b in pending
    ]

    def approved_between(start: dt.datetime, end: dt.datetime) -> list[Booking]:
        return list(
            db.session.scalars(
                select(Booking)
                .where(
                    mine,
                    Booking.status == BookingStatus.APPROVED,
                    Booking.start_at < end,
                    Booking.end_at > start,
                )
                .order_by(Booking.start_at)
                .limit(LIST_LIMIT)
            )
        )

    today_list = approved_between(day_start, tomorrow)
    upcoming = [b for b in approved_between(tomorrow, week_end) if b.start_at >= tomorrow]
    to_record = list(
        db.session.scalars(
            select(Booking)
            .where(mine, Booking.status == BookingStatus.APPROVED, Booking.end_at <= day_start)
            .order_by(Booking.start_at.desc())
            .limit(LIST_LIMIT)
        )
    )
    return Dashboard(
        queue=queue, today=today_list, upcoming=upcoming, to_record=to_record, timezone=tz
    )
