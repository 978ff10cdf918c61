"""Factories for tests, the one place they live: plain functions that add rows
(flushed, not committed) and return them, each taking keyword overrides; and a few
that build a whole scene (``order_env``, ``completed_order``: committed)."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Mapping
from decimal import Decimal
from types import MappingProxyType, SimpleNamespace
from typing import Any

from labshare.accounts.credit_code import make_credit_code
from labshare.extensions import db
from labshare.models import (
    Booking,
    BookingRules,
    BookingStatus,
    Company,
    Field,
    Institute,
    InstituteKind,
    Instrument,
    Lab,
    OpeningPeriod,
    OrderServiceType,
    ResourceKind,
    Role,
    ServiceOffering,
    User,
)

PASSWORD = "correct horse battery staple"

# Booking rules that admit any half-hour-aligned request at once: no lead time, no
# approval, a year's horizon, room for 100 active bookings a company. Read-only: take
# a copy (``dict(OPEN_RULES)``, ``{**OPEN_RULES, ...}``) to hand on or change.
OPEN_RULES: Mapping[str, Any] = MappingProxyType(
    {
        "slot_minutes": 30,
        "min_minutes": 30,
        "max_minutes": 480,
        "lead_time_hours": 0,
        "horizon_days": 365,
        "requires_approval": False,
        "max_active_per_company": 100,
        "cancel_deadline_hours": 0,
    }
)
_seq = itertools.count(1)


def _n() -> int:
    return next(_seq)


def make_institute(**kw: Any) -> Institute:
    n = _n()
    values: dict[str, Any] = {
        "code": f"INST{n}",
        "name": f"测试计量院{n}",
        "name_en": f"Test Institute {n}",
        "kind": InstituteKind.PROVINCIAL,
        "province_code": "320000",
        "province": "江苏省",
        "city": "南京",
        "timezone": "Asia/Shanghai",
    }
    values.update(kw)
    institute = Institute(**values)
    db.session.add(institute)
    db.session.flush()
    return institute


def weekday_hours(
    opens: str = "08:00", closes: str = "18:00", days: range = range(7)
) -> list[OpeningPeriod]:
    """Periods on ``days``; "24:00" closes at midnight (stored as 00:00)."""
    o = dt.time.fromisoformat(opens)
    c = dt.time(0) if closes == "24:00" else dt.time.fromisoformat(closes)
    return [OpeningPeriod(weekday=d, opens=o, closes=c) for d in days]


def make_lab(
    rules: dict[str, Any] | None = None, hours: list[OpeningPeriod] | None = None, **kw: Any
) -> Lab:
    n = _n()
    institute = kw.pop("institute", None) or make_institute()
    values: dict[str, Any] = {
        "name": f"几何量开放实验室{n}",
        "name_en": f"Open lab {n}",
        "field": Field.GEOMETRIC,
        "capacity": 1,
        "location": "A 栋 101",
    }
    values.update(kw)
    lab = Lab(institute=institute, **values)
    lab.opening_periods = hours if hours is not None else weekday_hours("00:00", "24:00")
    db.session.add(lab)
    db.session.flush()
    if rules is not None:
        db.session.add(BookingRules(resource_id=lab.id, **rules))
        db.session.flush()
    return lab


def make_instrument(rules: dict[str, Any] | None = None, **kw: Any) -> Instrument:
    n = _n()
    lab = kw.pop("lab", None) or make_lab(institute=kw.pop("institute", None))
    values: dict[str, Any] = {
        "name": f"数字压力校验仪{n}",
        "name_en": f"Digital pressure calibrator {n}",
        "field": Field.MECHANICAL,
        "measurand": "pressure",
        "unit": "MPa",
        "range_min": -0.1,
        "range_max": 10.0,
        "range_min_base": -100000.0,
        "range_max_base": 10000000.0,
        "accuracy": "±0.02 %FS",
        "fee_per_hour": Decimal("150"),
        "fee_waiver_percent": 50,
        "calibration_valid_until": dt.date(2099, 12, 31),
    }
    values.update(kw)
    instrument = Instrument(institute_id=lab.institute_id, lab=lab, **values)
    db.session.add(instrument)
    db.session.flush()
    if rules is not None:
        db.session.add(BookingRules(resource_id=instrument.id, **rules))
        db.session.flush()
    return instrument


def make_company(**kw: Any) -> Company:
    n = _n()
    values: dict[str, Any] = {
        "name": f"测试精密制造有限公司{n}",
        "credit_code": make_credit_code("320100", f"{n:08d}"),
        "province": "江苏省",
    }
    values.update(kw)
    company = Company(**values)
    db.session.add(company)
    db.session.flush()
    return company


def make_user(role: Role | str = Role.SME, password: str = PASSWORD, **kw: Any) -> User:
    n = _n()
    role = Role(role)
    values: dict[str, Any] = {
        "email": f"user{n}@example.com",
        "name": f"用户{n}",
        "role": role,
        "locale": "en",
    }
    if role is Role.SME and "company" not in kw and "company_id" not in kw:
        values["company"] = make_company()
    if role is Role.STAFF and "institute" not in kw and "institute_id" not in kw:
        values["institute"] = make_institute()
    values.update(kw)
    user = User(**values)
    user.set_password(password)
    db.session.add(user)
    db.session.flush()
    return user


def make_booking(**kw: Any) -> Booking:
    """A booking row written directly (no rules applied): for setting up state."""
    resource = kw.pop("resource", None) or make_instrument()
    user = kw.pop("user", None) or make_user(Role.SME)
    start = kw.pop("start", None) or dt.datetime(2030, 1, 7, 1, 0, tzinfo=dt.UTC)
    end = kw.pop("end", None) or start + dt.timedelta(hours=2)
    values: dict[str, Any] = {
        "resource_id": resource.id,
        "resource_kind": ResourceKind(resource.kind),
        "institute_id": resource.institute_id,
        "company_id": user.company_id,
        "user_id": user.id,
        "start_at": start,
        "end_at": end,
        "status": BookingStatus.PENDING,
        "purpose": "校准压力变送器",
    }
    values.update(kw)
    booking = Booking(**values)
    db.session.add(booking)
    db.session.flush()
    return booking


# Service orders
def make_pdf(text: str = "Certificate") -> bytes:
    """A small valid PDF: header, objects, an xref table that startxref points at."""
    content = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(content)).encode() + b" >>\nstream\n" + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{n} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\n".encode()
    out += f"startxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 200


def make_offering(institute: Any, **kw: Any) -> ServiceOffering:
    values: dict[str, Any] = {
        "institute_id": institute.id,
        "field": Field.MECHANICAL,
        "service_type": OrderServiceType.CALIBRATION,
        "name": "压力表校准",
        "name_en": "Pressure gauge calibration",
        "procedure": "JJG 52-2013",
        "turnaround_days": 7,
        "fee": Decimal("200.00"),
        "fee_waiver_percent": 50,
        "interval_months": 12,
    }
    values.update(kw)
    offering = ServiceOffering(**values)
    db.session.add(offering)
    db.session.flush()
    return offering


def order_env() -> SimpleNamespace:
    institute = make_institute()
    other_institute = make_institute()
    offering = make_offering(institute)
    testing = make_offering(
        institute, service_type=OrderServiceType.TESTING, name="样品检测", fee=Decimal("80")
    )
    foreign = make_offering(other_institute)
    sme = make_user(Role.SME)
    colleague = make_user(Role.SME, company=sme.company)
    other_sme = make_user(Role.SME)
    staff = make_user(Role.STAFF, institute=institute)
    other_staff = make_user(Role.STAFF, institute=other_institute)
    admin = make_user(Role.ADMIN)
    db.session.commit()
    return SimpleNamespace(
        institute=institute,
        other_institute=other_institute,
        offering=offering,
        testing=testing,
        foreign=foreign,
        sme=sme,
        colleague=colleague,
        other_sme=other_sme,
        staff=staff,
        other_staff=other_staff,
        admin=admin,
    )


def completed_order(env: SimpleNamespace, *, months: int | None = 12) -> Any:
    """An order of env.sme's company, taken through the services to completed."""
    from labshare.orders import intake, lifecycle

    order = intake.create_order(
        env.institute.id,
        env.sme,
        [
            intake.ItemInput(offering_id=env.offering.id, name="压力表", serial_number="A1"),
            intake.ItemInput(offering_id=env.testing.id, name="样品", quantity=2),
        ],
        delivery="courier",
    )
    lifecycle.accept_order(order, env.staff, promised_date=dt.date(2030, 1, 20))
    lifecycle.receive_order(order, env.staff)
    lifecycle.start_order(order, env.staff)
    for n, item in enumerate(order.items):
        lifecycle.complete_item(
            order,
            item.id,
            env.staff,
            result="calibrated" if n == 0 else "conforming",
            certificate_number=f"C-{order.id}-{n}",
            pdf=make_pdf(),
            interval_months=months if n == 0 else None,
        )
    db.session.commit()
    return order
