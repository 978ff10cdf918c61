"""The life-cycle moves of a booking: approve, reject, cancel, record usage and
mark a no-show (:data:`TRANSITIONS`).

Every move checks who may act and the input, takes the write lock (the booking's
resource, then the booking) and re-reads before it decides, checks its window
(``windows``), audits the move and queues its notifications in the same
transaction, then announces it (``signals.status_changed``; ``signals.time_freed``
when the booking stopped holding time). A booking that moves with its group is
handed over whole (``hooks.together``). Nothing here commits.
"""

from __future__ import annotations

import datetime as dt

from flask_babel import lazy_gettext as _l
from sqlalchemy import exists, select, update
from sqlalchemy.orm.attributes import set_committed_value

from labshare.booking import signals
from labshare.booking.checks import NOTES_MAX, REASON_MAX, _aware, _text, check_slot
from labshare.booking.hooks import together
from labshare.booking.locking import _lock_booking
from labshare.booking.permissions import can_view_booking, is_member_of_company, is_staff_of
from labshare.booking.rules import effective_rules, institute_zone
from labshare.booking.windows import Move
from labshare.booking.windows import check as check_window
from labshare.errors import (
    InvalidTransition,
    NotAllowed,
    NotFound,
    RuleViolation,
    ValidationFailed,
)
from labshare.extensions import db
from labshare.messaging import notify
from labshare.models import (
    HOLDING_STATUSES,
    Booking,
    BookingStatus,
    ServiceType,
    UsageRecord,
    User,
    WaitlistEntry,
    WaitlistStatus,
)
from labshare.ops import audit
from labshare.timeutil import utcnow

#: Allowed transitions (DESIGN.md). Auto-approved bookings are created approved.
TRANSITIONS: dict[BookingStatus, frozenset[BookingStatus]] = {
    BookingStatus.PENDING: frozenset(
        {BookingStatus.APPROVED, BookingStatus.REJECTED, BookingStatus.CANCELLED}
    ),
    BookingStatus.APPROVED: frozenset(
        {BookingStatus.COMPLETED, BookingStatus.CANCELLED, BookingStatus.NO_SHOW}
    ),
    BookingStatus.REJECTED: frozenset(),
    BookingStatus.CANCELLED: frozenset(),
    BookingStatus.COMPLETED: frozenset(),
    BookingStatus.NO_SHOW: frozenset(),
}


def _announce(booking: Booking, before: BookingStatus, *, freed: bool) -> None:
    """Tell the policies what happened (after the move is audited and its
    notifications queued, still under the lock)."""
    signals.status_changed.send(booking, before=before, after=BookingStatus(booking.status))
    if freed:
        signals.time_freed.send(booking)


def _authorize_staff(actor: User, booking: Booking) -> None:
    if not can_view_booking(actor, booking):
        raise NotFound(_l("No such booking."))
    if not is_staff_of(actor, booking.institute_id):
        raise NotAllowed(_l("Only staff of the booking's institute can do this."))


def _transition(
    booking: Booking,
    actor: User | None,
    to: BookingStatus,
    *,
    action: str,
    reason: str | None = None,
) -> None:
    """Move ``booking`` (already locked and re-read) to ``to``, audited."""
    current = BookingStatus(booking.status)
    if to not in TRANSITIONS[current]:
        raise InvalidTransition(
            _l(
                "A %(current)s booking cannot become %(to)s.",
                current=str(current),
                to=str(to),
            )
        )
    booking.status = to
    audit.record(action, booking, actor=actor, from_state=current, to_state=to, reason=reason)


def approve_booking(booking: Booking, actor: User) -> Booking:
    """pending -> approved, by staff of the booking's institute, before the booking
    starts (``windows``). Runs the creation checks again (``check_slot``, all but the
    lead time and the horizon), since the request may have waited."""
    group = together()
    if group.moves_together(booking):  # e.g. a group's members move together
        return group.move_together(booking, "approve", actor)
    _authorize_staff(actor, booking)
    _lock_booking(booking)
    current = BookingStatus(booking.status)
    if current != BookingStatus.PENDING:
        raise InvalidTransition(
            _l("Only a pending booking can be approved; this one is %(s)s.", s=str(current))
        )
    resource = booking.resource
    db.session.refresh(resource)
    now = utcnow()
    tz = institute_zone(resource)
    check_window(Move.APPROVE, booking.start_at, booking.end_at, effective_rules(resource), now, tz)
    check_slot(resource, booking.user, booking.start_at, booking.end_at, now, existing=booking)
    _transition(booking, actor, BookingStatus.APPROVED, action="booking.approve")
    booking.decided_by_id = actor.id
    booking.decided_at = now
    db.session.flush()
    notify.booking_event(booking, "confirmed")
    _announce(booking, current, freed=False)
    return booking


def reject_booking(booking: Booking, actor: User, reason: str) -> Booking:
    """pending -> rejected, by staff of the booking's institute, with a reason."""
    group = together()
    if group.moves_together(booking):  # e.g. a group's members move together
        return group.move_together(booking, "reject", actor, reason)
    _authorize_staff(actor, booking)
    reason_text = _text(reason, "reason", REASON_MAX, required=True)
    _lock_booking(booking)
    now = utcnow()
    resource = booking.resource
    # reject has no window today (staff can always clear an undecided request); asking
    # the table keeps that a decision made in one place
    check_window(
        Move.REJECT,
        booking.start_at,
        booking.end_at,
        effective_rules(resource),
        now,
        institute_zone(resource),
    )
    _transition(booking, actor, BookingStatus.REJECTED, action="booking.reject", reason=reason_text)
    booking.decided_by_id = actor.id
    booking.decided_at = now
    booking.decision_reason = reason_text
    db.session.flush()
    notify.booking_event(booking, "rejected")
    _announce(booking, BookingStatus.PENDING, freed=True)
    return booking


def cancel_booking(booking: Booking, actor: User, reason: str | None = None) -> Booking:
    """pending/approved -> cancelled, by the booking's company (before the
    cancellation deadline) or its institute's staff, before the booking starts
    (``windows``)."""
    group = together()
    if group.moves_together(booking):  # e.g. a group's members move together
        return group.move_together(booking, "cancel", actor, reason)
    if not can_view_booking(actor, booking):
        raise NotFound(_l("No such booking."))
    staff = is_staff_of(actor, booking.institute_id)
    if not staff and not is_member_of_company(actor, booking.company_id):
        raise NotAllowed(_l("Only the booking's company or its institute's staff can cancel it."))
    return _cancel(booking, actor, reason, staff=staff)


def cancel_displaced(booking: Booking, actor: User | None, reason: str | None) -> Booking:
    """Cancel a booking that a closure or a newly added public holiday displaces, as
    its institute's staff would (before it begins, no deadline, no late cancellation),
    for whoever closed the time: the institute's staff, an admin, or the command line
    (``actor`` None). The caller has checked that ``actor`` may close that time."""
    return _cancel(booking, actor, reason, staff=True)


def cancel_displaced_many(
    bookings: list[Booking], actor: User | None, reason: str | None
) -> list[Booking]:
    """``cancel_displaced`` of many bookings in one UPDATE and an audit INSERT per
    former state, whatever their number. The caller holds their resources' locks (the
    one lock order), so the loaded rows are current. A booking of a group moves its
    group, and one already begun is refused (``windows``): those take the one-by-one
    path. The freed time is offered to a waitlist only on the resources that have one
    (one read for all). Returns the bookings cancelled."""
    reason_text = _text(reason, "reason", REASON_MAX, required=False)
    now = utcnow()
    holding = [b for b in bookings if b.status in HOLDING_STATUSES]
    one_by_one = [b for b in holding if b.group_id is not None or b.start_at <= now]
    for booking in one_by_one:
        cancel_displaced(booking, actor, reason)
    alone = [b for b in holding if b.group_id is None and b.start_at > now]
    if not alone:
        return one_by_one
    db.session.flush()
    values: dict[str, object] = {
        "status": BookingStatus.CANCELLED,
        "cancelled_by_id": actor.id if actor is not None else None,
        "cancelled_at": now,
    }
    if reason_text is not None:
        values["decision_reason"] = reason_text
    db.session.execute(
        update(Booking).where(Booking.id.in_([b.id for b in alone])).values(**values),
        execution_options={"synchronize_session": False},
    )
    before = {b.id: BookingStatus(b.status) for b in alone}
    for booking in alone:  # the loaded rows say what the UPDATE wrote, without a re-read
        for key, value in values.items():
            set_committed_value(booking, key, value)
    for state in sorted(set(before.values())):
        audit.record_many(
            "booking.cancel",
            [b for b in alone if before[b.id] == state],
            actor=actor,
            from_state=state,
            to_state=BookingStatus.CANCELLED,
            reason=reason_text,
        )
    waiting = set(
        db.session.scalars(
            select(WaitlistEntry.resource_id).where(
                WaitlistEntry.resource_id.in_(sorted({b.resource_id for b in alone})),
                WaitlistEntry.status == WaitlistStatus.WAITING,
                WaitlistEntry.end_at > now,
            )
        )
    )
    signals.statuses_changed.send(alone, before=before, after=BookingStatus.CANCELLED)
    for booking in alone:
        if booking.resource_id in waiting:
            signals.time_freed.send(booking)
    return one_by_one + alone


def _cancel(booking: Booking, actor: User | None, reason: str | None, *, staff: bool) -> Booking:
    reason_text = _text(reason, "reason", REASON_MAX, required=False)
    _lock_booking(booking)
    current = BookingStatus(booking.status)
    if BookingStatus.CANCELLED not in TRANSITIONS[current]:
        raise InvalidTransition(
            _l(
                "Only a pending or approved booking can be cancelled; this one is %(s)s.",
                s=str(current),
            )
        )
    now = utcnow()
    rules = effective_rules(booking.resource)
    check_window(
        Move.CANCEL_BY_STAFF if staff else Move.CANCEL_BY_COMPANY,
        booking.start_at,
        booking.end_at,
        rules,
        now,
        institute_zone(booking.resource),
    )
    if not staff:
        deadline = booking.start_at - dt.timedelta(hours=rules.cancel_deadline_hours)
        if now > deadline:
            raise RuleViolation(
                _l(
                    "Bookings can be cancelled online until %(n)d hours before they start; "
                    "please contact the institute.",
                    n=rules.cancel_deadline_hours,
                ),
                rule="cancellation_deadline",
            )
    _transition(
        booking, actor, BookingStatus.CANCELLED, action="booking.cancel", reason=reason_text
    )
    booking.cancelled_by_id = actor.id if actor is not None else None
    booking.cancelled_at = now
    # -- booking policies: the company's late cancellation counts as a no-show --
    if not staff:
        late_hours = rules.late_cancel_hours
        if late_hours > 0 and now > booking.start_at - dt.timedelta(hours=late_hours):
            booking.late_cancellation = True
            audit.record(
                "booking.late_cancellation",
                booking,
                actor=actor,
                reason=reason_text or f"cancelled less than {late_hours} hours before the start",
                data={"late_cancel_hours": late_hours},
            )
    # -- end booking policies --
    if reason_text is not None:
        booking.decision_reason = reason_text
    db.session.flush()
    notify.booking_event(booking, "cancelled")
    _announce(booking, current, freed=True)
    return booking


def record_usage(
    booking: Booking,
    actor: User,
    *,
    checked_in_at: dt.datetime | None,
    checked_out_at: dt.datetime,
    service_type: ServiceType | str,
    samples_count: int,
    problem_solved: bool,
    notes: str | None = None,
) -> UsageRecord:
    """approved -> completed, recording what happened; by the institute's staff, once
    the booking has begun (``windows``); neither time may lie in the future.
    ``checked_in_at=None``: the booking's check-in time (required without one)."""
    _authorize_staff(actor, booking)
    if checked_in_at is None:  # check-in: the booking's own, if someone checked in
        if booking.checked_in_at is None:
            raise ValidationFailed(_l("This field is required."), field="checked_in_at")
        checked_in_at = booking.checked_in_at
    checked_in = _aware(checked_in_at, "checked_in_at")
    checked_out = _aware(checked_out_at, "checked_out_at")
    if checked_out <= checked_in:
        raise ValidationFailed(
            _l("The check-out time must be after the check-in time."), field="checked_out_at"
        )
    try:
        service = ServiceType(service_type)
    except ValueError:
        raise ValidationFailed(
            _l(
                "Unknown service type; use one of: %(types)s.",
                types=", ".join(t.value for t in ServiceType),
            ),
            field="service_type",
        ) from None
    if isinstance(samples_count, bool) or not isinstance(samples_count, int) or samples_count < 0:
        raise ValidationFailed(
            _l("The number of samples must be a whole number, 0 or more."), field="samples_count"
        )
    if not isinstance(problem_solved, bool):
        raise ValidationFailed(_l("Answer yes or no."), field="problem_solved")
    notes_text = _text(notes, "notes", NOTES_MAX, required=False)

    _lock_booking(booking)
    current = BookingStatus(booking.status)
    if BookingStatus.COMPLETED not in TRANSITIONS[current]:
        raise InvalidTransition(
            _l("A %(current)s booking cannot become %(to)s.", current=str(current), to="completed")
        )
    now = utcnow()
    resource = booking.resource
    tz = institute_zone(resource)
    check_window(
        Move.RECORD_USAGE, booking.start_at, booking.end_at, effective_rules(resource), now, tz
    )
    for field, value in (("checked_in_at", checked_in), ("checked_out_at", checked_out)):
        if value > now:
            raise ValidationFailed(
                _l("This time is in the future; record what has happened."), field=field
            )
    _transition(booking, actor, BookingStatus.COMPLETED, action="booking.complete")
    usage = UsageRecord(
        booking_id=booking.id,
        checked_in_at=checked_in,
        checked_out_at=checked_out,
        service_type=service,
        samples_count=samples_count,
        problem_solved=problem_solved,
        notes=notes_text,
        recorded_by_id=actor.id,
    )
    db.session.add(usage)
    db.session.flush()
    notify.booking_event(booking, "completed")
    # completed early: the rest of its time is free again
    _announce(booking, current, freed=booking.end_at > now)
    return usage


# -- no-show -----------------------------------------------------------------------------


def mark_no_show(
    booking: Booking,
    actor: User | None = None,
    *,
    quiet: bool = False,
    reason: str | None = None,
    now: dt.datetime | None = None,
) -> bool:
    """approved -> no_show: nobody came. Audited ("booking.no_show") and notified
    ("no_show") the same way whoever does it.

    Staff (``actor``, or the operator with ``actor=None``): authorised, under the
    booking's lock; a booking that is not approved, or was checked in, raises
    InvalidTransition.

    ``quiet=True`` (the scheduler's jobs): no authorisation, no lock of its own; a
    conditional ``UPDATE ... WHERE status = 'approved' AND checked_in_at IS NULL``
    decides, so a second scheduler (or a rerun, or staff acting at the same moment)
    changes nothing and writes nothing: False then.

    While the booking's end is still ahead, the time it held is offered to the
    waitlist (``signals.time_freed``); in quiet mode the caller holds the
    resource's lock then (``lock_resources``). Returns True when it changed the row.
    """
    if not quiet:
        if actor is not None:
            _authorize_staff(actor, booking)
        reason = _text(reason, "reason", REASON_MAX, required=False)
        _lock_booking(booking)
        current = BookingStatus(booking.status)
        if BookingStatus.NO_SHOW not in TRANSITIONS[current]:
            raise InvalidTransition(
                _l(
                    "A %(current)s booking cannot become %(to)s.",
                    current=str(current),
                    to=str(BookingStatus.NO_SHOW),
                )
            )
        if booking.checked_in_at is not None:
            raise InvalidTransition(_l("This booking was checked in, so it is not a no-show."))
    now = now or utcnow()
    if not quiet:
        check_window(
            Move.NO_SHOW,
            booking.start_at,
            booking.end_at,
            effective_rules(booking.resource),
            now,
            institute_zone(booking.resource),
        )
    # The definition of a no-show, whoever asks: approved, begun (the window opens
    # at the start), nobody checked in, no usage recorded.
    result = db.session.execute(
        update(Booking)
        .where(
            Booking.id == booking.id,
            Booking.status == BookingStatus.APPROVED,
            Booking.checked_in_at.is_(None),
            Booking.start_at <= now,
            ~exists().where(UsageRecord.booking_id == Booking.id),
        )
        .values(status=BookingStatus.NO_SHOW, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    db.session.refresh(booking)
    if int(getattr(result, "rowcount", 0) or 0) != 1:
        return False
    audit.record(
        "booking.no_show",
        booking,
        actor=actor,
        from_state=BookingStatus.APPROVED,
        to_state=BookingStatus.NO_SHOW,
        reason=reason,
    )
    notify.booking_event(booking, "no_show")
    _announce(booking, BookingStatus.APPROVED, freed=booking.end_at > now)
    db.session.flush()
    return True
