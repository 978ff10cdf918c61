"""Campaign figures equal a naive count over the bookings and usage records.

Random histories (bookings in every status, usage records, late cancellations, edits
long after the fact) over institutes in several zones; random periods, scopes and
groupings; the scheduler's jobs run in a random order, or never. Every figure is
compared with a count written here in plain Python over the rows, and with the rows of
the XLSX and CSV exports. Also: a fresh ``seed-demo`` with no job run.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import defaultdict
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from flask import Flask
from flask_babel import force_locale
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select

from labshare.campaign import export, first_use, stats, stats_store
from labshare.campaign.stats import Period, Scope
from labshare.extensions import db
from labshare.jobs import run_job
from labshare.labels import label
from labshare.models import (
    Booking,
    BookingStatus,
    Field,
    Institute,
    Instrument,
    Lab,
    Notification,
    Resource,
    ResourceStatus,
    Role,
    ServiceType,
    UsageRecord,
)
from labshare.timeutil import set_clock
from tests import factories
from tests.helpers import naive_median_hours, naive_wait_minutes

pytestmark = pytest.mark.usefixtures("cheap_passwords")

BASE = dt.datetime(2029, 10, 1, tzinfo=dt.UTC)  # New York leaves DST on 2029-11-04
NOW = dt.datetime(2030, 2, 15, 4, 0, tzinfo=dt.UTC)
DAYS = 120
STATUSES = list(BookingStatus)
SERVICES = list(ServiceType)
MONEY = ("fees", "fees_waived")
FIELDS = (
    "bookings_total",
    "pending",
    "approved",
    "rejected",
    "cancelled",
    "completed",
    "no_show",
    "usage_minutes",
    "verification",
    "calibration",
    "testing",
    "training",
    "consultation",
    "problems_solved",
    "fees",
    "fees_waived",
)


def _world() -> dict[str, Any]:
    zones = [
        ("110000", "北京市", "Asia/Shanghai"),
        ("320000", "江苏省", "Asia/Shanghai"),
        ("650000", "新疆维吾尔自治区", "Asia/Urumqi"),
        ("990000", "测试省", "America/New_York"),
    ]
    institutes = [
        factories.make_institute(province_code=code, province=name, timezone=tz)
        for code, name, tz in zones
    ]
    institutes.append(factories.make_institute(province_code="320000", province="江苏省"))
    labs = [
        factories.make_lab(
            institute=inst, hours=factories.weekday_hours("08:00", "18:00", range(5))
        )
        for inst in institutes
    ]
    labs.append(factories.make_lab(institute=institutes[0], status=ResourceStatus.MAINTENANCE))
    labs.append(factories.make_lab(institute=institutes[1], hours=[]))
    labs.append(  # open on Sundays only
        factories.make_lab(institute=institutes[3], hours=factories.weekday_hours(days=range(6, 7)))
    )
    instruments = [factories.make_instrument(lab=labs[n % 5]) for n in range(8)]
    instruments[3].field = Field.THERMAL
    smes = [factories.make_user(Role.SME) for _ in range(5)]
    staff = factories.make_user(Role.STAFF, institute=institutes[0])
    db.session.commit()
    return {
        "institutes": institutes,
        "labs": labs,
        "instruments": instruments,
        "resources": [*labs[:5], *instruments],
        "smes": smes,
        "staff": staff,
    }


booking_st = st.fixed_dictionaries(
    {
        "resource": st.integers(0, 12),
        "day": st.integers(0, DAYS - 1),
        "slot": st.integers(0, 47),
        "length": st.integers(1, 8),
        "status": st.sampled_from(STATUSES),
        "late": st.booleans(),
        "usage": st.none()
        | st.tuples(
            st.sampled_from(SERVICES), st.integers(0, 40), st.integers(1, 300), st.booleans()
        ),
        "fee": st.integers(0, 600),
        "waiver": st.sampled_from([0, 30, 50, 100]),
        "sme": st.integers(0, 4),
        "created": st.integers(1, 900),
        "decided": st.none() | st.integers(0, 4000),
    }
)
edit_st = st.tuples(
    st.integers(0, 60), st.sampled_from(STATUSES), st.booleans(), st.booleans(), st.integers(0, 90)
)
scope_st = st.tuples(
    st.sampled_from(["all", "province", "institute", "lab", "instrument"]), st.integers(0, 40)
)


def _clear() -> None:
    db.session.rollback()
    for model in (Notification, UsageRecord, Booking):
        db.session.execute(delete(model))
    db.session.commit()


def _insert(w: dict[str, Any], rows: list[dict[str, Any]], edits: list[Any]) -> None:
    held: dict[int, list[tuple[dt.datetime, dt.datetime]]] = defaultdict(list)
    bookings: list[Booking] = []
    for r in rows:
        resource = w["resources"][r["resource"] % len(w["resources"])]
        start = BASE + dt.timedelta(days=r["day"], minutes=30 * r["slot"])
        end = start + dt.timedelta(minutes=30 * r["length"])
        status = r["status"]
        if status in (BookingStatus.PENDING, BookingStatus.APPROVED):
            if any(s < end and start < e for s, e in held[resource.id]):
                status = BookingStatus.REJECTED  # the database refuses overlapping holds
            else:
                held[resource.id].append((start, end))
        fee = Decimal(r["fee"])
        created = start - dt.timedelta(hours=r["created"])
        booking = factories.make_booking(
            resource=resource,
            user=w["smes"][r["sme"]],
            start=start,
            end=end,
            status=status,
            late_cancellation=r["late"] and status == BookingStatus.CANCELLED,
            fee=fee,
            fee_waived=(fee * r["waiver"] / 100).quantize(Decimal("0.01")),
            created_at=created,
            decided_at=None
            if r["decided"] is None
            else created + dt.timedelta(minutes=r["decided"]),
        )
        bookings.append(booking)
        if r["usage"] is not None:
            service, late_in, minutes, solved = r["usage"]
            checked_in = start + dt.timedelta(minutes=late_in, seconds=r["slot"])
            db.session.add(
                UsageRecord(
                    booking_id=booking.id,
                    checked_in_at=checked_in,
                    checked_out_at=checked_in + dt.timedelta(minutes=minutes, seconds=r["day"]),
                    service_type=service,
                    problem_solved=solved,
                    recorded_by_id=w["staff"].id,
                )
            )
    db.session.commit()
    _edit(bookings, edits)


def _edit(bookings: list[Booking], edits: list[Any], rollups: list[bool] | None = None) -> None:
    """Edits long after the fact: a status changed, a late flag set, usage removed, the
    booking moved some days (another UTC day, maybe another month); the ``rollup`` job
    runs after the edits ``rollups`` says."""
    for n, (index, status, late, drop_usage, days) in enumerate(edits):
        if not bookings:
            break
        booking = bookings[index % len(bookings)]
        if status in (BookingStatus.PENDING, BookingStatus.APPROVED):
            status = BookingStatus.COMPLETED  # never a new hold: it could overlap
        booking.status = status
        booking.late_cancellation = late and status == BookingStatus.CANCELLED
        if drop_usage and booking.usage is not None:
            db.session.delete(booking.usage)
        if days % 3 == 0:
            shift = dt.timedelta(days=days // 3 - 15, hours=days % 7)
            booking.start_at += shift
            booking.end_at += shift
            if booking.usage is not None:
                booking.usage.checked_in_at += shift
                booking.usage.checked_out_at += shift
        db.session.commit()
        if rollups is not None and n < len(rollups) and rollups[n]:
            run_job("rollup")


# -- the naive count -------------------------------------------------------------------


def _rows(w: dict[str, Any]) -> list[dict[str, Any]]:
    """Every booking as plain values, with what the naive count needs."""
    tz = {i.id: i.timezone for i in db.session.scalars(select(Institute))}
    province = {i.id: i.province_code for i in db.session.scalars(select(Institute))}
    lab_of = {i.id: i.lab_id for i in db.session.scalars(select(Instrument))}
    field = {r.id: str(r.field) for r in db.session.scalars(select(Resource))}
    usage = {u.booking_id: u for u in db.session.scalars(select(UsageRecord))}
    out = []
    for b in db.session.scalars(select(Booking)):
        u = usage.get(b.id)
        status = str(b.status)
        if status == "cancelled" and b.late_cancellation:
            status = "no_show"
        out.append(
            {
                "id": b.id,
                "resource": b.resource_id,
                "lab": lab_of.get(b.resource_id, b.resource_id),
                "instrument": b.resource_id in lab_of,
                "institute": b.institute_id,
                "province": province[b.institute_id],
                "field": field[b.resource_id],
                "company": b.company_id,
                "local_start": b.start_at.astimezone(ZoneInfo(tz[b.institute_id])),
                "local_end": b.end_at.astimezone(ZoneInfo(tz[b.institute_id])),
                "status": status,
                "raw_status": str(b.status),
                "fee": b.fee,
                "waived": b.fee_waived,
                "wait": None
                if b.decided_at is None
                else naive_wait_minutes(b.created_at, b.decided_at),
                "minutes": None
                if u is None
                else int((u.checked_out_at - u.checked_in_at).total_seconds()) // 60,
                "service": None if u is None else str(u.service_type),
                "solved": None if u is None else u.problem_solved,
            }
        )
    return out


def _in_scope(row: dict[str, Any], kind: str, target: Any) -> bool:
    if kind == "all":
        return True
    if kind == "province":
        return bool(row["province"] == target)
    if kind == "institute":
        return bool(row["institute"] == target)
    if kind == "lab":
        return bool(row["lab"] == target)
    return bool(row["resource"] == target)


def _count(rows: list[dict[str, Any]]) -> dict[str, Any]:
    c: dict[str, Any] = {f: (Decimal("0") if f in MONEY else 0) for f in FIELDS}
    for r in rows:
        c["bookings_total"] += 1
        c[r["status"]] += 1
        if r["service"] is not None:
            c["usage_minutes"] += r["minutes"]
            c[r["service"]] += 1
            c["problems_solved"] += 1 if r["solved"] else 0
        if r["status"] == "completed":
            c["fees"] += r["fee"]
            c["fees_waived"] += r["waived"]
    return c


def _group(rows: list[dict[str, Any]], key: Any) -> dict[Any, dict[str, Any]]:
    parts: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        parts[key(r)].append(r)
    return {k: _count(v) for k, v in parts.items()}


def _heat(rows: list[dict[str, Any]]) -> list[list[float]]:
    heat = [[0.0] * 24 for _ in range(7)]
    for r in rows:
        # a late cancellation's time was freed: not booked time
        if r["raw_status"] not in ("approved", "completed", "no_show"):
            continue
        t = r["local_start"]
        while t < r["local_end"]:  # the grid is 30 minutes: one half hour at a time
            heat[t.weekday()][t.hour] += 0.5
            t += dt.timedelta(minutes=30)
    return heat


# -- the test ----------------------------------------------------------------------------


def _scope(w: dict[str, Any], kind: str, n: int) -> tuple[Scope, Any]:
    if kind == "province":
        code = w["institutes"][n % len(w["institutes"])].province_code
        return Scope.province(code), code
    if kind == "institute":
        inst = w["institutes"][n % len(w["institutes"])]
        return Scope.institute(inst.id), inst.id
    if kind == "lab":
        lab = w["labs"][n % len(w["labs"])]
        return Scope.lab(lab), lab.id
    if kind == "instrument":
        instrument = w["instruments"][n % len(w["instruments"])]
        return Scope.instrument(instrument), instrument.id
    return Scope.everything(), None


def _open_labs(w: dict[str, Any], period: Period, kind: str, target: Any) -> int:
    weekdays = {(period.start + dt.timedelta(days=n)).weekday() for n in range(period.days)}
    n = 0
    for lab in db.session.scalars(select(Lab)):
        row = {
            "province": lab.institute.province_code,
            "institute": lab.institute_id,
            "lab": lab.id,
            "resource": lab.id,
        }
        if kind == "instrument" or not _in_scope(row, kind, target):
            continue
        if lab.status == ResourceStatus.AVAILABLE and any(
            p.weekday in weekdays for p in lab.opening_periods
        ):
            n += 1
    return n


def _check(w: dict[str, Any], period: Period, kind: str, n: int) -> None:
    scope, target = _scope(w, kind, n)
    everything = _rows(w)
    scoped = [r for r in everything if _in_scope(r, kind, target)]
    inside = [r for r in scoped if period.start <= r["local_start"].date() < period.end]
    expected = _count(inside)
    served = {r["company"] for r in inside if r["status"] == "completed"}
    before = {
        r["company"]
        for r in scoped
        if r["local_start"].date() < period.start and r["status"] == "completed"
    }
    waits = [r["wait"] for r in inside if r["wait"] is not None]

    figures = stats.statistics_for(period, scope)
    assert figures.counters.values == expected
    assert figures.distinct_smes == len(served)
    assert figures.new_smes == len(served - before)
    assert figures.median_decision_hours == naive_median_hours(waits)
    assert figures.shared_instruments == len(
        {r["resource"] for r in inside if r["instrument"] and r["status"] == "completed"}
    )
    assert figures.open_labs == _open_labs(w, period, kind, target)
    # The stored first days of use agree with the bookings for every company no marker
    # leaves to be counted live.
    assert first_use.differences() == []

    def values(got: dict[Any, stats.Counters]) -> dict[Any, dict[str, Any]]:
        return {k: c.values for k, c in got.items() if c["bookings_total"]}

    assert values(stats.counters_by(period, scope, "month")) == _group(
        inside, lambda r: r["local_start"].strftime("%Y-%m")
    )
    assert values(stats.counters_by(period, scope, "institute")) == _group(
        inside, lambda r: r["institute"]
    )
    by_resource = stats.counters_by(period, scope, "resource")
    assert values(by_resource) == _group(inside, lambda r: r["resource"])
    infos = stats.resources_in(Scope.everything())
    for grouping in ("field", "province"):
        merged: dict[str, stats.Counters] = defaultdict(stats.Counters)
        for rid, c in by_resource.items():
            info = infos[rid]
            merged[info.field if grouping == "field" else info.province_code].add(c)
        assert values(merged) == _group(inside, lambda r, g=grouping: r[g])
    heat = stats.utilisation(period, scope).heat
    assert heat == [[round(h, 2) for h in row] for row in _heat(inside)]
    trend_end = (period.end - dt.timedelta(days=1)).strftime("%Y-%m")
    trend = dict(stats.monthly_trend(trend_end, scope, months=3))
    first = stats.trend_period(trend_end, 3).start
    for month, c in trend.items():
        rows = [
            r
            for r in scoped
            if r["local_start"].strftime("%Y-%m") == month and r["local_start"].date() >= first
        ]
        assert c.values == _count(rows), month

    # The exports: the detail rows are exactly the period's bookings; the summary and
    # the per-institute sheet say the same figures.
    with force_locale("en"):
        buffer = io.BytesIO()
        export.write_xlsx(buffer, period, scope)
        csv_text = b"".join(export.iter_csv(period, scope)).decode("utf-8-sig")
    wb = openpyxl.load_workbook(io.BytesIO(buffer.getvalue()), read_only=True)
    detail = list(wb["Bookings"].iter_rows(values_only=True))
    csv_rows = list(csv.reader(io.StringIO(csv_text)))
    assert detail[0] == tuple(csv_rows[0])
    assert sorted(r[0] for r in detail[1:]) == sorted(r["id"] for r in inside)
    assert sorted(int(r[0]) for r in csv_rows[1:]) == sorted(r["id"] for r in inside)
    head = detail[0]
    status_col, fee_col = head.index("Status"), head.index("Fee charged")
    hours_col = head.index("Usage hours")
    with force_locale("en"):
        labels = {label(s): str(s) for s in BookingStatus} | {"Late cancellation": "no_show"}
    for rows in (detail[1:], [tuple(r) for r in csv_rows[1:]]):
        counted: dict[str, int] = defaultdict(int)
        for r in rows:
            counted[labels[r[status_col]]] += 1
        assert {k: v for k, v in counted.items() if v} == {
            s: expected[s] for s in ("pending", "approved", "rejected", "cancelled") if expected[s]
        } | {s: expected[s] for s in ("completed", "no_show") if expected[s]}
        charged = sum(Decimal(str(r[fee_col])) for r in rows)
        assert charged == expected["fees"] - expected["fees_waived"]
        assert (
            len([r for r in rows if r[hours_col] not in (None, "")])
            == sum(expected[s] for s in ("verification", "calibration", "testing", "training"))
            + expected["consultation"]
        )
    summary = {r[0]: r[1] for r in wb["Summary"].iter_rows(min_row=2, values_only=True)}
    assert summary["Bookings requested"] == expected["bookings_total"]
    assert summary["No-show"] == expected["no_show"]
    assert summary["Usage hours"] == round(expected["usage_minutes"] / 60, 2)
    assert summary["SMEs served"] == len(served)
    assert summary["New SMEs"] == len(served - before)
    assert Decimal(str(summary["Fees waived"])) == expected["fees_waived"]
    institutes = list(wb["Institutes"].iter_rows(values_only=True))
    col = institutes[0].index("Bookings requested")
    code_of = {i.id: i.code for i in w["institutes"]}
    per_institute = _group(inside, lambda r: code_of[r["institute"]])
    assert {r[0]: r[col] for r in institutes[1:] if r[col]} == {
        k: v["bookings_total"] for k, v in per_institute.items()
    }


def _run(name: str) -> None:
    if name == "rebuild":  # flask stats rebuild, or a bulk import's own rebuild
        stats_store.rebuild()
        db.session.commit()
    else:
        run_job(name)


def test_every_figure_equals_a_naive_count(app: Flask) -> None:
    set_clock(lambda: NOW)
    w = _world()

    @settings(
        max_examples=30,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(
        rows=st.lists(booking_st, max_size=30),
        edits=st.lists(edit_st, max_size=5),
        later=st.lists(edit_st, max_size=4),
        rollups=st.lists(st.booleans(), max_size=4),
        jobs=st.lists(st.sampled_from(["rollup", "complete", "no-shows", "rebuild"]), max_size=3),
        jobs_first=st.booleans(),
        first_day=st.integers(0, DAYS),
        days=st.integers(1, 75),
        whole_months=st.integers(0, 2),
        scopes=st.lists(scope_st, min_size=1, max_size=2),
    )
    def check(
        rows: list[dict[str, Any]],
        edits: list[Any],
        later: list[Any],
        rollups: list[bool],
        jobs: list[str],
        jobs_first: bool,
        first_day: int,
        days: int,
        whole_months: int,
        scopes: list[tuple[str, int]],
    ) -> None:
        _clear()
        try:
            if jobs_first:
                for name in jobs:
                    _run(name)
            _insert(w, rows, edits)
            if not jobs_first:
                for name in jobs:
                    _run(name)
            # More edits, the roll-up cleaning between some of them (or never).
            _edit(list(db.session.scalars(select(Booking).order_by(Booking.id))), later, rollups)
            start = BASE.date() + dt.timedelta(days=first_day - 2)
            period = Period(start, start + dt.timedelta(days=days))
            if whole_months:  # 1 or 2 whole local months: the stored months' path
                first = start.replace(day=1)
                end = (first + dt.timedelta(days=31 * whole_months)).replace(day=1)
                period = Period(first, end)
            for kind, n in scopes:
                _check(w, period, kind, n)
        finally:
            _clear()

    check()


def test_fresh_seed_demo_last_month_equals_the_export(app: Flask) -> None:
    """No job has ever run: last month's figures are the export's rows."""
    set_clock(lambda: NOW)
    result = app.test_cli_runner().invoke(args=["seed-demo"])
    assert result.exit_code == 0, result.output
    db.session.rollback()
    period = Period.month("2030-01")
    figures = stats.statistics_for(period, Scope.everything())
    assert figures.counters["bookings_total"] > 0
    with force_locale("en"):
        buffer = io.BytesIO()
        count = export.write_xlsx(buffer, period, Scope.everything())
    assert count == figures.counters["bookings_total"]
    wb = openpyxl.load_workbook(io.BytesIO(buffer.getvalue()), read_only=True)
    detail = list(wb["Bookings"].iter_rows(values_only=True))
    status_col = detail[0].index("Status")
    completed = sum(1 for r in detail[1:] if r[status_col] == "Completed")
    assert completed == figures.counters["completed"] > 0
    hours_col = detail[0].index("Usage hours")
    assert round(sum(r[hours_col] or 0 for r in detail[1:]), 2) == pytest.approx(
        figures.counters.usage_hours, abs=0.01 * figures.counters.person_times + 0.01
    )
    summary = {r[0]: r[1] for r in wb["Summary"].iter_rows(min_row=2, values_only=True)}
    assert summary["Bookings requested"] == count
    # The monthly trend of a fresh install shows the history, not a row of zeros.
    trend = stats.monthly_trend("2030-01", Scope.everything())
    assert sum(1 for _m, c in trend if c["bookings_total"]) >= 10


def test_after_a_restore_the_figures_are_the_restored_rows(app: Flask, tmp_path: Any) -> None:
    """No roll-up to redo: a restored database counts what it holds, at once."""
    set_clock(lambda: NOW)
    w = _world()
    rows = [
        {
            "resource": n,
            "day": 40 + n,
            "slot": 20,
            "length": 2,
            "status": status,
            "late": n % 2 == 0,
            "usage": (SERVICES[n % 5], 0, 60, True) if status == BookingStatus.COMPLETED else None,
            "fee": 100,
            "waiver": 50,
            "sme": n % 5,
            "created": 30,
            "decided": 10,
        }
        for n, status in enumerate(STATUSES * 2)
    ]
    _insert(w, rows, [])
    period = Period(BASE.date(), BASE.date() + dt.timedelta(days=DAYS))
    before = stats.statistics_for(period, Scope.everything())
    runner = app.test_cli_runner()
    out = tmp_path / "labshare.backup"
    assert runner.invoke(args=["backup", "--out", str(out)]).exit_code == 0
    # History changed after the backup: an old booking's outcome, a deleted booking.
    changed = db.session.scalars(select(Booking).order_by(Booking.id)).first()
    assert changed is not None
    changed.status = BookingStatus.NO_SHOW
    db.session.commit()
    assert stats.statistics_for(period, Scope.everything()).counters != before.counters
    result = runner.invoke(args=["restore", str(out), "--yes"])
    assert result.exit_code == 0, result.output
    db.session.remove()
    after = stats.statistics_for(period, Scope.everything())
    assert after.counters.values == before.counters.values
    assert (after.distinct_smes, after.new_smes) == (before.distinct_smes, before.new_smes)
    check = runner.invoke(args=["stats", "check"])
    assert check.exit_code == 0, check.output
