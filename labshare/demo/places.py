"""Demo institutes, their labs (with opening hours and booking rules) and
instruments, each keyed on its natural key so a second run adds nothing."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from sqlalchemy import select

from labshare.catalogue.capability import refresh_base_range
from labshare.demo import catalogue as cat
from labshare.demo.plan import Plan, money
from labshare.errors import ValidationFailed
from labshare.extensions import db
from labshare.models import (
    BookingRules,
    Field,
    Institute,
    InstituteKind,
    Instrument,
    Lab,
    OpeningPeriod,
    ResourceStatus,
)

MORNING = (dt.time(8, 30), dt.time(12, 0))
AFTERNOON = (dt.time(13, 30), dt.time(17, 30))
#: Instruments retired in the demo: (institute code, English kind name, copy).
RETIRED = {("NAMC", "Universal measuring microscope", 1), ("SXIM", "Stopwatch calibrator", 2)}
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


def add_institutes(plan: Plan) -> None:
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


def _opening_periods(saturday: bool) -> list[OpeningPeriod]:
    periods = [
        OpeningPeriod(weekday=day, opens=opens, closes=closes)
        for day in range(5)
        for opens, closes in (MORNING, AFTERNOON)
    ]
    if saturday:
        periods.append(OpeningPeriod(weekday=5, opens=MORNING[0], closes=MORNING[1]))
    return periods


def add_labs_and_instruments(plan: Plan) -> None:
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
                    fee_per_hour=money(rng.choice([0, 100, 150, 200])),
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
    plan: Plan, lab: Lab, kind: cat.InstrumentKind, asset: str, copy: int, copies: int
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
        fee_per_hour=money(fee),
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
