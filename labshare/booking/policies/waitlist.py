"""The waitlist: SMEs queue for a taken slot; freed time is offered to them in turn.

An entry is ``waiting`` in line (position: order of joining per resource). When
time of the resource is freed (a booking cancelled, rejected or released as a
no-show, see :func:`slot_freed`; an offer declined, left or expired), the first
waiting entries whose wanted slot now passes every rule and conflict check of the
engine (``bookings.check_slot``) are ``offered`` it: the offer HOLDS the slot
until ``offer_expires_at`` (``check_offers`` refuses anyone else an overlapping
slot, availability shows it busy as ``offered``). Taking the offer books through
``bookings.book_locked`` under the resource's lock, so two takers never both win.

Every change to an entry happens under the write lock of its resource (the same
lock the booking engine takes), and the scheduler's expiry is a conditional
UPDATE, so two schedulers never expire (and re-offer) an offer twice. Each
transition is audited; offers are announced through the outbox (mail and the
in-app notification). Nothing here commits.

Offering freed time and the hold of an open offer are in
:mod:`labshare.booking.policies.waitlist_offers` (their names are importable
from here too); this module holds the line: joining it, its order, the offeree's
answers and the scheduler's expiry.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select, update
from sqlalchemy.orm import selectinload

from labshare.booking import bookings, windows
from labshare.booking.permissions import is_member_of_company, is_staff_of
from labshare.booking.policies.groups import bundle_of
from labshare.booking.policies.waitlist_offers import (
    OFFER_KIND,
    SCAN_LIMIT,
    OpenOffers,
    check_offers,
    latest_start,
    next_on_grid,
    offer_freed,
    offer_notice,
    offer_spans,
    offered_message,
    slot_freed,
    take_deadline,
    time_freed,
)
from labshare.booking.rules import effective_rules, institute_zone
from labshare.errors import (
    InvalidTransition,
    NotAllowed,
    NotFound,
    RuleViolation,
    SlotTaken,
)
from labshare.extensions import db
from labshare.models import (
    OPEN_WAITLIST_STATUSES,
    Booking,
    Resource,
    Role,
    User,
    WaitlistEntry,
    WaitlistStatus,
)
from labshare.ops import audit
from labshare.timeutil import utcnow

__all__ = [  # the offers' names, importable from here as before
    "OFFER_KIND",
    "SCAN_LIMIT",
    "OpenOffers",
    "check_offers",
    "latest_start",
    "next_on_grid",
    "offer_freed",
    "offer_notice",
    "offer_spans",
    "offered_message",
    "slot_freed",
    "take_deadline",
    "time_freed",
]

#: At most this many open (waiting or offered) entries per company, all resources.
MAX_OPEN_PER_COMPANY = 20


def conflict_hint(exc: SlotTaken, resource: Resource) -> SlotTaken:
    """Mark a booking conflict as one the booker may queue for (an additive
    ``waitlist_available`` member of the error), where the resource's rules allow
    a waitlist. Returns ``exc``."""
    try:
        enabled = effective_rules(resource).waitlist_enabled
    except Exception:  # noqa: BLE001 - a hint must never turn a 409 into a 500
        return exc
    exc.details.setdefault("waitlist_available", bool(enabled))
    return exc


# -- joining -------------------------------------------------------------------------------


def join(
    resource: Resource,
    user: User,
    start: dt.datetime,
    end: dt.datetime,
    *,
    purpose: str,
) -> WaitlistEntry:
    """Queue ``user``'s company for [start, end) of ``resource``. Only for a slot the
    rules allow but that is taken now (a free slot is refused: book it); no second
    open entry of the company for the same slot; at most MAX_OPEN_PER_COMPANY open
    entries per company. Raises like the booking engine; writes nothing then."""
    request = bookings.validate_request(user, start, end, purpose=purpose)
    company_id = user.company_id
    assert company_id is not None  # validate_request checked the booker
    if bundle_of(resource):
        # An offer is taken through book_locked for this one resource; its "booked
        # together" bundle would be left out, so such instruments have no waitlist.
        raise RuleViolation(
            _l(
                "This instrument is booked together with others and has no waitlist; "
                "choose another time."
            ),
            rule="waitlist_disabled",
            field="resource_id",
        )
    bookings.lock_resources([resource.id])
    db.session.refresh(resource)
    now = utcnow()
    rules = effective_rules(resource)
    if not rules.waitlist_enabled:
        raise RuleViolation(
            _l("This resource has no waitlist."), rule="waitlist_disabled", field="resource_id"
        )
    try:
        bookings.check_slot(resource, user, request.start, request.end, now)
    except SlotTaken:
        pass  # taken: that is what a waitlist is for
    else:
        raise RuleViolation(
            _l("This time is free: book it instead of joining the waitlist."),
            rule="slot_free",
            field="start",
        )
    duplicate = db.session.scalar(
        select(WaitlistEntry.id).where(
            WaitlistEntry.resource_id == resource.id,
            WaitlistEntry.company_id == company_id,
            WaitlistEntry.start_at == request.start,
            WaitlistEntry.end_at == request.end,
            WaitlistEntry.status.in_(OPEN_WAITLIST_STATUSES),
        )
    )
    if duplicate is not None:
        raise RuleViolation(
            _l("Your company is already on the waitlist for this time."),
            rule="waitlist_duplicate",
            field="start",
        )
    open_count = db.session.scalar(
        select(func.count(WaitlistEntry.id)).where(
            WaitlistEntry.company_id == company_id,
            WaitlistEntry.status.in_(OPEN_WAITLIST_STATUSES),
        )
    )
    if (open_count or 0) >= MAX_OPEN_PER_COMPANY:
        raise RuleViolation(
            _l(
                "Your company already has %(n)d open waitlist entries, the most allowed.",
                n=MAX_OPEN_PER_COMPANY,
            ),
            rule="waitlist_limit",
            field="resource_id",
        )
    entry = WaitlistEntry(
        resource_id=resource.id,
        company_id=company_id,
        user_id=user.id,
        start_at=request.start,
        end_at=request.end,
        purpose=request.purpose,
        status=WaitlistStatus.WAITING,
        created_at=now,
        updated_at=now,
    )
    db.session.add(entry)
    db.session.flush()
    audit.record("waitlist.join", entry, actor=user, to_state=WaitlistStatus.WAITING)
    return entry


def position(entry: WaitlistEntry) -> int | None:
    """1-based place of a waiting entry in its resource's line (all waiting entries
    joined before it, whatever their slot); None when it is not waiting."""
    if entry.status != WaitlistStatus.WAITING:
        return None
    return _waiting_ahead_of(entry) + 1


def _waiting_ahead_of(entry: WaitlistEntry) -> int:
    """How many waiting entries of ``entry``'s resource joined before it (line order:
    ``created_at``, then ``id``)."""
    ahead = db.session.scalar(
        select(func.count(WaitlistEntry.id)).where(
            WaitlistEntry.resource_id == entry.resource_id,
            WaitlistEntry.status == WaitlistStatus.WAITING,
            (WaitlistEntry.created_at < entry.created_at)
            | ((WaitlistEntry.created_at == entry.created_at) & (WaitlistEntry.id < entry.id)),
        )
    )
    return int(ahead or 0)


# -- the line as staff see it -------------------------------------------------------------


@dataclass(frozen=True)
class LinePlace:
    """An open entry of a resource's line; ``position`` as :func:`position` gives it
    (None for an offered entry, which holds its slot rather than waits)."""

    entry: WaitlistEntry
    position: int | None


@dataclass(frozen=True)
class LinePage:
    places: list[LinePlace]
    total: int  # open entries of the resource, all pages


def may_see_line(user: User, resource: Resource) -> bool:
    """Staff of the resource's institute and admins see who waits for it."""
    return is_staff_of(user, resource.institute_id) or (user.active and user.role == Role.ADMIN)


def resource_line(resource: Resource, viewer: User, *, page: int, per_page: int) -> LinePage:
    """One page of ``resource``'s open (waiting and offered) entries in line order
    (order of joining: ``created_at``, then ``id``), each waiting one with its place
    in line. Staff of another institute get NotFound (its line does not exist for
    them), other roles NotAllowed."""
    if not may_see_line(viewer, resource):
        if viewer.role == Role.STAFF:
            raise NotFound(_l("No such resource."))
        raise NotAllowed(_l("Only staff of the institute can see who is waiting."))
    where = (
        WaitlistEntry.resource_id == resource.id,
        WaitlistEntry.status.in_(OPEN_WAITLIST_STATUSES),
    )
    total = int(db.session.scalar(select(func.count(WaitlistEntry.id)).where(*where)) or 0)
    entries = list(
        db.session.scalars(
            select(WaitlistEntry)
            .where(*where)
            .options(selectinload(WaitlistEntry.company), selectinload(WaitlistEntry.user))
            .order_by(WaitlistEntry.created_at, WaitlistEntry.id)
            .offset((max(page, 1) - 1) * per_page)
            .limit(per_page)
        ).unique()
    )
    if not entries:
        return LinePage(places=[], total=total)
    # Waiting entries on earlier pages: the first waiting entry here comes after them.
    waiting = _waiting_ahead_of(entries[0])
    places: list[LinePlace] = []
    for entry in entries:
        place: int | None = None
        if entry.status == WaitlistStatus.WAITING:
            waiting += 1
            place = waiting
        places.append(LinePlace(entry=entry, position=place))
    return LinePage(places=places, total=total)


# -- the offeree's answers -----------------------------------------------------------------


def _own_entry(entry: WaitlistEntry, user: User) -> None:
    """Only the entry's company sees it: anyone else gets NotFound (404)."""
    if not is_member_of_company(user, entry.company_id):
        raise NotFound(_l("No such waitlist entry."))


def _lock_entry(entry: WaitlistEntry) -> None:
    bookings.lock_resources([entry.resource_id])
    db.session.refresh(entry)


def accept_offer(entry: WaitlistEntry, user: User) -> Booking:
    """Take an open offer: book the entry's slot through the engine's atomic path
    (``book_locked``, every rule re-checked; the entry's own offer does not block
    it) and mark the entry booked. Only a member of the entry's company may."""
    _own_entry(entry, user)
    _lock_entry(entry)
    now = utcnow()
    status = WaitlistStatus(entry.status)
    if status != WaitlistStatus.OFFERED:
        raise InvalidTransition(
            _l("There is no open offer for this entry; it is %(s)s.", s=str(status))
        )
    if entry.offer_expires_at is None or entry.offer_expires_at <= now:
        raise InvalidTransition(_l("This offer has expired."))
    resource = entry.resource
    rules = effective_rules(resource)
    tz = institute_zone(resource)
    start = entry.start_at
    begun = start <= now
    windows.check(
        windows.Move.TAKE_OFFER,
        latest_start(entry, rules, begun=begun),
        entry.end_at,
        rules,
        now,
        tz,
    )
    if begun:  # an offer of what was left of a begun slot: from the grid on
        start = next_on_grid(now, rules.slot_minutes, tz)
        if start >= entry.end_at:
            raise InvalidTransition(_l("This offer has expired."))
    request = bookings.validate_request(user, start, entry.end_at, purpose=entry.purpose)
    booking = bookings.book_locked(entry.resource, user, request, now=now)
    entry.status = WaitlistStatus.BOOKED
    entry.booking_id = booking.id
    entry.updated_at = now
    db.session.flush()
    audit.record(
        "waitlist.accept",
        entry,
        actor=user,
        from_state=WaitlistStatus.OFFERED,
        to_state=WaitlistStatus.BOOKED,
        data={"booking_id": booking.id},
    )
    return booking


def decline_offer(entry: WaitlistEntry, user: User) -> WaitlistEntry:
    """Turn an open offer down; the slot passes to the next in line at once."""
    _own_entry(entry, user)
    _lock_entry(entry)
    if entry.status != WaitlistStatus.OFFERED:
        raise InvalidTransition(
            _l("There is no open offer for this entry; it is %(s)s.", s=str(entry.status))
        )
    _close(entry, user, WaitlistStatus.DECLINED, "waitlist.decline")
    return entry


def leave(entry: WaitlistEntry, user: User) -> WaitlistEntry:
    """Leave the line (waiting or offered); an open offer passes on at once."""
    _own_entry(entry, user)
    _lock_entry(entry)
    if entry.status not in OPEN_WAITLIST_STATUSES:
        raise InvalidTransition(
            _l("This entry is no longer on the waitlist; it is %(s)s.", s=str(entry.status))
        )
    _close(entry, user, WaitlistStatus.LEFT, "waitlist.leave")
    return entry


def _close(entry: WaitlistEntry, actor: User | None, to: WaitlistStatus, action: str) -> None:
    was = WaitlistStatus(entry.status)
    now = utcnow()
    entry.status = to
    entry.updated_at = now
    db.session.flush()
    audit.record(action, entry, actor=actor, from_state=was, to_state=to)
    if was == WaitlistStatus.OFFERED:
        offer_freed(entry.resource, entry.start_at, entry.end_at, now)


# -- the scheduler -------------------------------------------------------------------------


def expire_offer(entry_id: int, now: dt.datetime) -> list[WaitlistEntry] | None:
    """Expire one offer past its time and offer the slot to the next in line. A
    conditional UPDATE under the resource's lock: None when the offer was no longer
    open and expired (another scheduler, or the offeree, got there first)."""
    resource_id = db.session.scalar(
        select(WaitlistEntry.resource_id).where(WaitlistEntry.id == entry_id)
    )
    if resource_id is None:
        return None
    bookings.lock_resources([resource_id])
    result = db.session.execute(
        update(WaitlistEntry)
        .where(
            WaitlistEntry.id == entry_id,
            WaitlistEntry.status == WaitlistStatus.OFFERED,
            WaitlistEntry.offer_expires_at <= now,
        )
        .values(status=WaitlistStatus.EXPIRED, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if int(getattr(result, "rowcount", 0) or 0) != 1:
        return None
    entry = db.session.get(WaitlistEntry, entry_id)
    assert entry is not None
    db.session.refresh(entry)
    audit.record(
        "waitlist.expire",
        entry,
        actor=None,
        from_state=WaitlistStatus.OFFERED,
        to_state=WaitlistStatus.EXPIRED,
    )
    return offer_freed(entry.resource, entry.start_at, entry.end_at, now)


def expire_stale_waiting(now: dt.datetime, *, resource_id: int | None = None) -> int:
    """Waiting entries whose slot is over can never be offered: expire them (one
    conditional UPDATE). Its calendar trigger writes the entries' resource rows, so
    the scheduler passes ``resource_id`` and holds that resource's lock (lock order:
    resource, then its entries)."""
    stmt = update(WaitlistEntry).where(
        WaitlistEntry.status == WaitlistStatus.WAITING, WaitlistEntry.end_at <= now
    )
    if resource_id is not None:
        stmt = stmt.where(WaitlistEntry.resource_id == resource_id)
    result = db.session.execute(
        stmt.values(status=WaitlistStatus.EXPIRED, updated_at=now).execution_options(
            synchronize_session=False
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)
