"""Adding a public holiday over the bookings of one busy day, nationally: how long the
one transaction takes and how many statements it sends, for ``ask_move`` and
``cancel``; then how long rendering the bookers' messages takes (what the ``deliver``
job does later, outside the admin's transaction: the alternatives are computed then).
Everything is rolled back, so the data can be reused.

    .venv/bin/python -m bench.holiday_bench --db postgresql+psycopg://.../labshare_bench_me
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from collections import Counter
from typing import Any

from sqlalchemy import event, func, select, text

from bench.run import bench_app
from labshare.booking import holiday_admin
from labshare.extensions import db
from labshare.models import HOLDING_STATUSES, Booking, Notification


def busiest_day() -> dt.date:
    """The local day (Shanghai) from tomorrow on with the most holding bookings."""
    local_day = func.date(func.timezone("Asia/Shanghai", Booking.start_at))
    row = db.session.execute(
        select(local_day, func.count())
        .where(Booking.status.in_(HOLDING_STATUSES), Booking.start_at > func.now())
        .group_by(local_day)
        .order_by(func.count().desc())
        .limit(1)
    ).one()
    return row[0] if isinstance(row[0], dt.date) else dt.date.fromisoformat(str(row[0]))


def run(url: str, choices: list[str], region: str | None) -> None:
    app = bench_app(url)
    with app.app_context(), app.test_request_context():
        day = busiest_day()
        for choice in choices:
            sent: Counter[str] = Counter()

            def listener(_c: Any, _cur: Any, statement: str, *_a: Any) -> None:
                sent[" ".join(statement.split())[:40]] += 1  # noqa: B023

            event.listen(db.engine, "before_cursor_execute", listener)
            began = time.perf_counter()
            added = holiday_admin.add_day(
                None,
                day=day.isoformat(),
                kind="holiday",
                name="测试",
                on_bookings=choice,
                region=region,
            )
            db.session.flush()
            took = time.perf_counter() - began
            event.remove(db.engine, "before_cursor_execute", listener)
            count = sum(sent.values())
            top = sent.most_common(8)
            sent.clear()
            event.listen(db.engine, "before_cursor_execute", listener)
            began = time.perf_counter()
            notes = db.session.scalars(
                select(Notification).where(
                    Notification.kind == "closure_notice", Notification.stored_body_text.is_(None)
                )
            ).all()
            for note in notes:
                note.rendered()
            rendered = time.perf_counter() - began
            event.remove(db.engine, "before_cursor_execute", listener)
            db.session.rollback()
            print(
                f"{choice}: {day} {len(added.bookings_inside)} bookings, "
                f"{took:.1f} s, {count} statements; rendering {len(notes)} messages "
                f"later (deliver job): {rendered:.1f} s, {sum(sent.values())} statements",
                flush=True,
            )
            for head, n in top:
                print(f"   {n:6d}  {head}")
        db.session.execute(text("SELECT 1"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", required=True)
    parser.add_argument("--choice", action="append", choices=["ask_move", "cancel"])
    parser.add_argument("--region", default=None, help="a province's day (e.g. 110000)")
    args = parser.parse_args()
    run(args.db, args.choice or ["ask_move", "cancel"], args.region)


if __name__ == "__main__":
    main()
