"""Auto-release (issue 8, check-in): approved bookings of resources that require
check-in, nobody checked into ``checkin_release_minutes`` after the start, become
no-shows and their time goes to the waitlist. Idempotent: the transition is a
conditional UPDATE (see ``services.bookings.mark_no_show``)."""

from __future__ import annotations

from typing import Any

from labshare.database import begin_write
from labshare.services.checkin import release_unchecked


def release_unchecked_bookings() -> dict[str, Any]:
    begin_write()
    changed = release_unchecked()
    return {"released": len(changed), "ids": changed}
