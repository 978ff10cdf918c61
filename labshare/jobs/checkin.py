"""Auto-release: approved bookings of resources that require
check-in, nobody checked into ``checkin_release_minutes`` after the start, become
no-shows and their time goes to the waitlist. Idempotent: the transition is a
conditional UPDATE (see ``booking.bookings.mark_no_show``). One resource at a
time, under its lock, in a short transaction each (``units.per_resource``)."""

from __future__ import annotations

from typing import Any

from labshare.booking.policies.checkin import due_for_release, release_unchecked
from labshare.database import begin_write
from labshare.jobs.units import per_resource
from labshare.timeutil import utcnow


def release_unchecked_bookings() -> dict[str, Any]:
    begin_write()
    now = utcnow()
    resource_ids = {booking.resource_id for booking, _window in due_for_release(now)}
    changed = per_resource(
        resource_ids,
        lambda resource_id: release_unchecked(now, resource_id=resource_id),
        what="checkin-release",
    )
    return {"released": len(changed), "ids": changed}
