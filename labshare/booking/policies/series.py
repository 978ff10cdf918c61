"""A series once made: who sees it, its bookings, the overview of My bookings, and
the whole-series moves (approve, reject, cancel every occurrence that can move,
each through the engine's single-booking transition). Nothing here commits."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from flask_babel import lazy_gettext as _l
from sqlalchemy import case, func, select

from labshare.booking.bookings import (
    REASON_MAX,
    approve_booking,
    cancel_booking,
    lock_resources,
    reject_booking,
)
from labshare.booking.permissions import (
    can_view_tenant,
    is_member_of_company,
    is_staff_of,
    visible_series,
)
from labshare.errors import (
    DomainError,
    InvalidTransition,
    NotAllowed,
    NotFound,
    RuleViolation,
    SlotTaken,
    ValidationFailed,
)
from labshare.extensions import db
from labshare.messaging import notify
from labshare.models import (
    HOLDING_STATUSES,
    Booking,
    BookingSeries,
    BookingStatus,
    User,
)
from labshare.ops import audit

# -- reading and tenancy ------------------------------------------------------------------


def can_view_series(user: User, series: BookingSeries) -> bool:
    return can_view_tenant(user, institute_id=series.institute_id, company_id=series.company_id)


def get_series(series_id: int, user: User) -> BookingSeries:
    """The series, or NotFound when it does not exist or ``user`` may not see it."""
    series = db.session.get(BookingSeries, series_id)
    if series is None or not can_view_series(user, series):
        raise NotFound(_l("No such series."))
    return series


def series_bookings(series: BookingSeries) -> list[Booking]:
    return list(
        db.session.scalars(
            select(Booking)
            .where(Booking.series_id == series.id)
            .order_by(Booking.start_at, Booking.id)
        ).unique()
    )


@dataclass(frozen=True)
class SeriesSummary:
    """A series with its number of occurrences and how many are still active
    (pending or approved, and not over yet)."""

    series: BookingSeries
    occurrences: int
    active: int


def series_overview(user: User, now: dt.datetime, *, limit: int) -> tuple[list[SeriesSummary], int]:
    """The series ``user`` may see (an SME member: their company's), those with
    active occurrences first, then newest first; at most ``limit``, and how many
    there are in all."""
    scope = visible_series(user)
    total = int(db.session.scalar(select(func.count(BookingSeries.id)).where(scope)) or 0)
    if total == 0:
        return [], 0
    of_series = Booking.series_id == BookingSeries.id
    occurrences = (
        select(func.count(Booking.id)).where(of_series).correlate(BookingSeries).scalar_subquery()
    )
    active = (
        select(
            func.coalesce(
                func.sum(
                    case(
                        (Booking.status.in_(HOLDING_STATUSES) & (Booking.end_at > now), 1),
                        else_=0,
                    )
                ),
                0,
            )
        )
        .where(of_series)
        .correlate(BookingSeries)
        .scalar_subquery()
    )
    rows = db.session.execute(
        select(BookingSeries, occurrences.label("occurrences"), active.label("active"))
        .where(scope)
        .order_by(
            case((active > 0, 0), else_=1),
            BookingSeries.created_at.desc(),
            BookingSeries.id.desc(),
        )
        .limit(limit)
    ).unique()
    return [
        SeriesSummary(series=series, occurrences=int(n or 0), active=int(a or 0))
        for series, n, a in rows
    ], total


# -- whole-series transitions -------------------------------------------------------------


@dataclass
class SeriesOutcome:
    """What a whole-series transition did: ``changed`` bookings, and ``skipped``
    ones (in a state that allowed it, refused by a rule: booking and error).
    Bookings in other states are left alone."""

    series: BookingSeries
    changed: list[Booking]
    skipped: list[tuple[Booking, DomainError]]


def _each(
    series: BookingSeries,
    actor: User,
    action: str,
    eligible: frozenset[BookingStatus],
    step: Callable[[Booking], object],
    reason: str | None = None,
) -> SeriesOutcome:
    """Apply ``step`` to every occurrence in an ``eligible`` state, each in a
    savepoint (a refused one leaves the transaction usable), under the resource's
    lock taken once; one message per event. Refuses when nothing changed."""
    lock_resources([series.resource_id])
    changed: list[Booking] = []
    skipped: list[tuple[Booking, DomainError]] = []
    with notify.collect_booking_events() as events:
        for booking in series_bookings(series):
            if BookingStatus(booking.status) not in eligible:
                continue
            try:
                with db.session.begin_nested():
                    step(booking)
            except (RuleViolation, SlotTaken, InvalidTransition) as exc:
                db.session.refresh(booking)
                skipped.append((booking, exc))
                continue
            changed.append(booking)
    if not changed:
        if skipped:
            first = skipped[0][1]
            first.details = {
                **first.details,
                "occurrences": [
                    {"booking_id": b.id, "code": e.code, "rule": e.rule, "message": str(e.message)}
                    for b, e in skipped
                ],
            }
            raise first
        raise InvalidTransition(_l("No occurrence of this series is in a state that allows this."))
    audit.record(
        action,
        series,
        actor=actor,
        reason=reason,
        data={"changed": [b.id for b in changed], "skipped": [b.id for b, _e in skipped]},
    )
    notify.series_event(series, events)
    return SeriesOutcome(series, changed, skipped)


def _authorize_staff(actor: User, series: BookingSeries) -> None:
    if not can_view_series(actor, series):
        raise NotFound(_l("No such series."))
    if not is_staff_of(actor, series.institute_id):
        raise NotAllowed(_l("Only staff of the booking's institute can do this."))


def approve_series(series: BookingSeries, actor: User) -> SeriesOutcome:
    """Approve every pending occurrence (each re-checked as a single approval is;
    those refused stay pending and are reported)."""
    _authorize_staff(actor, series)
    return _each(
        series,
        actor,
        "series.approve",
        frozenset({BookingStatus.PENDING}),
        lambda b: approve_booking(b, actor),
    )


def reject_series(series: BookingSeries, actor: User, reason: str) -> SeriesOutcome:
    """Reject every pending occurrence, with one reason."""
    _authorize_staff(actor, series)
    text = (reason or "").strip()
    if not text:
        raise ValidationFailed(_l("This field is required."), field="reason")
    if len(text) > REASON_MAX:
        raise ValidationFailed(
            _l("At most %(n)d characters are allowed.", n=REASON_MAX), field="reason"
        )
    return _each(
        series,
        actor,
        "series.reject",
        frozenset({BookingStatus.PENDING}),
        lambda b: reject_booking(b, actor, text),
        reason=text,
    )


def cancel_series(series: BookingSeries, actor: User, reason: str | None = None) -> SeriesOutcome:
    """Cancel every pending or approved occurrence: by the series' company (each
    occurrence before its own cancellation deadline; later ones are left alone and
    reported) or the institute's staff."""
    if not can_view_series(actor, series):
        raise NotFound(_l("No such series."))
    if not (
        is_staff_of(actor, series.institute_id) or is_member_of_company(actor, series.company_id)
    ):
        raise NotAllowed(_l("Only the booking's company or its institute's staff can cancel it."))
    text = (reason or "").strip() or None
    if text is not None and len(text) > REASON_MAX:
        raise ValidationFailed(
            _l("At most %(n)d characters are allowed.", n=REASON_MAX), field="reason"
        )
    return _each(
        series,
        actor,
        "series.cancel",
        frozenset({BookingStatus.PENDING, BookingStatus.APPROVED}),
        lambda b: cancel_booking(b, actor, text),
        reason=text,
    )
