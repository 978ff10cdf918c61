"""Messages to staff and admins that the scheduled jobs queue: a nudge about
requests waiting for a decision, a calibration about to expire, the monthly export.
Rendered when queued (they tell of a state at that moment, not of a booking that may
change before delivery)."""

from __future__ import annotations

from collections.abc import Sequence

from babel.dates import format_date
from flask_babel import force_locale
from flask_babel import gettext as _

from labshare.messaging.notify import (
    _booking_context,
    _digest,
    _locale_of,
    _render,
    _staff_of,
    enqueue,
    resource_name,
)
from labshare.models import Booking, Instrument, Notification, User


def pending_nudge(staff: User, bookings: Sequence[Booking]) -> Notification | None:
    """Tell one staff member about requests waiting too long for a decision."""
    locale = _locale_of(staff)
    with force_locale(locale):
        items = [_booking_context(b, locale) for b in bookings]
        subject = _("%(count)s booking requests are waiting for your decision", count=len(bookings))
        text, html = _render("pending_nudge", staff, items=items)
    return enqueue(
        staff,
        "pending_nudge",
        subject=subject,
        body_text=text,
        body_html=html,
        dedupe_key=f"nudge:{staff.id}:{_digest([b.id for b in bookings])}",
    )


def calibration_notice(instrument: Instrument, *, expired: bool) -> list[Notification]:
    """Warn the instrument's institute that its calibration expires soon (or has)."""
    queued: list[Notification] = []
    state = "expired" if expired else "expiring"
    valid_until = instrument.calibration_valid_until
    for staff in _staff_of(instrument.institute_id):
        locale = _locale_of(staff)
        name = resource_name(instrument, locale)
        with force_locale(locale):
            until = format_date(valid_until, "long", locale=locale) if valid_until else ""
            if expired:
                subject = _("Calibration expired on %(date)s: %(name)s", date=until, name=name)
            else:
                subject = _("Calibration expires on %(date)s: %(name)s", date=until, name=name)
            text, html = _render(
                "calibration_notice",
                staff,
                instrument=instrument,
                name=name,
                until=until,
                expired=expired,
            )
        note = enqueue(
            staff,
            f"calibration_{state}",
            subject=subject,
            body_text=text,
            body_html=html,
            dedupe_key=(
                f"calibration:{state}:{instrument.id}:{valid_until}:"
                f"{instrument.certificate_number or '-'}:{staff.id}"
            )[:200],
        )
        if note is not None:
            queued.append(note)
    return queued


MONTHLY_EXPORT_KIND = "monthly_export"


def monthly_export_ready(admin: User, month: str, filename: str, rows: int) -> Notification | None:
    """Tell a platform admin that last month's export is ready (the CSV is attached
    at delivery, see ``labshare.messaging.mail``)."""
    locale = _locale_of(admin)
    with force_locale(locale):
        subject = _("LabShare usage export for %(month)s", month=month)
        text, html = _render("monthly_export", admin, month=month, filename=filename, rows=rows)
    return enqueue(
        admin,
        MONTHLY_EXPORT_KIND,
        subject=subject,
        body_text=text,
        body_html=html,
        dedupe_key=f"monthly-export:{month}:{admin.id}",
    )
