"""Telling an institute's staff about bookings that a newly added holiday covers.

The bookings were made before the holiday was known; the engine refuses new ones on
it, and adding it cancels these or puts them back to pending (``holiday_bookings``).
Each institute's active staff get one message (in-app and mail through the outbox)
naming the bookings, each linked to its page. Each booking is told once (an audit row
per booking and move, ``booking.holiday_notice``), so loading the same year again, or
adding the day again, tells nobody twice. Two admins changing the calendar at once are serialised by
its token row (``holiday_admin._touch`` writes it before this runs), so the second sees
the first's audit rows.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Sequence

from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import select

from labshare.booking.rules import institute_zone
from labshare.extensions import db
from labshare.messaging import notify
from labshare.models import AuditLog, Booking, Role, User
from labshare.ops import audit

KIND = "holiday_bookings"
ACTION = "booking.holiday_notice"


def _told(ids: Sequence[int]) -> set[tuple[int, int]]:
    return {
        (object_id, (data or {}).get("moves", 0))
        for object_id, data in db.session.execute(
            select(AuditLog.object_id, AuditLog.data).where(
                AuditLog.action == ACTION,
                AuditLog.object_type == "booking",
                AuditLog.object_id.in_(ids),
            )
        ).tuples()
    }


def untold(bookings: Sequence[Booking]) -> list[Booking]:
    """Those of ``bookings`` (at their current move) whose staff were not told yet."""
    if not bookings:
        return []
    told = _told(sorted({b.id for b in bookings}))
    return [b for b in bookings if (b.id, b.moves or 0) not in told]


def tell_staff(booking_ids: Sequence[int], *, cancelled: bool = False) -> int:
    """Queue the messages for ``booking_ids`` not told yet; the number queued.
    ``cancelled``: the holiday cancelled them (else they wait for approval again)."""
    if not booking_ids:
        return 0
    ids = sorted(set(booking_ids))
    rows = list(db.session.scalars(select(Booking).where(Booking.id.in_(ids)).order_by(Booking.id)))
    fresh: dict[int, list[Booking]] = defaultdict(list)
    told = untold(rows)
    # the booking's history shows that its staff were told (data: not a state); one
    # INSERT for them all
    audit.record_many(ACTION, told, actor=None, data_of=lambda b: {"moves": b.moves or 0})
    for booking in told:
        fresh[booking.institute_id].append(booking)
    queued = 0
    for institute_id, items in fresh.items():
        digest = hashlib.sha256(
            ",".join(f"{b.id}m{b.moves or 0}" for b in items).encode()
        ).hexdigest()[:24]
        staff = db.session.scalars(
            select(User)
            .where(
                User.institute_id == institute_id,
                User.role == Role.STAFF,
                User.active.is_(True),
            )
            .order_by(User.id)
        )
        for member in staff:
            locale = notify.locale_of(member)
            with force_locale(locale):
                context = [
                    {
                        "booking": b,
                        "resource_name": notify.resource_name(b.resource, locale),
                        "when": notify.format_span(
                            b.start_at, b.end_at, institute_zone(b.resource), locale
                        ),
                    }
                    for b in items
                ]
                subject = _(
                    "%(count)s bookings fall on a newly added public holiday",
                    count=len(items),
                )
                text, html = notify.render_for(KIND, member, items=context, cancelled=cancelled)
            if (
                notify.enqueue(
                    member,
                    KIND,
                    subject=subject,
                    body_text=text,
                    body_html=html,
                    booking=items[0],
                    dedupe_key=f"holiday:{member.id}:{digest}",
                )
                is not None
            ):
                queued += 1
    return queued
