"""Demo closures: public holidays of every lab, annual maintenance of a few, and
instruments under repair or away for calibration."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from labshare.demo.plan import FUTURE_DAYS, PAST_DAYS, Plan, local_at
from labshare.extensions import db
from labshare.models import Closure, ClosureKind, ResourceStatus


def _day_span(first: dt.date, days: int, tz: str) -> tuple[dt.datetime, dt.datetime]:
    return local_at(first, dt.time(0), tz), local_at(
        first + dt.timedelta(days=days), dt.time(0), tz
    )


#: Fixed-date public holidays: (month, day, days, name).
HOLIDAYS = [
    (1, 1, 1, "元旦 New Year's Day"),
    (5, 1, 5, "劳动节 Labour Day"),
    (10, 1, 7, "国庆节 National Day"),
]


def add_closures(plan: Plan) -> None:
    existing = set(db.session.execute(select(Closure.resource_id, Closure.start_at)).tuples())
    first = plan.today - dt.timedelta(days=PAST_DAYS)
    last = plan.today + dt.timedelta(days=FUTURE_DAYS)
    wanted: list[Closure] = []
    for lab in plan.labs:
        tz = lab.institute.timezone
        for year in range(first.year, last.year + 1):
            for month, day, days, note in HOLIDAYS:
                start_day = dt.date(year, month, day)
                if first <= start_day <= last:
                    start, end = _day_span(start_day, days, tz)
                    wanted.append(
                        Closure(
                            resource_id=lab.id,
                            start_at=start,
                            end_at=end,
                            kind=ClosureKind.HOLIDAY,
                            note=note,
                        )
                    )
    # Annual maintenance of a few labs next week and a week ago.
    for n, lab in enumerate(plan.labs[::9]):
        offset = 8 + n if n % 2 == 0 else -(10 + n)
        start, end = _day_span(plan.today + dt.timedelta(days=offset), 2, lab.institute.timezone)
        wanted.append(
            Closure(
                resource_id=lab.id,
                start_at=start,
                end_at=end,
                kind=ClosureKind.MAINTENANCE,
                note="年度维护保养 Annual maintenance",
            )
        )
    # Instruments in maintenance are closed until further notice; a few are away for
    # calibration next fortnight.
    for n, instrument in enumerate(plan.instruments):
        tz = instrument.institute.timezone
        if instrument.status is ResourceStatus.MAINTENANCE:
            start, end = _day_span(plan.today - dt.timedelta(days=3 + n % 10), 21, tz)
            kind, note = ClosureKind.MAINTENANCE, "设备故障维修 Under repair"
        elif n % 37 == 5:
            start, end = _day_span(plan.today + dt.timedelta(days=12 + n % 5), 3, tz)
            kind, note = ClosureKind.CALIBRATION, "送上级计量机构校准 Sent out for calibration"
        else:
            continue
        wanted.append(
            Closure(resource_id=instrument.id, start_at=start, end_at=end, kind=kind, note=note)
        )
    plan.add("closure", [c for c in wanted if (c.resource_id, c.start_at) not in existing])
    db.session.flush()
