"""A company's no-show record: its no-shows plus its late cancellations
at one institute over the last year. Staff see it when they approve; the rules'
``no_show_approval_threshold`` makes a company at or above it wait for approval.

The record is per institute: staff see only their institute's bookings (tenancy),
and a facility judges a company by how it treated that facility.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, or_, select

from labshare.booking.hooks import NO_TIME, Arm, Gathered, Param, Read, Slot, SlotPolicy, Stage
from labshare.booking.rules import effective_rules
from labshare.extensions import db
from labshare.models import HOLDING_STATUSES, Booking, BookingStatus
from labshare.timeutil import utcnow

RECORD_DAYS = 365


def no_show_counts(
    company_ids: Iterable[int], institute_id: int, now: dt.datetime | None = None
) -> dict[int, int]:
    """{company_id: no-shows + late cancellations} of bookings at ``institute_id``
    starting in the last ``RECORD_DAYS`` days (or later: a late cancellation may
    be of a booking still to come). One query; companies without any are 0."""
    ids = sorted(set(company_ids))
    if not ids:
        return {}
    since = (now or utcnow()) - dt.timedelta(days=RECORD_DAYS)
    rows = db.session.execute(
        select(Booking.company_id, func.count(Booking.id))
        .where(
            Booking.company_id.in_(ids),
            Booking.institute_id == institute_id,
            Booking.start_at >= since,
            or_(Booking.status == BookingStatus.NO_SHOW, Booking.late_cancellation.is_(True)),
        )
        .group_by(Booking.company_id)
    )
    out = dict.fromkeys(ids, 0)
    out.update({int(c): int(n) for c, n in rows})
    return out


def cancellation_is_late(booking: Booking, now: dt.datetime | None = None) -> bool:
    """Whether the company cancelling ``booking`` now would be a late cancellation
    (the rules' ``late_cancel_hours``, 0: never; the same test as
    ``bookings.cancel_booking``). Staff cancellations never are."""
    if booking.status not in HOLDING_STATUSES:
        return False
    hours = effective_rules(booking.resource).late_cancel_hours
    return hours > 0 and (now or utcnow()) > booking.start_at - dt.timedelta(hours=hours)


def no_show_count(company_id: int, institute_id: int, now: dt.datetime | None = None) -> int:
    return no_show_counts([company_id], institute_id, now)[company_id]


def _record_read(param: Param) -> Read:
    return (
        NO_TIME,
        NO_TIME,
        func.count(Booking.id),
        [
            Booking.company_id == param("company_id"),
            Booking.institute_id == param("institute_id"),
            Booking.start_at >= param("since"),
            or_(
                Booking.status == BookingStatus.NO_SHOW,
                Booking.late_cancellation.is_(True),
            ),
        ],
    )


class NoShowRecord(SlotPolicy):
    """The rules' ``no_show_approval_threshold``: a company whose record is at or
    above it waits for approval where the rules would approve."""

    name = "no_shows"
    stage = Stage.LIMITS

    def hold(self, slot: Slot) -> str | None:
        threshold = slot.rules.no_show_approval_threshold
        if threshold is None:
            return None
        count = no_show_count(slot.company_id, slot.resource.institute_id, slot.now)
        return _held(count, threshold)

    def reads(self, slot: Slot, loaded: Any) -> list[Arm]:
        rules = slot.rules
        if rules.requires_approval or rules.no_show_approval_threshold is None:
            return []  # nothing to hold: not worth reading
        values = {
            "company_id": slot.company_id,
            "institute_id": slot.resource.institute_id,
            "since": slot.now - dt.timedelta(days=RECORD_DAYS),
        }
        return [Arm("record", _record_read, values)]

    def held(self, slot: Slot, gathered: Gathered) -> str | None:
        threshold = slot.rules.no_show_approval_threshold
        if threshold is None or not gathered.rows:
            return None
        return _held(sum(int(n or 0) for _s, _e, n in gathered.rows[0]), threshold)


def _held(count: int, threshold: int) -> str | None:
    if count < threshold:
        return None
    return f"no-show record {count} >= threshold {threshold}: needs approval"
