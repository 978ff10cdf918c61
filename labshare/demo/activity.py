"""Demo bookings over a year of history and the next month, with the usage
records of completed ones and the qualifications they imply."""

from __future__ import annotations

import datetime as dt
import random
from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal

from sqlalchemy import select

from labshare.demo import catalogue as cat
from labshare.demo.plan import (
    CENT,
    DEMO_ZONE,
    FUTURE_DAYS,
    PAST_DAYS,
    RECENT_DAYS,
    Plan,
    local_at,
    money,
)
from labshare.extensions import db
from labshare.models import (
    Booking,
    BookingRules,
    BookingStatus,
    Closure,
    Company,
    Institute,
    Instrument,
    Lab,
    Qualification,
    Resource,
    ResourceKind,
    ResourceStatus,
    ServiceType,
    UsageRecord,
    User,
)


def demo_bookings_exist() -> bool:
    query = (
        select(Booking.id)
        .join(User, User.id == Booking.user_id)
        .where(User.email.like(f"%{cat.DEMO_EMAIL_SUFFIX}"))
        .limit(1)
    )
    return db.session.scalar(query) is not None


def _closed_spans(resource_ids: Iterable[int]) -> dict[int, list[tuple[dt.datetime, dt.datetime]]]:
    spans: dict[int, list[tuple[dt.datetime, dt.datetime]]] = defaultdict(list)
    rows = db.session.execute(
        select(Closure.resource_id, Closure.start_at, Closure.end_at).where(
            Closure.resource_id.in_(list(resource_ids))
        )
    )
    for rid, start, end in rows:
        spans[rid].append((start, end))
    return spans


def _rules_by_resource() -> dict[int, BookingRules]:
    return {r.resource_id: r for r in db.session.scalars(select(BookingRules))}


def _past_status(rng: random.Random) -> BookingStatus:
    return rng.choices(
        [
            BookingStatus.COMPLETED,
            BookingStatus.NO_SHOW,
            BookingStatus.CANCELLED,
            BookingStatus.REJECTED,
        ],
        weights=[70, 8, 12, 10],
    )[0]


def _future_status(rng: random.Random) -> BookingStatus:
    return rng.choices(
        [
            BookingStatus.PENDING,
            BookingStatus.APPROVED,
            BookingStatus.CANCELLED,
            BookingStatus.REJECTED,
        ],
        weights=[35, 45, 12, 8],
    )[0]


def add_bookings(plan: Plan) -> None:
    resources: list[Resource] = [
        *plan.labs,
        *(i for i in plan.instruments if i.status is ResourceStatus.AVAILABLE),
    ]
    lab_of = {lab.id: lab for lab in plan.labs}
    closed = _closed_spans([r.id for r in resources])
    rules = _rules_by_resource()
    first = plan.today - dt.timedelta(days=PAST_DAYS)
    window = local_at(first, dt.time(0), DEMO_ZONE) - dt.timedelta(days=1)
    taken: dict[int, list[tuple[dt.datetime, dt.datetime]]] = defaultdict(list)
    keys: set[tuple[int, dt.datetime]] = set()
    for rid, start, end in db.session.execute(
        select(Booking.resource_id, Booking.start_at, Booking.end_at).where(Booking.end_at > window)
    ):
        taken[rid].append((start, end))
        keys.add((rid, start))
    companies_by_province: dict[str, list[Company]] = defaultdict(list)
    for company in plan.companies:
        companies_by_province[company.province or ""].append(company)

    bookings: list[Booking] = []
    usages: list[tuple[Booking, UsageRecord]] = []
    qualified: dict[tuple[int, int], dt.datetime] = {}
    for resource in resources:
        lab = resource.lab if isinstance(resource, Instrument) else resource
        assert isinstance(lab, Lab)
        inst = resource.institute
        tz = inst.timezone
        rule = rules.get(resource.id) or rules.get(lab.id)
        slot = rule.slot_minutes if rule else 30
        min_hours = max(1, -(-(rule.min_minutes if rule else 30) // 60))
        auto = rule is not None and not rule.requires_approval
        lead = dt.timedelta(hours=rule.lead_time_hours if rule else 24)
        rng = plan.rng("bookings", _resource_key(resource))
        chance = 0.06 if resource.id in lab_of else (0.05 if resource.fee_per_hour <= 200 else 0.03)
        periods = {(p.weekday, p.opens, p.closes) for p in lab.opening_periods}
        spans = closed.get(resource.id, []) + (
            closed.get(lab.id, []) if lab.id != resource.id else []
        )
        cutoff = None
        if isinstance(resource, Instrument) and resource.calibration_valid_until is not None:
            cutoff = local_at(
                resource.calibration_valid_until + dt.timedelta(days=1), dt.time(0), tz
            )
        staff = plan.staff_by_institute[inst.id]
        for offset in range(-PAST_DAYS, FUTURE_DAYS + 1):
            day = plan.today + dt.timedelta(days=offset)
            busy = chance if offset >= -RECENT_DAYS else chance / 3
            for weekday, opens, closes in sorted(periods):
                if weekday != day.weekday() or rng.random() >= busy:
                    continue
                hours = max(min_hours, rng.choice([1, 1, 2, 2, 3]))
                first_hour = opens.hour + (1 if opens.minute else 0)
                last_hour = closes.hour - hours
                if last_hour < first_hour:
                    continue
                hour = rng.randint(first_hour, last_hour)
                start = local_at(day, dt.time(hour), tz)
                end = start + dt.timedelta(hours=hours)
                assert (hour * 60) % slot == 0
                if start < plan.now < end or (resource.id, start) in keys:
                    continue
                if cutoff is not None and end > cutoff:
                    continue
                if any(s < end and start < e for s, e in spans + taken[resource.id]):
                    continue
                company = _pick_company(rng, inst, companies_by_province, plan.companies)
                user = rng.choice(plan.users_by_company[company.id])
                past = end <= plan.now
                status = _past_status(rng) if past else _future_status(rng)
                if auto and status in (BookingStatus.PENDING, BookingStatus.REJECTED):
                    # Auto-approved resources never leave a request to decide.
                    status = BookingStatus.COMPLETED if past else BookingStatus.APPROVED
                booking = _booking(plan, rng, resource, user, start, end, status, auto, lead, staff)
                bookings.append(booking)
                keys.add((resource.id, start))
                taken[resource.id].append((start, end))
                if status is BookingStatus.COMPLETED:
                    usages.append((booking, _usage(rng, booking, staff)))
                if resource.requires_qualification and status in (
                    BookingStatus.APPROVED,
                    BookingStatus.COMPLETED,
                    BookingStatus.NO_SHOW,
                ):
                    key = (user.id, resource.id)
                    granted = booking.created_at - dt.timedelta(days=3)
                    qualified[key] = min(granted, qualified.get(key, granted))
    plan.add("booking", bookings)
    db.session.flush()
    for booking, usage in usages:
        usage.booking_id = booking.id
    plan.add("usage_record", (u for _b, u in usages))
    existing_q = set(
        db.session.execute(select(Qualification.user_id, Qualification.resource_id)).tuples()
    )
    granted_by = {r.id: plan.staff_by_institute[r.institute_id][0].id for r in resources}
    plan.add(
        "qualification",
        (
            Qualification(
                user_id=uid, resource_id=rid, granted_by_id=granted_by[rid], granted_at=at
            )
            for (uid, rid), at in sorted(qualified.items())
            if (uid, rid) not in existing_q
        ),
    )
    db.session.flush()


def _resource_key(resource: Resource) -> str:
    if isinstance(resource, Instrument):
        return f"instrument:{resource.asset_number}"
    return f"lab:{resource.institute.code}:{resource.field}"


def _pick_company(
    rng: random.Random,
    inst: Institute,
    by_province: dict[str, list[Company]],
    everyone: list[Company],
) -> Company:
    local = by_province.get(inst.province)
    if local and rng.random() < 0.6:
        return rng.choice(local)
    return rng.choice(everyone)


def _booking(
    plan: Plan,
    rng: random.Random,
    resource: Resource,
    user: User,
    start: dt.datetime,
    end: dt.datetime,
    status: BookingStatus,
    auto: bool,
    lead: dt.timedelta,
    staff: list[User],
) -> Booking:
    hours = Decimal((end - start).total_seconds() / 3600).quantize(CENT)
    fee = money(hours * resource.fee_per_hour)
    waived = money(fee * resource.fee_waiver_percent / 100)
    created = min(
        start - lead - dt.timedelta(days=rng.randint(0, 12), hours=rng.randint(0, 20)),
        plan.now - dt.timedelta(minutes=rng.randint(30, 72 * 60)),
    )
    decider = rng.choice(staff)
    booking = Booking(
        resource_id=resource.id,
        resource_kind=ResourceKind(resource.kind),
        institute_id=resource.institute_id,
        company_id=user.company_id,
        user_id=user.id,
        start_at=start,
        end_at=end,
        status=status,
        purpose=rng.choice(cat.PURPOSES[resource.field]),
        samples=rng.choice(cat.SAMPLES),
        fee=fee,
        fee_waived=waived,
        created_at=created,
        updated_at=created,
    )
    decided = min(created + dt.timedelta(hours=rng.randint(1, 30)), plan.now, start)
    if status is BookingStatus.REJECTED:
        booking.decided_by_id = decider.id
        booking.decided_at = decided
        booking.decision_reason = rng.choice(cat.REJECT_REASONS)
    elif status is not BookingStatus.PENDING:
        was_approved = status is not BookingStatus.CANCELLED or rng.random() < 0.5
        if was_approved:
            booking.decided_by_id = None if auto else decider.id
            booking.decided_at = created if auto else decided
    if status is BookingStatus.CANCELLED:
        until = min(plan.now, start)
        booking.cancelled_by_id = user.id
        booking.cancelled_at = created + (until - created) * rng.uniform(0.2, 0.9)
    last = booking.cancelled_at or booking.decided_at or created
    if status in (BookingStatus.COMPLETED, BookingStatus.NO_SHOW):
        last = end + dt.timedelta(minutes=30)
    booking.updated_at = last
    return booking


def _usage(rng: random.Random, booking: Booking, staff: list[User]) -> UsageRecord:
    checked_in = booking.start_at + dt.timedelta(minutes=rng.randint(0, 10))
    checked_out = booking.end_at - dt.timedelta(minutes=rng.randint(0, 15))
    return UsageRecord(
        checked_in_at=checked_in,
        checked_out_at=checked_out,
        service_type=rng.choices(
            [
                ServiceType.CALIBRATION,
                ServiceType.TESTING,
                ServiceType.VERIFICATION,
                ServiceType.TRAINING,
                ServiceType.CONSULTATION,
            ],
            weights=[35, 30, 20, 8, 7],
        )[0],
        samples_count=rng.randint(1, 20),
        problem_solved=rng.random() < 0.8,
        notes=rng.choice(cat.USAGE_NOTES) or None,
        recorded_by_id=rng.choice(staff).id,
        recorded_at=checked_out + dt.timedelta(minutes=rng.randint(5, 90)),
    )
