"""Pages for SME members: the week calendar, the booking form, My bookings and the
in-app notifications."""

from labshare.bookings import checkin as _checkin  # noqa: F401  (check-in: routes)
from labshare.bookings import group_views as _groups  # noqa: F401  (booking groups)
from labshare.bookings import series as _series  # noqa: F401  (recurrence: routes)
from labshare.bookings import waitlist_views as _waitlist  # noqa: F401  (waitlist: routes)
from labshare.bookings.notifications import bp as notifications_bp
from labshare.bookings.views import bp

__all__ = ["bp", "notifications_bp"]
