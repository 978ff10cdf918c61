"""Recalibration reminders: 30 days before a calibrated or verified item is due
again, one message to the company that sent it. Exactly once: the row is claimed
with ``UPDATE ... WHERE reminded_at IS NULL`` and the message's dedupe key is unique,
so a second scheduler, a rerun or a crash between the two sends nothing twice."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select, update

from labshare.database import begin_write
from labshare.extensions import db
from labshare.models import ServiceOrderItem
from labshare.orders import notices
from labshare.timeutil import utcnow

REMIND_DAYS = 30


def send_recalibration_reminders() -> dict[str, Any]:
    begin_write()
    now = utcnow()
    # One day's slack for the zones east of UTC; the due date is the institute's.
    horizon = (now + dt.timedelta(days=REMIND_DAYS + 1)).date()
    due = list(
        db.session.scalars(
            select(ServiceOrderItem.id)
            .where(
                ServiceOrderItem.due_date.is_not(None),
                ServiceOrderItem.due_date <= horizon,
                ServiceOrderItem.reminded_at.is_(None),
            )
            .order_by(ServiceOrderItem.due_date, ServiceOrderItem.id)
        )
    )
    sent: list[int] = []
    for item_id in due:
        claimed = db.session.execute(
            update(ServiceOrderItem)
            .where(ServiceOrderItem.id == item_id, ServiceOrderItem.reminded_at.is_(None))
            .values(reminded_at=now)
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            continue
        item = db.session.get(ServiceOrderItem, item_id)
        assert item is not None
        if notices.recalibration_reminder(item) is not None:
            sent.append(item_id)
    return {"reminded": sent}
