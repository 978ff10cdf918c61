"""Realistic demo data, written idempotently.

Every row is keyed on a natural key (institute code, lab name within its
institute, instrument asset number, company credit code, user e-mail, closure and
booking by (resource, start)), so a second run adds nothing. Attributes come from
a random generator seeded per entity, so they do not depend on what the database
already holds.

Activity (closures, bookings, usage records, qualifications) is generated relative
to ``utcnow()`` and only while no demo account has a booking yet: a run on a later
day must not add a second, shifted set of bookings.

Nothing here commits; the caller (``flask seed-demo``) commits once.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import func, select
from werkzeug.security import generate_password_hash

from labshare.accounts.credit_code import USCC_ALPHABET, make_credit_code, validate_credit_code
from labshare.catalogue.capability import refresh_base_range
from labshare.demo import catalogue as cat
from labshare.errors import ValidationFailed
from labshare.extensions import db
from labshare.models import (
    Booking,
    BookingRules,
    BookingStatus,
    Closure,
    ClosureKind,
    Company,
    CompanySize,
    Field,
    Institute,
    InstituteKind,
    Instrument,
    Lab,
    OpeningPeriod,
    Qualification,
    Resource,
    ResourceKind,
    ResourceStatus,
    Role,
    ServiceOrder,
    ServiceType,
    UsageRecord,
    User,
)
from labshare.timeutil import localize, utcnow, zone

DEFAULT_SEED = 2026
DEMO_ZONE = "Asia/Shanghai"
COMPANY_COUNT = 50
#: A year of history, so a fresh install's monthly trend has twelve months to show;
#: the quarter before today is the busiest.
PAST_DAYS = 365
RECENT_DAYS = 91
FUTURE_DAYS = 30
MORNING = (dt.time(8, 30), dt.time(12, 0))
AFTERNOON = (dt.time(13, 30), dt.time(17, 30))
#: Instruments retired in the demo: (institute code, English kind name, copy).
RETIRED = {("NAMC", "Universal measuring microscope", 1), ("SXIM", "Stopwatch calibrator", 2)}
#: Institutes with a second staff member.
SECOND_STAFF = {"NIM", "SIMT", "GDIM", "JSIM"}
AREA_CODES = {
    "110000": "010",
    "310000": "021",
    "320000": "025",
    "330000": "0571",
    "350000": "0591",
    "350200": "0592",
    "370000": "0531",
    "410100": "0371",
    "420000": "027",
    "440000": "020",
    "450000": "0771",
    "610000": "029",
    "230000": "0451",
}
CENT = Decimal("0.01")


@dataclass
class SeedReport:
    skipped: bool = False
    created: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    unnormalised_units: list[str] = field(default_factory=list)
    logins: list[tuple[str, str, str]] = field(default_factory=list)


@dataclass
class _Plan:
    """State shared by the steps of one run."""

    seed: int
    now: dt.datetime
    today: dt.date
    report: SeedReport
    password_hash: str | None = None
    institutes: dict[str, Institute] = field(default_factory=dict)
    labs: list[Lab] = field(default_factory=list)
    instruments: list[Instrument] = field(default_factory=list)
    companies: list[Company] = field(default_factory=list)
    users_by_company: dict[int, list[User]] = field(default_factory=dict)
    staff_by_institute: dict[int, list[User]] = field(default_factory=dict)

    def rng(self, *key: object) -> random.Random:
        # Reproducible demo data, not secrets.
        return random.Random(":".join([str(self.seed), *map(str, key)]))  # noqa: S311

    def hash_password(self) -> str:
        if self.password_hash is None:
            # One hash for every demo account (same password): scrypt per user
            # would make the seed take tens of seconds.
            self.password_hash = generate_password_hash(cat.DEMO_PASSWORD, method="scrypt")
        return self.password_hash

    def add(self, table: str, objs: Iterable[object]) -> None:
        items = list(objs)
        db.session.add_all(items)
        self.report.created[table] += len(items)


def demo_data_present() -> bool:
    return db.session.scalar(select(func.count()).select_from(Institute)) != 0


def seed_demo(*, seed: int = DEFAULT_SEED) -> SeedReport:
    """Add whatever part of the demo data is missing. Does not commit."""
    now = utcnow()
    plan = _Plan(
        seed=seed,
        now=now,
        today=now.astimezone(zone(DEMO_ZONE)).date(),
        report=SeedReport(),
    )
    _institutes(plan)
    _labs_and_instruments(plan)
    _companies_and_users(plan)
    _staff_and_admin(plan)
    if not _demo_bookings_exist():
        _closures(plan)
        _bookings(plan)
    _service_orders(plan)
    plan.report.logins = [
        ("admin", cat.ADMIN_EMAIL, cat.DEMO_PASSWORD),
        ("staff", cat.staff_email("NIM"), cat.DEMO_PASSWORD),
        ("sme", cat.SME_EMAIL, cat.DEMO_PASSWORD),
    ]
    return plan.report


# --- institutes, labs, instruments -------------------------------------------------


def _institutes(plan: _Plan) -> None:
    existing = {i.code: i for i in db.session.scalars(select(Institute))}
    new = []
    for n, row in enumerate(cat.load_institutes(), start=1):
        inst = existing.get(row.code)
        if inst is None:
            area = AREA_CODES.get(row.province_code, "010")
            rng = plan.rng("institute", row.code)
            inst = Institute(
                code=row.code,
                name=row.name_zh,
                name_en=row.name_en,
                kind=InstituteKind(row.kind),
                province_code=row.province_code,
                province=row.province_zh,
                city=row.city_zh,
                address=f"{row.city_zh}市计量科技园 {10 + n} 号",
                contact_phone=f"{area}-{rng.randint(6000_0000, 8999_9999)}",
                contact_email=f"openlab@{row.code.lower()}.{cat.DEMO_EMAIL_SUFFIX}",
                timezone=row.timezone,
            )
            new.append(inst)
        plan.institutes[row.code] = inst
    plan.add("institute", new)
    db.session.flush()


def _money(value: float | int | Decimal) -> Decimal:
    return Decimal(str(value)).quantize(CENT, rounding=ROUND_HALF_UP)


def _opening_periods(saturday: bool) -> list[OpeningPeriod]:
    periods = [
        OpeningPeriod(weekday=day, opens=opens, closes=closes)
        for day in range(5)
        for opens, closes in (MORNING, AFTERNOON)
    ]
    if saturday:
        periods.append(OpeningPeriod(weekday=5, opens=MORNING[0], closes=MORNING[1]))
    return periods


def _labs_and_instruments(plan: _Plan) -> None:
    labs = {(lab.institute_id, lab.name): lab for lab in db.session.scalars(select(Lab))}
    instruments = {
        i.asset_number: i
        for i in db.session.scalars(select(Instrument).where(Instrument.asset_number.is_not(None)))
    }
    kinds_by_field: dict[Field, list[cat.InstrumentKind]] = defaultdict(list)
    for kind in cat.load_instrument_kinds():
        kinds_by_field[kind.field].append(kind)

    new_labs: list[Lab] = []
    new_rules: list[BookingRules] = []
    for code, fields in cat.LAB_FIELDS.items():
        inst = plan.institutes[code]
        for n, fld in enumerate(fields):
            name_zh, name_en, _abbr = cat.FIELD_NAMES[fld]
            lab = labs.get((inst.id, name_zh))
            if lab is None:
                rng = plan.rng("lab", code, fld)
                lab = Lab(
                    institute=inst,
                    name=name_zh,
                    name_en=name_en,
                    field=fld,
                    description=f"{inst.name}{name_zh}，面向中小企业开放共享。",
                    capacity=rng.choice([1, 1, 2, 2, 3]),
                    location=f"{'ABCDE'[n % 5]} 栋 {rng.randint(1, 5)}{rng.randint(1, 20):02d} 室",
                    fee_per_hour=_money(rng.choice([0, 100, 150, 200])),
                    fee_waiver_percent=rng.choice([50, 80, 100]),
                )
                lab.opening_periods = _opening_periods(saturday=rng.random() < 0.25)
                slot = rng.choice([30, 60])
                new_rules.append(
                    BookingRules(
                        resource=lab,
                        slot_minutes=slot,
                        min_minutes=slot,
                        max_minutes=240,
                        lead_time_hours=24,
                        horizon_days=rng.choice([60, 75, 90]),
                        requires_approval=rng.random() >= 0.3,
                        max_active_per_company=5,
                        cancel_deadline_hours=24,
                        # booking policies: a company that keeps not showing up
                        # has its requests approved by hand
                        no_show_approval_threshold=3,
                    )
                )
                new_labs.append(lab)
            plan.labs.append(lab)
    plan.add("lab", new_labs)
    plan.add("booking_rules", new_rules)
    db.session.flush()

    new_instruments: list[Instrument] = []
    new_rules = []
    for lab in plan.labs:
        code = lab.institute.code
        abbr = cat.FIELD_NAMES[lab.field][2]
        for k, kind in enumerate(kinds_by_field[lab.field], start=1):
            copies = 2 if kind.fee_per_hour <= 150 else 1
            for copy in range(1, copies + 1):
                asset = f"{code}-{abbr}-{k:02d}{copy}"
                instrument = instruments.get(asset)
                if instrument is None:
                    instrument = _new_instrument(plan, lab, kind, asset, copy, copies)
                    new_instruments.append(instrument)
                    if kind.fee_per_hour >= 500:
                        new_rules.append(
                            BookingRules(
                                resource=instrument,
                                slot_minutes=60,
                                min_minutes=120,
                                max_minutes=480,
                                lead_time_hours=24,
                                horizon_days=60,
                                requires_approval=True,
                                max_active_per_company=3,
                                cancel_deadline_hours=48,
                                # booking policies: warm-up between users, and a
                                # cancellation on the last day counts as a no-show
                                buffer_minutes=30,
                                late_cancel_hours=24,
                            )
                        )
                plan.instruments.append(instrument)
    plan.add("instrument", new_instruments)
    plan.add("booking_rules", new_rules)
    db.session.flush()


def _new_instrument(
    plan: _Plan, lab: Lab, kind: cat.InstrumentKind, asset: str, copy: int, copies: int
) -> Instrument:
    code = lab.institute.code
    rng = plan.rng("instrument", asset)
    manufacturer, model = rng.choice(cat.MAKERS[kind.name_en])
    roll = rng.random()
    if roll < 0.07:
        valid_until = plan.today - dt.timedelta(days=rng.randint(3, 120))
    elif roll < 0.14:
        valid_until = plan.today + dt.timedelta(days=rng.randint(2, 29))
    else:
        valid_until = plan.today + dt.timedelta(days=rng.randint(183, 540))
    if (code, kind.name_en, copy) in RETIRED:
        status = ResourceStatus.RETIRED
    elif rng.random() < 0.06:
        status = ResourceStatus.MAINTENANCE
    else:
        status = ResourceStatus.AVAILABLE
    fee = round(kind.fee_per_hour * rng.choice([0.8, 0.9, 1.0, 1.0, 1.1, 1.2]) / 10) * 10
    suffix_zh = f"（{copy}号）" if copies > 1 else ""
    suffix_en = f" No. {copy}" if copies > 1 else ""
    instrument = Instrument(
        institute_id=lab.institute_id,
        lab=lab,
        name=kind.name_zh + suffix_zh,
        name_en=kind.name_en + suffix_en,
        description=(
            f"{kind.field_zh}：{kind.name_zh}，测量范围 {kind.range_min:g}…{kind.range_max:g} "
            f"{kind.unit}，{kind.accuracy}"
        ),
        field=kind.field,
        status=status,
        requires_qualification=kind.requires_qualification,
        fee_per_hour=_money(fee),
        fee_waiver_percent=rng.choice([30, 50, 50, 50, 80, 100]),
        model=model,
        manufacturer=manufacturer,
        serial_number=f"{rng.choice('ABCDEFGHJK')}{rng.randint(10_000_000, 99_999_999)}",
        asset_number=asset,
        measurand=kind.measurand,
        unit=kind.unit,
        range_min=kind.range_min,
        range_max=kind.range_max,
        accuracy=kind.accuracy,
        calibration_valid_until=valid_until,
        certificate_number=(f"{code}JL{valid_until.year - 1}-{rng.randint(1, 99_999):05d}"),
    )
    try:
        refresh_base_range(instrument)
    except ValidationFailed:
        plan.report.unnormalised_units.append(f"{kind.unit} ({kind.measurand})")
    return instrument


# --- companies and accounts --------------------------------------------------------


def _person(rng: random.Random) -> tuple[str, str]:
    surname, surname_py = rng.choice(cat.SURNAMES)
    given, given_py = rng.choice(cat.GIVEN_NAMES)
    return surname + given, f"{given_py}.{surname_py}"


def _credit_code(rng: random.Random, division: str) -> str:
    # Codes issued since 2015 carry an organisation code beginning "MA".
    body = "MA" + "".join(rng.choice(USCC_ALPHABET) for _ in range(6))
    return validate_credit_code(make_credit_code(division, body))


def _user(
    plan: _Plan,
    email: str,
    name: str,
    role: Role,
    *,
    company: Company | None = None,
    institute: Institute | None = None,
    locale: str = "zh_CN",
) -> User:
    return User(
        email=User.normalize_email(email),
        name=name,
        password_hash=plan.hash_password(),
        role=role,
        company=company,
        institute=institute,
        locale=locale,
    )


def _companies_and_users(plan: _Plan) -> None:
    companies = {c.credit_code: c for c in db.session.scalars(select(Company))}
    users = {u.email: u for u in db.session.scalars(select(User))}
    new_companies: list[Company] = []
    new_users: list[User] = []
    wanted: list[tuple[Company, list[tuple[str, str, str]]]] = []
    for i in range(COMPANY_COUNT):
        rng = plan.rng("company", i)
        division, province, city = cat.SME_CITIES[i % len(cat.SME_CITIES)]
        brand, brand_py = cat.BRANDS[i % len(cat.BRANDS)]
        industry, suffix = rng.choice(cat.INDUSTRIES)
        code = _credit_code(rng, division)
        size = rng.choice(
            [CompanySize.MICRO, CompanySize.SMALL, CompanySize.SMALL, CompanySize.MEDIUM]
        )
        company = companies.get(code)
        if company is None:
            company = Company(
                name=f"{city}{brand}{suffix}",
                credit_code=code,
                province=province,
                industry=industry,
                size=size,
            )
            companies[code] = company
            new_companies.append(company)
        members = []
        for m in range(1 if rng.random() < 0.6 else 2):
            name, local = _person(rng)
            email = f"{local}{m or ''}@{brand_py}{i + 1:02d}.{cat.DEMO_EMAIL_SUFFIX}"
            if i == 0 and m == 0:
                email = cat.SME_EMAIL
            members.append((email, name, "en" if rng.random() < 0.15 else "zh_CN"))
        wanted.append((company, members))
    plan.add("company", new_companies)

    for company, members in wanted:
        for m, (email, name, locale) in enumerate(members):
            user = users.get(email)
            if user is None:
                user = _user(plan, email, name, Role.SME, company=company, locale=locale)
                user.company_admin = m == 0  # each demo company has its administrator
                users[email] = user
                new_users.append(user)
        plan.companies.append(company)
    plan.add("user_account", new_users)
    db.session.flush()
    for company, members in wanted:
        plan.users_by_company[company.id] = [users[email] for email, _n, _l in members]


def _staff_and_admin(plan: _Plan) -> None:
    users = {u.email: u for u in db.session.scalars(select(User))}
    new_users: list[User] = []
    for code, inst in plan.institutes.items():
        rng = plan.rng("staff", code)
        accounts = [(cat.staff_email(code), _person(rng)[0])]
        if code in SECOND_STAFF:
            name, local = _person(rng)
            accounts.append((f"{local}@{code.lower()}.{cat.DEMO_EMAIL_SUFFIX}", name))
        staff = []
        for email, name in accounts:
            user = users.get(email)
            if user is None:
                user = _user(plan, email, name, Role.STAFF, institute=inst)
                users[email] = user
                new_users.append(user)
            staff.append(user)
        plan.staff_by_institute[inst.id] = staff
    if cat.ADMIN_EMAIL not in users:
        new_users.append(_user(plan, cat.ADMIN_EMAIL, "平台管理员", Role.ADMIN))
    plan.add("user_account", new_users)
    db.session.flush()


# --- closures, bookings, usage --------------------------------------------------------


def _service_orders(plan: _Plan) -> None:
    """Offerings where an institute has none; demo orders in every status, once."""
    from labshare.demo.orders import seed_offerings, seed_orders

    institutes = sorted(plan.institutes.values(), key=lambda i: i.id)
    plan.report.created["service_offering"] += len(seed_offerings(institutes))
    demo_orders = (
        select(ServiceOrder.id)
        .join(User, User.id == ServiceOrder.user_id)
        .where(User.email.like(f"%{cat.DEMO_EMAIL_SUFFIX}"))
        .limit(1)
    )
    if db.session.scalar(demo_orders) is not None:
        return
    orders = seed_orders(
        institutes,
        plan.users_by_company,
        plan.companies,
        plan.now,
        plan.rng("orders"),
        plan.staff_by_institute,
    )
    plan.report.created["service_order"] += len(orders)
    plan.report.created["service_order_item"] += sum(len(o.items) for o in orders)


def _demo_bookings_exist() -> bool:
    query = (
        select(Booking.id)
        .join(User, User.id == Booking.user_id)
        .where(User.email.like(f"%{cat.DEMO_EMAIL_SUFFIX}"))
        .limit(1)
    )
    return db.session.scalar(query) is not None


def _local(day: dt.date, at: dt.time, tz: str) -> dt.datetime:
    return localize(dt.datetime.combine(day, at), tz).astimezone(dt.UTC)


def _day_span(first: dt.date, days: int, tz: str) -> tuple[dt.datetime, dt.datetime]:
    return _local(first, dt.time(0), tz), _local(first + dt.timedelta(days=days), dt.time(0), tz)


#: Fixed-date public holidays: (month, day, days, name).
HOLIDAYS = [
    (1, 1, 1, "元旦 New Year's Day"),
    (5, 1, 5, "劳动节 Labour Day"),
    (10, 1, 7, "国庆节 National Day"),
]


def _closures(plan: _Plan) -> None:
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


def _bookings(plan: _Plan) -> None:
    resources: list[Resource] = [
        *plan.labs,
        *(i for i in plan.instruments if i.status is ResourceStatus.AVAILABLE),
    ]
    lab_of = {lab.id: lab for lab in plan.labs}
    closed = _closed_spans([r.id for r in resources])
    rules = _rules_by_resource()
    first = plan.today - dt.timedelta(days=PAST_DAYS)
    window = _local(first, dt.time(0), DEMO_ZONE) - dt.timedelta(days=1)
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
            cutoff = _local(resource.calibration_valid_until + dt.timedelta(days=1), dt.time(0), tz)
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
                start = _local(day, dt.time(hour), tz)
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
    plan: _Plan,
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
    fee = _money(hours * resource.fee_per_hour)
    waived = _money(fee * resource.fee_waiver_percent / 100)
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
