"""`flask seed-demo`: enough realistic data, every booking where a booking may be,
and a second run that adds nothing."""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from decimal import Decimal

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import aliased

from labshare.accounts.credit_code import validate_credit_code
from labshare.booking.rules import effective_rules, on_grid
from labshare.demo import catalogue
from labshare.extensions import db
from labshare.models import (
    HOLDING_STATUSES,
    Base,
    Booking,
    BookingStatus,
    Closure,
    Company,
    Field,
    Institute,
    InstituteKind,
    Instrument,
    Lab,
    Resource,
    ResourceKind,
    ResourceStatus,
    Role,
    ServiceType,
    UsageRecord,
    User,
)
from labshare.timeutil import set_clock, to_local
from tests import factories
from tests.helpers import count_rows

NOW = dt.datetime(2026, 11, 27, 2, 30, tzinfo=dt.UTC)

# Seeds the whole demo per test (seconds each): make test runs these, make test-fast does not
pytestmark = pytest.mark.slow


@pytest.fixture
def seeded(app: Flask) -> Flask:
    set_clock(lambda: NOW)
    result = app.test_cli_runner().invoke(args=["seed-demo"])
    assert result.exit_code == 0, result.output
    db.session.rollback()
    return app


def table_counts() -> dict[str, int]:
    db.session.rollback()
    return {t.name: count_rows(t) for t in Base.metadata.sorted_tables}


def test_prints_one_login_per_role_and_they_work(app: Flask) -> None:
    set_clock(lambda: NOW)
    result = app.test_cli_runner().invoke(args=["seed-demo"])
    assert result.exit_code == 0, result.output
    db.session.rollback()
    for role, email in [
        (Role.ADMIN, "admin@labshare.demo"),
        (Role.STAFF, "staff@nim.labshare.demo"),
        (Role.SME, "sme@labshare.demo"),
    ]:
        assert email in result.output
        account = db.session.scalar(select(User).where(User.email == email))
        assert account is not None and account.role is role and account.active
        assert account.check_password(catalogue.DEMO_PASSWORD)
    assert catalogue.DEMO_PASSWORD in result.output
    assert len(catalogue.DEMO_PASSWORD) >= 10


def test_institutes_labs_instruments(seeded: Flask) -> None:
    institutes = db.session.scalars(select(Institute)).all()
    assert len(institutes) >= 8
    assert len({i.province_code for i in institutes}) >= 4
    assert {i.kind for i in institutes} >= {
        InstituteKind.NATIONAL,
        InstituteKind.PROVINCIAL,
        InstituteKind.MUNICIPAL,
        InstituteKind.INDUSTRY_CENTRE,
    }
    assert all(i.timezone == "Asia/Shanghai" and i.name and i.name_en for i in institutes)

    labs = db.session.scalars(select(Lab)).all()
    assert 35 <= len(labs) <= 45
    assert all(1 <= lab.capacity <= 3 and lab.opening_periods for lab in labs)
    assert any(p.weekday == 5 for lab in labs for p in lab.opening_periods)
    rules = [effective_rules(lab) for lab in labs]
    assert any(not r.requires_approval for r in rules) and any(r.requires_approval for r in rules)
    assert {r.slot_minutes for r in rules} == {30, 60}
    assert all(r.lead_time_hours == 24 and 60 <= r.horizon_days <= 90 for r in rules)

    instruments = db.session.scalars(select(Instrument)).all()
    assert len(instruments) >= 300
    assert {i.field for i in instruments} == set(Field)
    assert len({i.asset_number for i in instruments}) == len(instruments)
    for i in instruments:
        assert i.model and i.manufacturer and i.serial_number and i.certificate_number
        assert i.range_min <= i.range_max and i.unit and i.accuracy
        assert i.range_min_base is not None and i.range_max_base is not None
        assert 30 <= i.fee_waiver_percent <= 100 and i.fee_per_hour > 0
    today = NOW.date()
    valid = [i.calibration_valid_until for i in instruments]
    assert all(v is not None for v in valid)
    expired = [v for v in valid if v is not None and v < today]
    expiring = [v for v in valid if v is not None and today <= v <= today + dt.timedelta(30)]
    assert 5 <= len(expired) <= len(instruments) // 5
    assert len(expiring) >= 5
    statuses = Counter(i.status for i in instruments)
    assert statuses[ResourceStatus.MAINTENANCE] >= 3
    assert 1 <= statuses[ResourceStatus.RETIRED] <= 2
    assert statuses[ResourceStatus.AVAILABLE] > len(instruments) * 0.8
    # The reference capability survives: a CMM of 0..1200 mm, a pressure calibrator in MPa.
    cmm = next(i for i in instruments if i.name_en == "Coordinate measuring machine")
    assert (cmm.unit, cmm.range_max, cmm.range_max_base) == ("mm", 1200, pytest.approx(1.2))
    kinds = {c.kind for c in db.session.scalars(select(Closure))}
    assert {"holiday", "maintenance"} <= {str(k) for k in kinds}


def test_companies_and_accounts(seeded: Flask) -> None:
    companies = db.session.scalars(select(Company)).all()
    assert len(companies) >= 45
    for company in companies:
        assert validate_credit_code(company.credit_code) == company.credit_code
        assert company.name.endswith("有限公司") and company.province and company.size
    assert len({c.province for c in companies}) >= 6
    assert len({c.industry for c in companies}) >= 6
    users = db.session.scalars(select(User)).all()
    by_company = Counter(u.company_id for u in users if u.role is Role.SME)
    assert set(by_company) == {c.id for c in companies}
    assert all(1 <= n <= 2 for n in by_company.values())
    staff = Counter(u.institute_id for u in users if u.role is Role.STAFF)
    assert set(staff) == {i.id for i in db.session.scalars(select(Institute))}
    assert sum(u.role is Role.ADMIN for u in users) == 1
    # Every demo company is confirmed and has exactly one administrator, so the demo
    # SME can book and manage its colleagues.
    assert all(c.status == "confirmed" for c in companies)
    admins = Counter(u.company_id for u in users if u.role is Role.SME and u.company_admin)
    assert set(admins) == {c.id for c in companies} and set(admins.values()) == {1}
    assert next(u for u in users if u.email == catalogue.SME_EMAIL).company_admin


def test_bookings_every_status_inside_the_rules(seeded: Flask) -> None:
    bookings = db.session.scalars(select(Booking)).all()
    statuses = Counter(b.status for b in bookings)
    assert set(statuses) == set(BookingStatus)
    assert all(n >= 10 for n in statuses.values()), statuses
    assert {b.resource_kind for b in bookings} == {ResourceKind.LAB, ResourceKind.INSTRUMENT}
    resources = {r.id: r for r in db.session.scalars(select(Resource))}
    closures = defaultdict(list)
    for c in db.session.scalars(select(Closure)):
        closures[c.resource_id].append((c.start_at, c.end_at))

    for b in bookings:
        resource = resources[b.resource_id]
        lab = resource.lab if isinstance(resource, Instrument) else resource
        assert isinstance(lab, Lab)
        assert b.institute_id == resource.institute_id
        assert NOW - dt.timedelta(days=366) <= b.start_at <= NOW + dt.timedelta(days=31)
        # Inside one opening period, on the slot grid, in the institute's zone.
        tz = resource.institute.timezone
        start, end = to_local(b.start_at, tz), to_local(b.end_at, tz)
        assert start.date() == end.date()
        assert any(
            p.weekday == start.weekday() and p.opens <= start.time() and end.time() <= p.closes
            for p in lab.opening_periods
        ), (b.id, start, end)
        rules = effective_rules(resource)
        assert on_grid(b.start_at, rules.slot_minutes, tz)
        assert on_grid(b.end_at, rules.slot_minutes, tz)
        assert rules.min_minutes <= (b.end_at - b.start_at).total_seconds() / 60
        # Past bookings are settled; future ones are not yet.
        if b.end_at <= NOW:
            assert b.status not in HOLDING_STATUSES
        else:
            assert b.status not in (BookingStatus.COMPLETED, BookingStatus.NO_SHOW)
        assert b.created_at <= NOW and b.created_at < b.start_at
        # Fees: hours x the hourly fee, less the SME waiver.
        hours = Decimal((b.end_at - b.start_at).total_seconds()) / 3600
        assert b.fee == (hours * resource.fee_per_hour).quantize(Decimal("0.01"))
        expected_waiver = b.fee * resource.fee_waiver_percent / 100
        assert b.fee_waived == expected_waiver.quantize(Decimal("0.01"))
        if b.status in HOLDING_STATUSES:
            for span in closures[b.resource_id] + closures[lab.id]:
                assert not (span[0] < b.end_at and b.start_at < span[1])
            if isinstance(resource, Instrument):
                assert resource.status is ResourceStatus.AVAILABLE
                assert resource.calibration_valid_until is not None
                assert end.date() <= resource.calibration_valid_until
        if b.status is BookingStatus.REJECTED:
            assert b.decided_by_id and b.decision_reason
        if b.status is BookingStatus.CANCELLED:
            assert b.cancelled_at is not None and b.cancelled_by_id == b.user_id

    usage = db.session.scalars(select(UsageRecord)).all()
    completed = {b.id for b in bookings if b.status is BookingStatus.COMPLETED}
    assert {u.booking_id for u in usage} == completed
    assert {u.service_type for u in usage} == set(ServiceType)
    assert any(u.problem_solved for u in usage) and any(not u.problem_solved for u in usage)


def test_no_two_holding_bookings_overlap(seeded: Flask) -> None:
    by_resource = defaultdict(list)
    for b in db.session.scalars(select(Booking).where(Booking.status.in_(HOLDING_STATUSES))):
        by_resource[b.resource_id].append(b)
    capacity = {lab.id: lab.capacity for lab in db.session.scalars(select(Lab))}
    for rid, bookings in by_resource.items():
        for b in bookings:
            overlapping = [o for o in bookings if o.start_at < b.end_at and b.start_at < o.end_at]
            assert len(overlapping) <= capacity.get(rid, 1)
    # The same, asked of the database: no overlapping pair on an instrument.
    other = aliased(Booking)
    pairs = db.session.scalar(
        select(func.count())
        .select_from(Booking)
        .join(
            other,
            (other.resource_id == Booking.resource_id)
            & (other.id > Booking.id)
            & (other.start_at < Booking.end_at)
            & (Booking.start_at < other.end_at),
        )
        .where(
            Booking.resource_kind == ResourceKind.INSTRUMENT,
            Booking.status.in_(HOLDING_STATUSES),
            other.status.in_(HOLDING_STATUSES),
        )
    )
    assert pairs == 0


def test_second_run_adds_nothing(seeded: Flask) -> None:
    before = table_counts()
    assert before["booking"] > 0
    result = seeded.test_cli_runner().invoke(args=["seed-demo"])
    assert result.exit_code == 0, result.output
    assert "nothing added" in result.output
    assert table_counts() == before


def test_second_run_a_week_later_adds_nothing(seeded: Flask) -> None:
    before = table_counts()
    set_clock(lambda: NOW + dt.timedelta(days=7))
    result = seeded.test_cli_runner().invoke(args=["seed-demo"])
    assert result.exit_code == 0, result.output
    assert table_counts() == before


def test_missing_part_is_filled_in(seeded: Flask) -> None:
    before = table_counts()
    admin = db.session.scalar(select(User).where(User.email == "admin@labshare.demo"))
    db.session.delete(admin)
    db.session.commit()
    result = seeded.test_cli_runner().invoke(args=["seed-demo"])
    assert result.exit_code == 0, result.output
    assert "1 user_account" in result.output
    assert table_counts() == before


def test_if_empty_skips_a_database_with_an_institute(app: Flask) -> None:
    factories.make_institute(code="OWN")
    db.session.commit()
    before = table_counts()
    result = app.test_cli_runner().invoke(args=["seed-demo", "--if-empty"])
    assert result.exit_code == 0, result.output
    assert "not loaded" in result.output
    assert table_counts() == before


def test_if_empty_seeds_an_empty_database(app: Flask) -> None:
    set_clock(lambda: NOW)
    result = app.test_cli_runner().invoke(args=["seed-demo", "--if-empty"])
    assert result.exit_code == 0, result.output
    db.session.rollback()
    assert count_rows(Institute) >= 8
