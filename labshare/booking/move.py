"""Moving a booking to another time on the same resource, in one atomic step.

Under the resource's write lock (the same as creation's: ``bookings._lock_booking``),
the new slot is judged by every rule of a new booking (``bookings.check_slot``, in
its order and with its messages, lead time and horizon included) with the booking
itself left out of conflicts, quotas and per-period counts. Then the booking's row
changes its times: the same id, history, purpose and series. If any rule refuses,
nothing changes (the caller rolls back; nothing here commits).

Who and when:

- the booking's company (any active member) until the rules' cancellation deadline
  before the booking's current start (a move gives up the old time like a
  cancellation does), and its institute's staff until the start (``windows``);
- others that may see it (admins) get 403, others 404 (the tenancy conventions).

Approval. A move by staff keeps the booking's state: staff are the ones who
approve. A move by the company of an approved booking needs approval again where a
new booking would (the rules ask for approval, or the company's no-show record
reaches the rules' threshold); a pending booking stays pending.

Then: the freed old time is announced (``signals.time_freed`` with the old span), which
the waitlist offers,
reminders already sent or skipped are forgotten so that they follow the new time,
the booking's ``moves`` grows (the calendar feed's SEQUENCE, the message keys), the
calendar cache follows from the database triggers on ``booking.start_at/end_at``,
the booker and the staff are told ("moved"), and an audit row keeps both times.

A series occurrence moves alone and stays in its series (a series cancellation
still covers it). A member of a booking group (booked together with other
resources) is refused: its members must keep the same time.
"""

from __future__ import annotations

import datetime as dt

from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError

from labshare.booking import bookings, signals
from labshare.booking.checks import judge_slot
from labshare.booking.hooks import slot_policies
from labshare.booking.permissions import can_view_booking, is_member_of_company, is_staff_of
from labshare.booking.rules import effective_rules, institute_zone
from labshare.booking.windows import Move
from labshare.booking.windows import check as check_window
from labshare.database import is_sqlite
from labshare.errors import (
    InvalidTransition,
    NotAllowed,
    NotFound,
    RuleViolation,
    SlotTaken,
    ValidationFailed,
)
from labshare.extensions import db
from labshare.messaging import notify
from labshare.models import HOLDING_STATUSES, Booking, BookingStatus, JobMarker, Notification, User
from labshare.ops import audit
from labshare.timeutil import utcnow


def may_move(actor: User, booking: Booking, now: dt.datetime | None = None) -> bool:
    """Whether the page should offer "move" (the service decides again)."""
    if booking.status not in HOLDING_STATUSES or booking.group_id is not None:
        return False
    if booking.checked_in_at is not None:
        return False
    now = now or utcnow()
    if is_staff_of(actor, booking.institute_id):
        return now < booking.start_at
    if not is_member_of_company(actor, booking.company_id):
        return False
    hours = effective_rules(booking.resource).cancel_deadline_hours
    return now <= booking.start_at - dt.timedelta(hours=hours)


def move_booking(
    booking: Booking,
    actor: User,
    start: dt.datetime,
    end: dt.datetime,
    *,
    now: dt.datetime | None = None,
) -> Booking:
    """Move ``booking`` to [start, end) on its resource. Raises NotFound, NotAllowed,
    ValidationFailed, InvalidTransition, RuleViolation or SlotTaken; then nothing
    has changed (the caller rolls back the transaction)."""
    if not can_view_booking(actor, booking):
        raise NotFound(_l("No such booking."))
    staff = is_staff_of(actor, booking.institute_id)
    if not staff and not is_member_of_company(actor, booking.company_id):
        raise NotAllowed(_l("Only the booking's company or its institute's staff can move it."))
    new_start = bookings._aware(start, "start")
    new_end = bookings._aware(end, "end")
    if new_end <= new_start:
        raise ValidationFailed(_l("The end must be after the start."), field="end")
    if booking.group_id is not None:
        raise RuleViolation(
            _l(
                "This booking was made together with other instruments, which must keep "
                "the same time; cancel the group and book again to change it."
            ),
            rule="booking_group",
        )

    bookings._lock_booking(booking)  # the resource's lock, then the booking's; re-read
    current = BookingStatus(booking.status)
    if current not in HOLDING_STATUSES:
        raise InvalidTransition(
            _l(
                "Only a pending or approved booking can be moved; this one is %(s)s.",
                s=str(current),
            )
        )
    if booking.checked_in_at is not None:
        raise InvalidTransition(_l("This booking was checked in, so it cannot be moved."))
    if new_start == booking.start_at and new_end == booking.end_at:
        raise ValidationFailed(_l("The booking is already at this time."), field="start")
    now = now or utcnow()
    resource = booking.resource
    db.session.refresh(resource)  # status, calibration, ... as of the lock
    rules = effective_rules(resource)
    tz = institute_zone(resource)
    check_window(
        Move.MOVE_BY_STAFF if staff else Move.MOVE_BY_COMPANY,
        booking.start_at,
        booking.end_at,
        rules,
        now,
        tz,
    )
    if not staff and now > booking.start_at - dt.timedelta(hours=rules.cancel_deadline_hours):
        raise RuleViolation(
            _l(
                "Bookings can be moved online until %(n)d hours before they start; "
                "please contact the institute.",
                n=rules.cancel_deadline_hours,
            ),
            rule="cancellation_deadline",
        )
    booker = booking.user
    if not is_member_of_company(booker, booking.company_id):
        raise NotAllowed(
            _l(
                "The member who made this booking has left the company or was "
                "deactivated; cancel it and book again."
            )
        )
    slot = judge_slot(resource, booker, new_start, new_end, now, existing=booking, judge_lead=True)

    old_start, old_end = booking.start_at, booking.end_at
    status = current
    reason: str | None = None
    if not staff and current == BookingStatus.APPROVED:
        if rules.requires_approval:
            status, reason = BookingStatus.PENDING, "moved by the company: needs approval again"
        else:  # a policy may make the new time wait (e.g. a no-show record), as at creation
            for policy in slot_policies():
                held = policy.hold(slot)
                if held is not None:
                    status, reason = BookingStatus.PENDING, held
                    break
    fee, waived = bookings.compute_fee(resource, new_start, new_end)
    booking.start_at, booking.end_at = new_start, new_end
    booking.fee, booking.fee_waived = fee, waived
    booking.moves = int(booking.moves or 0) + 1
    if status != current:
        booking.status = status
        booking.decided_by_id = None
        booking.decided_at = None
    _flush_or_conflict(booking)
    audit.record(
        "booking.move",
        booking,
        actor=actor,
        from_state=current,
        to_state=status,
        reason=reason,
        data={
            "from_start": old_start.isoformat(),
            "from_end": old_end.isoformat(),
            "to_start": new_start.isoformat(),
            "to_end": new_end.isoformat(),
            "by_staff": staff,
            **({"series_id": booking.series_id} if booking.series_id is not None else {}),
        },
    )
    _forget_reminders(booking)
    notify.booking_event(booking, "moved_pending" if status == BookingStatus.PENDING else "moved")
    # what the new time no longer covers goes to whoever waits for it
    signals.time_freed.send(booking, start=old_start, end=old_end)
    db.session.flush()
    return booking


def _flush_or_conflict(booking: Booking) -> None:
    """Write the new times. On PostgreSQL the exclusion constraint is the last line
    of defence, as for an insert: a violation is the same 409, never a 500."""
    if is_sqlite():
        db.session.flush()
        return
    try:
        with db.session.begin_nested():
            db.session.flush()
    except IntegrityError as exc:
        if getattr(exc.orig, "sqlstate", None) == "23P01":
            raise SlotTaken(_l("This time has just been booked by someone else.")) from exc
        raise


def _forget_reminders(booking: Booking) -> None:
    """Reminders follow the new time: the job's markers of this booking go, the
    reminders not yet taken for sending are deleted (they were for the old time), and
    those taken or sent keep their rows under a key of their own (which the sender
    reads as "for the old time", ``notify.reminder_applies``), so the job sends once
    more, relative to the new start."""
    prefix = f"reminder:{booking.id}:"
    notify.drop_unsent_reminders([booking.id])
    db.session.execute(
        delete(JobMarker)
        .where(JobMarker.key.startswith(prefix, autoescape=True))
        .execution_options(synchronize_session=False)
    )
    db.session.execute(
        update(Notification)
        .where(
            Notification.dedupe_key.startswith(prefix, autoescape=True),
            # renamed by an earlier move already: renaming again would grow the key
            # with every move, past its column
            ~Notification.dedupe_key.contains(notify.MOVED_MARK, autoescape=True),
        )
        .values(dedupe_key=Notification.dedupe_key + f"{notify.MOVED_MARK}{booking.moves}")
        .execution_options(synchronize_session=False)
    )
