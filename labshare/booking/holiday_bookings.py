"""A public holiday added to the calendar over bookings made before it was known: it
closes the labs that follow the calendar as a closure does, so the bookings on it are
cancelled or put back to pending (``on_bookings``; ``ask_move`` unless the admin says
``cancel``: a holiday never leaves a booking approved) and each booker is told once
with alternatives (``booking/displaced``), and the institutes' staff get their notice
(``holiday_notice``). A province's day touches only that province's institutes.

Locks, in the one order (resources, then bookings): ``lock_candidates`` locks the
resources of the bookings near the new days *before* the calendar's token is written
(a booking being written holds its resource and then share-locks the token). The
token's write waits for the bookings checked against the old calendar; those that
committed meanwhile may hold a resource not locked yet, which ``settle_days`` then
asks for without waiting (NOWAIT: a resource held by a booking that waits for the
token would otherwise be a deadlock); a refusal is a lost race, retried whole.
Statements stay bounded: the bookings on the days are found in one joined statement
(the calendar itself is read once), their rows locked and loaded in one each.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from flask_babel import gettext as _
from sqlalchemy import ColumnElement, and_, func, or_, select, true

from labshare.booking import displaced, holiday_notice, workdays
from labshare.booking.displaced import OnBookings
from labshare.booking.locking import lock_resources
from labshare.booking.rules import Span, institute_zone
from labshare.database import is_sqlite
from labshare.extensions import db
from labshare.models import HOLDING_STATUSES, Booking, Institute, Instrument, Lab, Resource, User
from labshare.timeutil import utcnow

DEFAULT_ZONE = "Asia/Shanghai"


@dataclass(frozen=True)
class Inside:
    booking_id: int
    resource_id: int
    day: workdays.Day
    span: Span


def _near(days: Sequence[dt.date], region: str) -> ColumnElement[bool]:
    """Holding bookings not yet over within a day of ``days`` (any zone), of the
    institutes of ``region`` (a province code; '' is national: all of them)."""
    now = utcnow()
    ranges = [
        and_(
            Booking.start_at < dt.datetime.combine(day, dt.time(0), dt.UTC) + dt.timedelta(days=2),
            Booking.end_at > dt.datetime.combine(day, dt.time(0), dt.UTC) - dt.timedelta(days=1),
        )
        for day in sorted(set(days))
    ]
    return and_(
        Booking.status.in_(HOLDING_STATUSES),
        Booking.end_at > now,
        or_(*ranges),
        Institute.province_code == region if region else true(),
    )


def lock_candidates(days: Sequence[dt.date], region: str) -> set[int]:
    """Before the calendar changes: lock the resources of the bookings near ``days``
    (id order, one statement on PostgreSQL). The ids locked."""
    if not days:
        return set()
    ids = set(
        db.session.scalars(
            select(Booking.resource_id)
            .join(Institute, Institute.id == Booking.institute_id)
            .where(_near(days, region))
            .distinct()
        )
    )
    lock_resources(sorted(ids))
    return ids


def bookings_inside(days: Sequence[dt.date], region: str = workdays.NATIONAL) -> list[Inside]:
    """The pending and approved bookings, not yet over, that touch one of the holidays
    ``days`` for a lab that follows the calendar, as it stands in this transaction
    (a province's days as that province sees them): one statement for the bookings with
    their institute and lab, the calendar read once."""
    if not days:
        return []
    lab = Lab.__table__
    instrument = Instrument.__table__
    lab_id = func.coalesce(instrument.c.lab_id, Booking.resource_id)
    rows = db.session.execute(
        select(
            Booking.id,
            Booking.resource_id,
            Booking.start_at,
            Booking.end_at,
            Institute.timezone,
            Institute.province_code,
            Institute.follows_holidays,
            lab.c.follows_holidays,
        )
        .join(Institute, Institute.id == Booking.institute_id)
        .outerjoin(instrument, instrument.c.id == Booking.resource_id)
        .outerjoin(lab, lab.c.id == lab_id)
        .where(_near(days, region))
        .order_by(Booking.start_at, Booking.id)
    ).all()
    if not rows:
        return []
    token = workdays.read_token()
    wanted = set(days)
    views: dict[tuple[bool, bool | None, str | None], workdays.Days | None] = {}
    found: list[Inside] = []
    for booking_id, resource_id, start, end, tz, province, follows, lab_follows in rows:
        key = (bool(follows), lab_follows, province)
        if key not in views:
            views[key] = workdays.days_for(
                token, institute_follows=key[0], lab_follows=key[1], region=province
            )
        touched = workdays.holidays_between(views[key], tz or DEFAULT_ZONE, start, end)
        hit = [(day, span) for day, span in touched if day.day in wanted]
        if hit:
            found.append(Inside(booking_id, resource_id, hit[0][0], hit[0][1]))
    return found


def _closed_on(resource: Resource, start: dt.datetime, end: dt.datetime) -> list[Span]:
    """The holidays (new and known) on ``resource``: alternatives avoid them even if
    its calendar does not show them yet."""
    days = workdays.days_of_resource(resource)
    return [
        span for _day, span in workdays.holidays_between(days, institute_zone(resource), start, end)
    ]


def _notice(token: str, names: dict[int, workdays.Day]) -> displaced.Notice:
    """The holiday each booking falls on (its names in both languages: the message is
    worded when read or sent, ``displaced_notice``)."""

    def about(booking: Booking) -> dict[str, object]:
        day = names[booking.id]
        return {"day": {"day": day.day.isoformat(), "name": day.name, "name_en": day.name_en}}

    return displaced.Notice(
        source={"type": "holiday", "token": token},
        dedupe=lambda user_id: f"holiday:{token}:{user_id}",
        about=about,
    )


def settle_days(
    actor: User | None,
    days: Sequence[dt.date],
    region: str,
    *,
    locked: set[int],
    token: str,
    action: OnBookings,
    text: str | None,
) -> list[int]:
    """After the calendar changed (new ``token``): deal with the bookings the new
    holidays ``days`` cover and tell the people concerned, once. The ids covered."""
    inside = bookings_inside(days, region)
    if not inside:
        return []
    late = {i.resource_id for i in inside} - locked
    if late and not is_sqlite():
        lock_resources(sorted(late), nowait=True)
    ids = sorted({i.booking_id for i in inside})
    if not is_sqlite():
        db.session.execute(
            select(Booking.id).where(Booking.id.in_(ids)).order_by(Booking.id).with_for_update()
        )
    loaded = {b.id: b for b in db.session.scalars(select(Booking).where(Booking.id.in_(ids)))}
    items = [displaced.Displaced(loaded[i.booking_id], i.span) for i in inside]
    fresh = {b.id for b in holiday_notice.untold(list(loaded.values()))}
    changed = displaced.settle(
        actor,
        items,
        action,
        text=text,
        cancel_reason=_("Closed: public holiday"),
        hold_action="booking.holiday_hold",
        hold_data={"days": sorted({i.day.day.isoformat() for i in inside})},
    )
    cancelled = action is OnBookings.CANCEL
    holiday_notice.tell_staff(ids, cancelled=cancelled)
    moved = {b.id for b in changed}
    told = [i for i in items if i.booking.id in fresh or i.booking.id in moved]
    names = {i.booking_id: i.day for i in inside}
    displaced.tell(told, _notice(token, names), cancelled=cancelled, text=text)
    return ids
