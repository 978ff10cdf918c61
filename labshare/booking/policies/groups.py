"""Bookings of several resources together: a lab and some of its instruments, or
the instruments of a "booked together" bundle, for the same time, all or nothing.

Each member is an ordinary ``Booking`` (so every rule, the calendars, iCal and the
statistics apply unchanged) with ``group_id`` set. Creating a group takes the locks
of all its resources at once (``lock_resources``, in id order, so no deadlock with
single bookings or other groups), then books each through ``book_locked`` inside a
savepoint: any refusal raises, names the resource, and leaves nothing written.

Transitions: approving, rejecting or cancelling any member moves the whole group
(``transition_group``): every member's resource is locked, each member goes through
the single-booking transition (so its checks, audit and notifications apply per
member), all or none. Recording usage and no-shows stay per member. Nothing here
commits.

The engine hands a booking of a bundle, and a transition of a group's member, to
this module through :class:`Together` (``hooks.together``, registered at app start).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from contextvars import ContextVar

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from labshare.booking import bookings
from labshare.booking.permissions import can_view_booking
from labshare.errors import DomainError, NotFound, ValidationFailed
from labshare.extensions import db
from labshare.messaging import notify
from labshare.models import (
    HOLDING_STATUSES,
    Booking,
    BookingGroup,
    BookingStatus,
    Instrument,
    Lab,
    Resource,
    ResourceStatus,
    User,
)
from labshare.ops import audit
from labshare.timeutil import utcnow

#: At most this many instruments in one group request.
MAX_INSTRUMENTS = 20
ACTIONS = ("approve", "reject", "cancel")

#: The group whose members are being moved right now (by ``transition_group``):
#: the single-booking transitions then act on the one member they were given.
ACTING_GROUP: ContextVar[int | None] = ContextVar("labshare_acting_group", default=None)


def bundle_of(resource: Resource) -> bool:
    """Whether booking ``resource`` alone books its "booked together" bundle."""
    return isinstance(resource, Instrument) and bool((resource.bundle or "").strip())


def acts_on_group(booking: Booking) -> bool:
    """Whether a transition of ``booking`` must move its whole group."""
    return booking.group_id is not None and ACTING_GROUP.get() != booking.group_id


def _named(exc: DomainError, resource: Resource) -> DomainError:
    """The same refusal, naming the member's resource (message and ``resource_id``)."""
    named = type(exc)(
        _l("%(resource)s: %(message)s", resource=resource.name, message=str(exc.message)),
        field=exc.field,
        rule=exc.rule,
        details={**exc.details, "resource_id": resource.id},
    )
    named.__cause__ = exc
    return named


def bundle_members(instrument: Instrument) -> list[Instrument]:
    """The instruments booked together with ``instrument`` (itself included): those
    of its lab with the same bundle name, retired ones left out. In id order."""
    name = (instrument.bundle or "").strip()
    if not name:
        return [instrument]
    rows = db.session.scalars(
        select(Instrument)
        .where(
            Instrument.lab_id == instrument.lab_id,
            Instrument.bundle == name,
            Instrument.status != ResourceStatus.RETIRED,
        )
        .order_by(Instrument.id)
    ).all()
    members = list(rows)
    if instrument not in members:
        members.append(instrument)
    return sorted(members, key=lambda r: r.id)


def _expand(instruments: Sequence[Instrument]) -> list[Instrument]:
    out: dict[int, Instrument] = {}
    for instrument in instruments:
        for member in bundle_members(instrument):
            out.setdefault(member.id, member)
    return [out[k] for k in sorted(out)]


def _check_members(lab: Resource, instruments: Sequence[Resource]) -> list[Instrument]:
    if not isinstance(lab, Lab):
        raise ValidationFailed(_l("Choose a lab."), field="lab_id")
    if len(instruments) > MAX_INSTRUMENTS:
        raise ValidationFailed(
            _l("At most %(n)d instruments can be booked together.", n=MAX_INSTRUMENTS),
            field="instrument_ids",
        )
    seen: set[int] = set()
    checked: list[Instrument] = []
    for instrument in instruments:
        if not isinstance(instrument, Instrument) or instrument.lab_id != lab.id:
            raise ValidationFailed(
                _l(
                    "%(name)s is not an instrument of the lab %(lab)s.",
                    name=instrument.name,
                    lab=lab.name,
                ),
                field="instrument_ids",
            )
        if instrument.id in seen:
            raise ValidationFailed(
                _l("%(name)s is listed twice.", name=instrument.name), field="instrument_ids"
            )
        seen.add(instrument.id)
        checked.append(instrument)
    if not checked:
        raise ValidationFailed(
            _l("Choose at least one instrument to book with the lab."), field="instrument_ids"
        )
    return _expand(checked)


def _insert(
    lab: Lab,
    resources: Sequence[Resource],
    booker: User,
    request: bookings.BookingRequest,
    now: dt.datetime,
    *,
    pending: bool,
    on_behalf_by: User | None,
) -> BookingGroup:
    """Insert the group and its members (the caller holds their locks and a
    savepoint); a member's refusal is raised naming its resource."""
    company_id = booker.company_id
    assert company_id is not None  # validate_request
    group = BookingGroup(
        lab_id=lab.id,
        institute_id=lab.institute_id,
        company_id=company_id,
        user_id=booker.id,
        purpose=request.purpose,
        created_at=now,
    )
    db.session.add(group)
    db.session.flush()
    for resource in resources:
        try:
            bookings.book_locked(
                resource,
                booker,
                request,
                now=now,
                group_id=group.id,
                pending=pending,
                on_behalf_by=on_behalf_by,
            )
        except DomainError as exc:
            raise _named(exc, resource) from exc
    on_behalf = {"on_behalf_of": company_id, "booker": booker.id} if on_behalf_by else {}
    audit.record(
        "booking_group.create",
        group,
        actor=on_behalf_by or booker,
        data={"resource_ids": [r.id for r in resources], **on_behalf},
    )
    db.session.flush()
    return group


def _create(
    lab: Lab,
    resources: Sequence[Resource],
    booker: User,
    start: dt.datetime,
    end: dt.datetime,
    *,
    purpose: str,
    samples: str | None,
    lead: Resource,
    on_behalf_by: User | None,
) -> BookingGroup:
    """Lock every resource, then book them all inside a savepoint: any refusal
    rolls it back (nothing written). When the rules approve some members and not
    others, the savepoint is rolled back and all are booked pending instead (under
    the same locks), so a group never waits half approved.

    Each recipient hears of the group once: the members' events are collected and
    only ``lead``'s booking (the one asked for) is told, its message listing the
    other members."""
    request = bookings.validate_request(booker, start, end, purpose=purpose, samples=samples)
    bookings.lock_resources([r.id for r in resources])
    now = utcnow()
    for pending in (False, True):
        savepoint = db.session.begin_nested()
        try:
            with notify.collect_booking_events() as events:
                group = _insert(
                    lab, resources, booker, request, now, pending=pending, on_behalf_by=on_behalf_by
                )
        except BaseException:
            savepoint.rollback()
            raise
        if pending or len({BookingStatus(m.status) for m in members_of(group.id)}) == 1:
            savepoint.commit()
            for booking, event in events:
                if booking.resource_id == lead.id:
                    notify.booking_event(booking, event)
            return group
        savepoint.rollback()
    raise AssertionError("unreachable")


def create_group(
    lab: Resource,
    instruments: Sequence[Resource],
    booker: User,
    start: dt.datetime,
    end: dt.datetime,
    *,
    purpose: str,
    samples: str | None = None,
    on_behalf_by: User | None = None,
) -> BookingGroup:
    """Book ``lab`` and ``instruments`` (all of that lab; their bundles come along)
    for [start, end), all or nothing. Pending throughout when any member needs
    approval, else approved. Raises ValidationFailed (``lab_id``,
    ``instrument_ids``), or the first member's refusal naming its resource.
    ``on_behalf_by``: the staff member booking for ``booker``'s company (checked by
    ``policies/on_behalf``), recorded on every member and the group's audit row."""
    bookings.validate_request(booker, start, end, purpose=purpose, samples=samples)
    members = _check_members(lab, instruments)
    assert isinstance(lab, Lab)
    return _create(
        lab,
        [lab, *members],
        booker,
        start,
        end,
        purpose=purpose,
        samples=samples,
        lead=lab,
        on_behalf_by=on_behalf_by,
    )


def book_bundle(
    instrument: Resource,
    booker: User,
    start: dt.datetime,
    end: dt.datetime,
    *,
    purpose: str,
    samples: str | None = None,
    on_behalf_by: User | None = None,
) -> Booking:
    """A single request for an instrument of a bundle books the whole bundle as a
    group (its lab is not booked). Returns the requested instrument's booking."""
    assert isinstance(instrument, Instrument)
    members = bundle_members(instrument)
    if len(members) < 2:  # a bundle of one: an ordinary booking
        request = bookings.validate_request(booker, start, end, purpose=purpose, samples=samples)
        bookings.lock_resources([instrument.id])
        return bookings.book_locked(instrument, booker, request, on_behalf_by=on_behalf_by)
    bookings.validate_request(booker, start, end, purpose=purpose, samples=samples)
    group = _create(
        instrument.lab,
        members,
        booker,
        start,
        end,
        purpose=purpose,
        samples=samples,
        lead=instrument,
        on_behalf_by=on_behalf_by,
    )
    return next(m for m in members_of(group.id) if m.resource_id == instrument.id)


def members_of(group_id: int) -> list[Booking]:
    """The group's bookings, in resource id order."""
    return list(
        db.session.scalars(
            select(Booking).where(Booking.group_id == group_id).order_by(Booking.resource_id)
        )
    )


def can_view_group(user: User, group: BookingGroup) -> bool:
    members = members_of(group.id)
    return bool(members) and can_view_booking(user, members[0])


def transition_group(
    booking: Booking, action: str, actor: User, reason: str | None = None
) -> Booking:
    """Approve, reject or cancel every member of ``booking``'s group, all or none.
    Cancelling leaves members that no longer hold time (completed, no-show) as they
    are. Returns ``booking``, moved."""
    if action not in ACTIONS:
        raise ValueError(action)
    if not can_view_booking(actor, booking):
        raise NotFound(_l("No such booking."))
    group_id = booking.group_id
    assert group_id is not None
    booking_id = booking.id
    members = members_of(group_id)
    bookings.lock_resources([m.resource_id for m in members])
    step: Callable[[Booking], object]
    if action == "approve":
        step = lambda m: bookings.approve_booking(m, actor)  # noqa: E731
    elif action == "reject":
        step = lambda m: bookings.reject_booking(m, actor, reason or "")  # noqa: E731
    else:
        step = lambda m: bookings.cancel_booking(m, actor, reason)  # noqa: E731
    # The requested booking first, so its own refusal is the one reported.
    ordered = sorted(members_of(group_id), key=lambda m: (m.id != booking_id, m.resource_id))
    token = ACTING_GROUP.set(group_id)
    savepoint = db.session.begin_nested()
    try:
        for member in ordered:
            db.session.refresh(member)
            if (
                action == "cancel"
                and member.id != booking_id
                and member.status not in HOLDING_STATUSES
            ):
                continue
            try:
                step(member)
            except DomainError as exc:
                raise _named(exc, member.resource) from exc
    except BaseException:
        savepoint.rollback()
        raise
    finally:
        ACTING_GROUP.reset(token)
    savepoint.commit()
    db.session.refresh(booking)
    return booking


class Together:
    """What the engine hands over (``hooks.Together``): a booking of a bundle
    instrument books the bundle; a transition of a member moves the group."""

    def books_together(self, resource: Resource) -> bool:
        return bundle_of(resource)

    def book_together(
        self,
        resource: Resource,
        booker: User,
        start: dt.datetime,
        end: dt.datetime,
        purpose: str,
        samples: str | None,
        *,
        on_behalf_by: User | None = None,
    ) -> Booking:
        return book_bundle(
            resource,
            booker,
            start,
            end,
            purpose=purpose,
            samples=samples,
            on_behalf_by=on_behalf_by,
        )

    def moves_together(self, booking: Booking) -> bool:
        return acts_on_group(booking)

    def move_together(
        self, booking: Booking, action: str, actor: User, reason: str | None = None
    ) -> Booking:
        return transition_group(booking, action, actor, reason)
