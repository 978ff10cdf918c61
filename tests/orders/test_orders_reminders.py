"""Recalibration reminders: 30 days before an item is due again, once, by mail and
in-app, with a link to order the same items again, even with two schedulers racing."""

from __future__ import annotations

import datetime as dt
import multiprocessing
from types import SimpleNamespace
from typing import Any

from sqlalchemy import func, select

from labshare.extensions import db
from labshare.jobs import JOBS, run_job
from labshare.models import Notification, ServiceOrderItem
from labshare.timeutil import set_clock
from tests.factories import completed_order
from tests.jobsutil import (
    SmtpServer,
    run_jobs_in_child,
)


def _reminders() -> int:
    return int(
        db.session.scalar(
            select(func.count(Notification.id)).where(Notification.kind == "recalibration_reminder")
        )
        or 0
    )


def test_job_is_registered() -> None:
    assert "recalibration-reminders" in JOBS


def test_reminded_once_30_days_before_due(app: Any, env: SimpleNamespace) -> None:
    order = completed_order(env)
    calibrated = order.items[0]
    assert calibrated.due_date == dt.date(2031, 1, 1)
    assert order.items[1].due_date is None  # testing: no interval
    set_clock(lambda: dt.datetime(2030, 11, 20, tzinfo=dt.UTC))  # 42 days before
    run_job("recalibration-reminders")
    assert _reminders() == 0
    set_clock(lambda: dt.datetime(2030, 12, 2, tzinfo=dt.UTC))  # 30 days before
    assert run_job("recalibration-reminders")["reminded"] == [calibrated.id]
    run_job("recalibration-reminders")
    set_clock(lambda: dt.datetime(2030, 12, 20, tzinfo=dt.UTC))
    run_job("recalibration-reminders")
    assert _reminders() == 1
    note = db.session.scalars(
        select(Notification).where(Notification.kind == "recalibration_reminder")
    ).one()
    assert note.user_id == env.sme.id
    assert f"/orders/new?again={order.id}" in note.body_text
    assert "2031-01-01" in note.subject


def test_two_schedulers_racing_send_one_mail(
    app: Any, env: SimpleNamespace, smtp: SmtpServer, tmp_path: Any
) -> None:
    orders = [completed_order(env) for _ in range(3)]
    due_ids = {o.items[0].id for o in orders}
    email = env.sme.email
    db.session.remove()
    ctx = multiprocessing.get_context("spawn")
    args = (
        app.config["SQLALCHEMY_DATABASE_URI"],
        str(tmp_path),
        smtp.port,
        dt.datetime(2030, 12, 5, tzinfo=dt.UTC).isoformat(),
        ["recalibration-reminders", "deliver"],
        3,
    )
    procs = [ctx.Process(target=run_jobs_in_child, args=args) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=180)
        assert p.exitcode == 0
    reminders = [m for m in smtp.messages if "recalibration" in str(m["Subject"])]
    assert len(reminders) == len(due_ids)
    assert all(m["To"] == email for m in reminders)
    db.session.rollback()
    assert _reminders() == len(due_ids)
    reminded = db.session.scalars(
        select(ServiceOrderItem.id).where(ServiceOrderItem.reminded_at.is_not(None))
    ).all()
    assert set(reminded) == due_ids


def test_in_app_notifications_link_to_the_order(app: Any, env: SimpleNamespace) -> None:
    from tests.helpers import signed_in

    order = completed_order(env)
    set_clock(lambda: dt.datetime(2030, 12, 2, tzinfo=dt.UTC))
    run_job("recalibration-reminders")
    page = signed_in(app, env.sme).get("/notifications").get_data(as_text=True)
    assert f'href="/orders/{order.id}"' in page
    assert f'href="/orders/new?again={order.id}"' in page
