"""Pages for SME members: the week calendar, the booking form, My bookings and the
in-app notifications."""

from flask import Blueprint

bp = Blueprint("bookings", __name__)

# Routes register on import.
from labshare.web.bookings import (  # noqa: E402,F401
    checkin,
    group_views,
    move_views,
    series,
    views,
    waitlist_views,
)
from labshare.web.bookings.notifications import bp as notifications_bp  # noqa: E402

__all__ = ["bp", "notifications_bp"]
