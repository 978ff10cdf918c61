"""Waitlist offers past their time pass to the next in line."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from labshare.database import begin_write
from labshare.extensions import db
from labshare.models import WaitlistEntry, WaitlistStatus
from labshare.services import waitlist
from labshare.timeutil import utcnow


def expire_waitlist_offers() -> dict[str, Any]:
    """Expire open offers whose time is up and offer each slot to the next in line;
    expire waiting entries whose slot is over. Idempotent: each expiry is a
    conditional UPDATE under the resource's lock, so a rerun or a second scheduler
    finds nothing left to expire and offers nothing twice."""
    begin_write()
    now = utcnow()
    due = list(
        db.session.scalars(
            select(WaitlistEntry.id)
            .where(
                WaitlistEntry.status == WaitlistStatus.OFFERED,
                WaitlistEntry.offer_expires_at <= now,
            )
            .order_by(WaitlistEntry.offer_expires_at, WaitlistEntry.id)
        )
    )
    expired: list[int] = []
    offered: list[int] = []
    for entry_id in due:
        passed = waitlist.expire_offer(entry_id, now)
        if passed is None:
            continue
        expired.append(entry_id)
        offered.extend(e.id for e in passed)
    stale = waitlist.expire_stale_waiting(now)
    return {"expired": len(expired), "ids": expired, "offered": offered, "stale": stale}
