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

Contract of :func:`slot_freed` (called by services/bookings.py and by the
check-in / auto-release job): it runs in the caller's transaction, under the
write lock of the booking's resource, right after the booking stopped holding
time, and offers the freed time to the waitlist.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from flask_babel import force_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select, update
from sqlalchemy.orm import selectinload

from labshare.booking import windows
from labshare.booking.availability import capacity_of, holding_spans, saturated
from labshare.booking.permissions import is_member_of_company, is_staff_of
from labshare.booking.policies.group_hooks import bundle_of
from labshare.booking.rules import Rules, Span, effective_rules, institute_zone, on_grid
from labshare.errors import (
    InvalidTransition,
    NotAllowed,
    NotFound,
    RuleViolation,
    SlotTaken,
)
from labshare.extensions import db
from labshare.messaging import notify
from labshare.models import (
    OPEN_WAITLIST_STATUSES,
    Booking,
    Notification,
    Resource,
    Role,
    User,
    WaitlistEntry,
    WaitlistStatus,
)
from labshare.ops import audit
from labshare.timeutil import utcnow

#: At most this many open (waiting or offered) entries per company, all resources.
MAX_OPEN_PER_COMPANY = 20
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
    from labshare.booking import bookings  # bookings imports this module

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


# -- offering freed time -------------------------------------------------------------------


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
    from labshare.booking import bookings  # bookings imports this module

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
            bookings.check_slot(resource, user, begin, entry.end_at, now)
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


# -- the offeree's answers -----------------------------------------------------------------


def _own_entry(entry: WaitlistEntry, user: User) -> None:
    """Only the entry's company sees it: anyone else gets NotFound (404)."""
    if not is_member_of_company(user, entry.company_id):
        raise NotFound(_l("No such waitlist entry."))


def _lock_entry(entry: WaitlistEntry) -> None:
    from labshare.booking import bookings  # bookings imports this module

    bookings.lock_resources([entry.resource_id])
    db.session.refresh(entry)


def accept_offer(entry: WaitlistEntry, user: User) -> Booking:
    """Take an open offer: book the entry's slot through the engine's atomic path
    (``book_locked``, every rule re-checked; the entry's own offer does not block
    it) and mark the entry booked. Only a member of the entry's company may."""
    from labshare.booking import bookings  # bookings imports this module

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
    from labshare.booking import bookings  # bookings imports this module

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
