"""The waitlist's offers: freed time offered to the next in line, and the hold an
open offer keeps on its slot.

When time of a resource is freed (``signals.time_freed``: a booking cancelled,
rejected, completed early or released as a no-show; an offer declined, left or
expired), the first waiting entries whose wanted slot now passes every rule and
conflict check of the engine (``check_slot``) are ``offered`` it. The offer HOLDS
the slot until ``offer_expires_at``: :class:`OpenOffers` (registered at app
start) refuses anyone else an overlapping slot, in ``check_slot`` and on the lean
path; availability shows it busy as ``offered``.

Contract of :func:`slot_freed`: it runs in the caller's transaction, under the
write lock of the booking's resource, right after the booking stopped holding
time, and offers the freed time to the waitlist. Nothing here commits.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask_babel import force_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from labshare.booking import windows
from labshare.booking.availability import capacity_of, holding_spans, saturated
from labshare.booking.checks import check_slot
from labshare.booking.hooks import Arm, Gathered, Param, Read, Slot, SlotPolicy, Stage
from labshare.booking.permissions import is_member_of_company
from labshare.booking.rules import Rules, Span, effective_rules, institute_zone, on_grid
from labshare.errors import NotAllowed, RuleViolation, SlotTaken
from labshare.extensions import db
from labshare.messaging import notify
from labshare.models import (
    Booking,
    Notification,
    Resource,
    User,
    WaitlistEntry,
    WaitlistStatus,
)
from labshare.ops import audit
from labshare.timeutil import utcnow

#: At most this many waiting entries are examined when time is freed.
SCAN_LIMIT = 200
OFFER_KIND = "waitlist_offer"


# -- the hold of an open offer -------------------------------------------------------------


def _open_offers(resource_id: int, start: dt.datetime, end: dt.datetime, now: dt.datetime) -> Any:
    return select(WaitlistEntry.start_at, WaitlistEntry.end_at, WaitlistEntry.company_id).where(
        WaitlistEntry.resource_id == resource_id,
        WaitlistEntry.status == WaitlistStatus.OFFERED,
        WaitlistEntry.offer_expires_at > now,
        WaitlistEntry.start_at < end,
        WaitlistEntry.end_at > start,
    )


def offer_spans(
    resource_id: int,
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime,
    *,
    exclude_company_id: int | None = None,
) -> list[Span]:
    """(start, end) of the open, unexpired offers overlapping [start, end); those
    made to ``exclude_company_id`` left out."""
    return [
        (s, e)
        for s, e, company_id in db.session.execute(_open_offers(resource_id, start, end, now))
        if exclude_company_id is None or company_id != exclude_company_id
    ]


def offered_message() -> Any:
    return _l("This time is offered to the waitlist at the moment.")


def check_offers(
    resource: Resource,
    booker: User | None,
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime,
    *,
    buffer_minutes: int,
    exclude_id: int | None = None,
) -> None:
    """Refuse [start, end) (SlotTaken, a 409) where an open offer holds the time.
    An offer to ``booker``'s own company does not block them (they take it through
    ``accept_offer``). On a lab an offer takes one unit of its capacity, like a
    booking. On a resource of capacity 1 the rules' buffer keeps its minutes free
    around an offer as around a booking, so that taking the offer cannot fail on a
    neighbour booked meanwhile (``buffer_minutes``, from the rules the caller holds).
    The caller holds the resource's lock and has run the booking check.
    ``exclude_id``: a request being approved, which holds its unit already."""
    capacity = capacity_of(resource)
    buffer = dt.timedelta(0)
    if capacity <= 1:
        buffer = dt.timedelta(minutes=max(buffer_minutes, 0))
    offers = offer_spans(
        resource.id,
        start - buffer,
        end + buffer,
        now,
        exclude_company_id=booker.company_id if booker is not None else None,
    )
    if not offers:
        return
    if capacity > 1:
        spans = [*holding_spans(resource.id, start, end, exclude_id=exclude_id), *offers]
        clipped = [(max(s, start), min(e, end)) for s, e in spans]
        if not saturated(clipped, capacity):
            return
    details: dict[str, Any] = {"reason": "offered"}
    if buffer and not any(s < end and e > start for s, e in offers):
        details["buffer_minutes"] = int(buffer.total_seconds() // 60)  # only its buffer
    raise SlotTaken(offered_message(), details=details)


def _offers_read(param: Param) -> Read:
    return (
        WaitlistEntry.start_at,
        WaitlistEntry.end_at,
        WaitlistEntry.company_id,
        [
            WaitlistEntry.resource_id == param("resource_id"),
            WaitlistEntry.status == WaitlistStatus.OFFERED,
            WaitlistEntry.offer_expires_at > param("now"),
            WaitlistEntry.start_at < param("before"),
            WaitlistEntry.end_at > param("after"),
        ],
    )


class OpenOffers(SlotPolicy):
    """An open offer holds its slot for the offeree: judged after the engine's
    conflict check, as another claim on the time."""

    name = "waitlist"
    stage = Stage.CLAIMS

    def check(self, slot: Slot) -> None:
        check_offers(
            slot.resource,
            slot.booker,
            slot.start,
            slot.end,
            slot.now,
            buffer_minutes=slot.rules.buffer_minutes,
            exclude_id=slot.exclude_id,
        )

    def reads(self, slot: Slot, loaded: Any) -> list[Arm]:
        """The open offers around the slot (within the buffer), with their company."""
        buffer = dt.timedelta(0)
        if capacity_of(slot.resource) <= 1:
            buffer = dt.timedelta(minutes=max(slot.rules.buffer_minutes, 0))
        values = {
            "resource_id": slot.resource.id,
            "now": slot.now,
            "before": slot.end + buffer,
            "after": slot.start - buffer,
        }
        return [Arm("offers", _offers_read, values)]

    def judge(self, slot: Slot, gathered: Gathered) -> None:
        """``check_offers`` on the rows read (``slot.busy``: the holding bookings)."""
        start, end = slot.start, slot.end
        capacity = capacity_of(slot.resource)
        offers = [(s, e) for s, e, c in gathered.rows[0] if int(c) != slot.company_id]
        if not offers:
            return
        if capacity > 1:
            both = [*slot.busy, *offers]
            if not saturated([(max(s, start), min(e, end)) for s, e in both], capacity):
                return
        details: dict[str, Any] = {"reason": "offered"}
        buffer_minutes = max(slot.rules.buffer_minutes, 0) if capacity <= 1 else 0
        if buffer_minutes and not any(s < end and e > start for s, e in offers):
            details["buffer_minutes"] = buffer_minutes
        raise SlotTaken(offered_message(), details=details)


# -- offering freed time -------------------------------------------------------------------


def time_freed(
    booking: Booking,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    **_announced: Any,
) -> None:
    """The receiver of ``signals.time_freed``: the booking's own time, or the span
    announced with it (a move frees its old time)."""
    if start is not None and end is not None:
        offer_freed(booking.resource, start, end, utcnow())
    else:
        slot_freed(booking)


def slot_freed(booking: Booking) -> list[WaitlistEntry]:
    """Offer the time ``booking`` no longer holds to the resource's waitlist.

    Call in the same transaction, under the lock of ``booking.resource_id``, right
    after the booking stopped holding time (cancelled, rejected, released as a
    no-show), once the change is flushed. Returns the entries offered. Never commits.
    """
    return offer_freed(booking.resource, booking.start_at, booking.end_at, utcnow())


def offer_freed(
    resource: Resource, start: dt.datetime, end: dt.datetime, now: dt.datetime
) -> list[WaitlistEntry]:
    """Offer [start, end) of ``resource`` (just freed) to the waiting entries that
    overlap it, first in line first: each whose wanted slot now passes the engine's
    checks for its user, and no open offer holds, is offered. An entry whose slot has
    already begun (time freed by a no-show release) is offered what is left of it,
    from the next instant on the slot grid. The caller holds the resource's lock."""
    db.session.flush()
    rules = effective_rules(resource)
    if not rules.waitlist_enabled:
        return []
    # An entry refused only for the buffer around the freed time wanted a slot next
    # to it, not on it: it is in line for this time too.
    buffer = dt.timedelta(0)
    if capacity_of(resource) <= 1:
        buffer = dt.timedelta(minutes=max(rules.buffer_minutes, 0))
    entries = list(
        db.session.scalars(
            select(WaitlistEntry)
            .where(
                WaitlistEntry.resource_id == resource.id,
                WaitlistEntry.status == WaitlistStatus.WAITING,
                WaitlistEntry.start_at < end + buffer,
                WaitlistEntry.end_at > start - buffer,
                WaitlistEntry.end_at > now,
            )
            .order_by(WaitlistEntry.created_at, WaitlistEntry.id)
            .limit(SCAN_LIMIT)
        )
    )
    offered: list[WaitlistEntry] = []
    for entry in entries:
        user = entry.user
        if not is_member_of_company(user, entry.company_id):
            continue  # the user left the company or was deactivated
        begin = entry.start_at
        if begin <= now:  # begun: what is left of it, from the grid
            begin = next_on_grid(now, rules.slot_minutes, institute_zone(resource))
            if begin >= entry.end_at:
                continue
        try:
            check_slot(resource, user, begin, entry.end_at, now)
            check_offers(
                resource, None, begin, entry.end_at, now, buffer_minutes=rules.buffer_minutes
            )
        except (SlotTaken, RuleViolation, NotAllowed):
            continue  # does not fit (yet): stays in line
        if not _offer(entry, rules, now, begin):
            continue
        offered.append(entry)
    return offered


def next_on_grid(after: dt.datetime, slot_minutes: int, tz: str) -> dt.datetime:
    """The first instant at or after ``after`` on the slot grid of zone ``tz``."""
    probe = after.replace(second=0, microsecond=0)
    if probe < after:
        probe += dt.timedelta(minutes=1)
    for _step in range(max(slot_minutes, 1) + 60):  # a DST jump may skip grid points
        if on_grid(probe, slot_minutes, tz):
            return probe
        probe += dt.timedelta(minutes=1)
    return probe


def latest_start(entry: WaitlistEntry, rules: Rules, *, begun: bool) -> dt.datetime:
    """The latest start a booking taking ``entry``'s offer can have: the slot's own
    start, or for the rest of a begun slot (taken from the next grid instant) the
    last start that still leaves the rules' minimum duration."""
    if not begun:
        return entry.start_at
    return entry.end_at - dt.timedelta(minutes=rules.min_minutes)


def take_deadline(entry: WaitlistEntry, rules: Rules, *, begun: bool) -> dt.datetime:
    """The last moment the rules (the lead time) let ``entry``'s offer be taken: the
    end of the "take offer" window of services/windows.py."""
    start = latest_start(entry, rules, begun=begun)
    _opens, closes = windows.bounds(windows.Move.TAKE_OFFER, start, entry.end_at, rules)
    assert closes is not None  # the table closes "take offer"
    return closes


def _offer(entry: WaitlistEntry, rules: Rules, now: dt.datetime, begin: dt.datetime) -> bool:
    """Offer ``begin``..end of ``entry``'s slot. The offer expires after the rules'
    offer minutes, but never after the last moment it could be taken (the lead
    time before the latest start it allows): False, nothing written, when that
    moment has passed already."""
    data: dict[str, Any] = {}
    begun = begin != entry.start_at
    if begun:
        # The slot had begun (a no-show release): the rest of it is offered, until at
        # most its end; taking it books from the next grid instant (``accept_offer``).
        wanted_start = entry.start_at
        entry.start_at = begin
    # Freed at the very instant the slot begins: taken like any begun slot
    # (``accept_offer`` judges ``start <= now`` the same way).
    deadline = take_deadline(entry, rules, begun=begun or begin <= now)
    if deadline <= now:
        if begun:
            entry.start_at = wanted_start
        return False
    if begun:
        data["wanted_start"] = wanted_start.isoformat()
    expires = min(now + dt.timedelta(minutes=rules.waitlist_offer_minutes), deadline)
    data["offer_expires_at"] = expires.isoformat()
    entry.status = WaitlistStatus.OFFERED
    entry.offered_at = now
    entry.offer_expires_at = expires
    entry.updated_at = now
    db.session.flush()
    audit.record(
        "waitlist.offer",
        entry,
        actor=None,
        from_state=WaitlistStatus.WAITING,
        to_state=WaitlistStatus.OFFERED,
        data=data,
    )
    offer_notice(entry)
    return True


def offer_notice(entry: WaitlistEntry) -> Notification | None:
    """Tell the entry's user that the slot is theirs to take (mail and in-app)."""
    user = entry.user
    locale = notify._locale_of(user)
    resource = entry.resource
    institute = resource.institute
    tz = institute.timezone or "Asia/Shanghai"
    assert entry.offer_expires_at is not None
    with force_locale(locale):
        name = notify.resource_name(resource, locale)
        subject = _("A slot you are waiting for is free: %(name)s", name=name)
        text, html = notify._render(
            "waitlist_offer",
            user,
            entry=entry,
            resource_name=name,
            institute_name=institute.name_en
            if locale.startswith("en") and institute.name_en
            else institute.name,
            when=notify.format_span(entry.start_at, entry.end_at, tz, locale),
            expires=notify.format_local(entry.offer_expires_at, tz, locale),
        )
    return notify.enqueue(
        user,
        OFFER_KIND,
        subject=subject,
        body_text=text,
        body_html=html,
        dedupe_key=f"waitlist:{entry.id}:offer:{user.id}",
    )
