"""Pages for SME members: the week calendar, the booking form, My bookings and the
in-app notifications."""

from labshare.web.bookings import checkin as _checkin  # noqa: F401  (check-in: routes)
from labshare.web.bookings import group_views as _groups  # noqa: F401  (booking groups)
from labshare.web.bookings import move_views as _move  # noqa: F401  (moving a booking)
from labshare.web.bookings import series as _series  # noqa: F401  (recurrence: routes)
from labshare.web.bookings import waitlist_views as _waitlist  # noqa: F401  (waitlist: routes)
from labshare.web.bookings.notifications import bp as notifications_bp
from labshare.web.bookings.views import bp

__all__ = ["bp", "notifications_bp"]
