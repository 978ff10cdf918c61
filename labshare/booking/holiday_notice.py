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

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import insert, select

from labshare.booking.permissions import can_view_booking
from labshare.booking.rules import institute_zone
from labshare.extensions import db
from labshare.messaging import notify
from labshare.models import AuditLog, Booking, Notification, Role, User
from labshare.models import notification as notification_model
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
    if not fresh:
        return 0
    digests = {
        institute_id: hashlib.sha256(
            ",".join(f"{b.id}m{b.moves or 0}" for b in items).encode()
        ).hexdigest()[:24]
        for institute_id, items in fresh.items()
    }
    staff = db.session.execute(
        select(User.id, User.institute_id, User.locale)
        .where(
            User.institute_id.in_(sorted(fresh)),
            User.role == Role.STAFF,
            User.active.is_(True),
        )
        .order_by(User.id)
    ).all()
    keys = {member_id: f"holiday:{member_id}:{digests[inst]}" for member_id, inst, _locale in staff}
    taken = set(
        db.session.scalars(
            select(Notification.dedupe_key).where(Notification.dedupe_key.in_(keys.values()))
        )
    )
    languages = current_app.config.get("LANGUAGES", ["zh_CN", "en"])
    queued = [
        {
            "user_id": member_id,
            "kind": KIND,
            "booking_id": fresh[institute_id][0].id,
            "locale": locale if locale in languages else languages[0],
            "dedupe_key": keys[member_id],
            "data": {"bookings": [b.id for b in fresh[institute_id]], "cancelled": cancelled},
        }
        for member_id, institute_id, locale in staff
        if keys[member_id] not in taken
    ]
    if queued:  # one event row per member, rendered when read or sent (``render``)
        db.session.execute(insert(Notification), queued)
    return len(queued)


def render(note: Notification) -> tuple[str, str, str | None]:
    """Subject, text and HTML of a staff notice, in the locale stored with it."""
    data = note.data or {}
    member = db.session.get(User, note.user_id)
    if member is None or not data.get("bookings"):
        raise LookupError(f"notification {note.id}: {note.kind} cannot be rendered")
    # worded when read: a member moved to another institute meanwhile sees none of
    # the old one's bookings
    items = [
        b
        for b in db.session.scalars(
            select(Booking).where(Booking.id.in_(data["bookings"])).order_by(Booking.id)
        )
        if can_view_booking(member, b)
    ]
    languages = current_app.config.get("LANGUAGES", ["zh_CN", "en"])
    locale = note.locale if note.locale and note.locale in languages else notify.locale_of(member)
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
        subject = _("%(count)s bookings fall on a newly added public holiday", count=len(items))
        text, html = notify.render_for(
            KIND, member, items=context, cancelled=bool(data.get("cancelled"))
        )
    return subject[:300], text, html


def register() -> None:
    """The outbox and the inbox render these rows here."""
    notification_model.kind_renderers[KIND] = render
