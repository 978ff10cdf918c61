"""Helpers shared by the tests of moving a booking (this module holds no tests)."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

from sqlalchemy import select

from labshare.extensions import db as _db
from labshare.models import (
    AuditLog,
    Booking,
    BookingRules,
    BookingStatus,
    Role,
)
from labshare.timeutil import set_clock
from tests import factories
from tests.helpers import NOW, bearer

UTC = dt.UTC
#: Thursday 2030-01-03 10:00-11:00 in Shanghai (02:00-03:00 UTC)
OLD_START = dt.datetime(2030, 1, 3, 2, 0, tzinfo=UTC)
AUTO = {
    "slot_minutes": 30,
    "min_minutes": 30,
    "max_minutes": 480,
    "lead_time_hours": 24,
    "horizon_days": 90,
    "requires_approval": False,
    "max_active_per_company": 5,
    "cancel_deadline_hours": 24,
}


def make_env() -> SimpleNamespace:
    """An auto-approving instrument, a company of two members, another company, the
    institute's staff, another institute's staff and an admin; the clock at NOW."""
    set_clock(lambda: NOW)
    inst = factories.make_instrument(rules=AUTO)
    sme = factories.make_user(Role.SME)
    colleague = factories.make_user(Role.SME, company=sme.company)
    other_sme = factories.make_user(Role.SME)
    staff = factories.make_user(Role.STAFF, institute=inst.institute)
    other_staff = factories.make_user(Role.STAFF, institute=factories.make_institute())
    admin = factories.make_user(Role.ADMIN)
    _db.session.commit()
    return SimpleNamespace(**locals())


def book(env: SimpleNamespace, make_booking: Any, db: Any, **kw: Any) -> Booking:
    kw.setdefault("start", OLD_START)
    kw.setdefault("end", kw["start"] + dt.timedelta(hours=1))
    kw.setdefault("user", env.sme)
    kw.setdefault("status", BookingStatus.APPROVED)
    kw.setdefault("resource", env.inst)
    booking = make_booking(**kw)
    db.session.commit()
    return booking


def post_move(client: Any, user: Any, booking_id: int, start: Any, end: Any, **kw: Any) -> Any:
    body: dict[str, Any] = {}
    if start is not None:
        body["start"] = start
    if end is not None:
        body["end"] = end
    return client.post(
        f"/api/v1/bookings/{booking_id}/move", json=body, headers={**bearer(user), **kw}
    )


def local(day: int, hour: int, minute: int = 0) -> str:
    return f"2030-01-{day:02d}T{hour:02d}:{minute:02d}:00+08:00"


def times(db: Any, booking_id: int) -> tuple[dt.datetime, dt.datetime, str]:
    db.session.expire_all()
    b = db.session.get(Booking, booking_id)
    return b.start_at, b.end_at, str(b.status)


def audit_moves(db: Any, booking_id: int) -> list[AuditLog]:
    return list(
        db.session.scalars(
            select(AuditLog).where(
                AuditLog.action == "booking.move", AuditLog.object_id == booking_id
            )
        )
    )


def _rules(env: SimpleNamespace, db: Any, **values: Any) -> None:
    rules = db.session.scalar(select(BookingRules).where(BookingRules.resource_id == env.inst.id))
    for key, value in values.items():
        setattr(rules, key, value)
    db.session.commit()


def _require_approval(env: SimpleNamespace, db: Any) -> None:
    rules = db.session.scalar(select(BookingRules).where(BookingRules.resource_id == env.inst.id))
    rules.requires_approval = True
    db.session.commit()
