"""Waitlist offers past their time pass to the next in line."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from labshare.booking.policies import waitlist
from labshare.database import begin_write
from labshare.extensions import db
from labshare.jobs.units import per_resource
from labshare.models import WaitlistEntry, WaitlistStatus
from labshare.timeutil import utcnow


def expire_waitlist_offers() -> dict[str, Any]:
    """Expire open offers whose time is up and offer each slot to the next in line;
    expire waiting entries whose slot is over. One resource at a time, under its
    lock, in a short transaction each (``units.per_resource``). Idempotent: each
    expiry is a conditional UPDATE under the resource's lock, so a rerun or a second
    scheduler finds nothing left to expire and offers nothing twice."""
    begin_write()
    now = utcnow()
    offered_due = (
        WaitlistEntry.status == WaitlistStatus.OFFERED,
        WaitlistEntry.offer_expires_at <= now,
    )
    stale_due = (WaitlistEntry.status == WaitlistStatus.WAITING, WaitlistEntry.end_at <= now)
    resource_ids = set(
        db.session.scalars(select(WaitlistEntry.resource_id).where(*offered_due).distinct())
    ) | set(db.session.scalars(select(WaitlistEntry.resource_id).where(*stale_due).distinct()))

    def work(resource_id: int) -> list[tuple[str, int]]:
        """("expired" | "offered", entry id) and ("stale", count) of one resource."""
        due = list(
            db.session.scalars(
                select(WaitlistEntry.id)
                .where(WaitlistEntry.resource_id == resource_id, *offered_due)
                .order_by(WaitlistEntry.offer_expires_at, WaitlistEntry.id)
            )
        )
        out: list[tuple[str, int]] = []
        for entry_id in due:
            passed = waitlist.expire_offer(entry_id, now)
            if passed is None:
                continue
            out.append(("expired", entry_id))
            out.extend(("offered", e.id) for e in passed)
        out.append(("stale", waitlist.expire_stale_waiting(now, resource_id=resource_id)))
        return out

    done = per_resource(resource_ids, work, what="waitlist-offers")
    expired = [n for kind, n in done if kind == "expired"]
    offered = [n for kind, n in done if kind == "offered"]
    stale = sum(n for kind, n in done if kind == "stale")
    return {"expired": len(expired), "ids": expired, "offered": offered, "stale": stale}
