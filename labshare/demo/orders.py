"""Demo service orders: each institute's offerings, and orders of the demo companies
in every status, the finished ones with their certificate PDFs. Idempotent."""

from __future__ import annotations

import datetime as dt
import random
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import select

from labshare.extensions import db
from labshare.models import (
    Company,
    DeliveryMethod,
    Field,
    Institute,
    ItemResult,
    OrderServiceType,
    OrderStatus,
    ServiceOffering,
    ServiceOrder,
    ServiceOrderItem,
    User,
)
from labshare.orders.lifecycle import FINISHED
from labshare.orders.storage import certificate_store

#: (field, service, name, English name, procedure, days, fee, waiver %, interval months)
OFFERINGS: list[tuple[Field, OrderServiceType, str, str, str | None, int, int, int, int | None]] = [
    (
        Field.MECHANICAL,
        OrderServiceType.VERIFICATION,
        "一般压力表检定",
        "Pressure gauge verification",
        "JJG 52-2013",
        5,
        60,
        50,
        6,
    ),
    (
        Field.MECHANICAL,
        OrderServiceType.CALIBRATION,
        "数字压力计校准",
        "Digital manometer calibration",
        "JJF 1987-2022",
        7,
        300,
        30,
        12,
    ),
    (
        Field.GEOMETRIC,
        OrderServiceType.CALIBRATION,
        "游标卡尺校准",
        "Vernier caliper calibration",
        "JJF 1914-2021",
        3,
        80,
        50,
        12,
    ),
    (
        Field.THERMAL,
        OrderServiceType.CALIBRATION,
        "工业铂电阻温度计校准",
        "Industrial PRT calibration",
        "JJG 229-2010",
        10,
        400,
        30,
        12,
    ),
    (
        Field.ELECTROMAGNETIC,
        OrderServiceType.VERIFICATION,
        "数字多用表检定",
        "Digital multimeter verification",
        "JJG 315-1983",
        7,
        250,
        20,
        12,
    ),
    (
        Field.CHEMICAL,
        OrderServiceType.TESTING,
        "水质样品检测",
        "Water sample testing",
        None,
        10,
        500,
        20,
        None,
    ),
]
ITEMS = [
    ("压力表", "Y-100", "0-1.6 MPa", "1.6级"),
    ("数字压力计", "DPI 620", "0-10 MPa", "0.05级"),
    ("游标卡尺", "0-150 mm", "0-150 mm", "0.02 mm"),
    ("铂电阻温度计", "WZP-230", "-50-400 ℃", "A级"),
    ("数字多用表", "34461A", "DCV 0-1000 V", "6½位"),
    ("冷却水样品", "样品A", "", ""),
]
ITEM_BY_OFFERING = {o[2]: ITEMS[n] for n, o in enumerate(OFFERINGS)}
STATUSES = list(OrderStatus)
CENT = Decimal("0.01")


def demo_pdf(text: str) -> bytes:
    """A one-page PDF standing in for a certificate."""
    content = f"BT /F1 14 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
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
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return bytes(out)


def _money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def seed_offerings(institutes: list[Institute]) -> list[ServiceOffering]:
    have = set(db.session.scalars(select(ServiceOffering.institute_id).distinct()))
    added = []
    for inst in institutes:
        if inst.id in have:
            continue
        for fld, service, name, name_en, proc, days, fee, waiver, months in OFFERINGS:
            added.append(
                ServiceOffering(
                    institute_id=inst.id,
                    field=fld,
                    service_type=service,
                    name=name,
                    name_en=name_en,
                    procedure=proc,
                    turnaround_days=days,
                    fee=Decimal(fee),
                    fee_waiver_percent=waiver,
                    interval_months=months,
                )
            )
    db.session.add_all(added)
    db.session.flush()
    return added


def seed_orders(
    institutes: list[Institute],
    users_by_company: dict[int, list[User]],
    companies: list[Company],
    now: dt.datetime,
    rng: random.Random,
    staff_by_institute: dict[int, list[User]],
) -> list[ServiceOrder]:
    """Orders of the demo companies in every status at the first few institutes."""
    offerings: dict[int, list[ServiceOffering]] = {}
    for o in db.session.scalars(select(ServiceOffering).order_by(ServiceOffering.id)):
        offerings.setdefault(o.institute_id, []).append(o)
    orders: list[ServiceOrder] = []
    store = certificate_store()
    serial = 0
    for inst in institutes[:6]:
        staff = staff_by_institute.get(inst.id) or []
        menu = offerings.get(inst.id) or []
        if not staff or not menu:
            continue
        for status in STATUSES:
            serial += 1
            company = rng.choice(companies)
            users = users_by_company.get(company.id) or []
            if not users:
                continue
            created = now - dt.timedelta(days=rng.randint(20, 60), hours=rng.randint(0, 8))
            order = ServiceOrder(
                institute_id=inst.id,
                company_id=company.id,
                user_id=users[0].id,
                status=status,
                delivery=rng.choice(list(DeliveryMethod)),
                created_at=created,
            )
            if order.delivery == DeliveryMethod.COURIER:
                order.tracking_number = f"SF{rng.randint(10**11, 10**12 - 1)}"
            chosen = rng.sample(menu, k=min(len(menu), rng.randint(1, 3)))
            items = []
            for n, offering in enumerate(chosen, start=1):
                name, model, span, grade = ITEM_BY_OFFERING.get(
                    offering.name, (offering.name, "", "", "")
                )
                quantity = rng.randint(1, 3)
                items.append(
                    ServiceOrderItem(
                        position=n,
                        offering_id=offering.id,
                        service_type=offering.service_type,
                        field=offering.field,
                        name=name,
                        model=model,
                        serial_number=f"{inst.code}-{serial:04d}-{n}",
                        measuring_range=span or None,
                        accuracy_class=grade or None,
                        quantity=quantity,
                        procedure=offering.procedure,
                        interval_months=offering.interval_months,
                    )
                )
            order.items = items
            decided = status not in (OrderStatus.SUBMITTED, OrderStatus.CANCELLED)
            if decided or (status == OrderStatus.CANCELLED and rng.random() < 0.5):
                _decide(order, status, created, staff[0], rng)
            if status == OrderStatus.CANCELLED:
                order.cancelled_at = created + dt.timedelta(days=1)
                order.cancelled_by_id = users[0].id
            if status in (OrderStatus.RECEIVED, OrderStatus.IN_PROGRESS, *FINISHED):
                order.received_at = created + dt.timedelta(days=3)
                order.received_by_id = staff[0].id
                items[0].condition_note = "外观完好"
            if status in (OrderStatus.IN_PROGRESS, *FINISHED):
                assert order.received_at is not None
                order.started_at = order.received_at + dt.timedelta(hours=4)
            if status in FINISHED:
                assert order.received_at is not None
                done = order.received_at + dt.timedelta(days=rng.randint(2, 12))
                order.completed_at = done
                for item in items:
                    _certify(item, inst, done, staff[0], store, serial)
                if status != OrderStatus.COMPLETED:
                    order.closed_at = done + dt.timedelta(days=2)
            orders.append(order)
    db.session.add_all(orders)
    db.session.flush()
    return orders


def _decide(
    order: ServiceOrder, status: OrderStatus, created: dt.datetime, staff: User, rng: random.Random
) -> None:
    order.decided_at, order.decided_by_id = created + dt.timedelta(hours=20), staff.id
    if status == OrderStatus.REJECTED:
        order.decision_reason = "本机构暂不具备该项目的授权"
        return
    total = waived = Decimal(0)
    for item in order.items:
        offering = db.session.get(ServiceOffering, item.offering_id)
        assert offering is not None
        item.fee = _money(offering.fee * item.quantity)
        item.fee_waived = _money(item.fee * offering.fee_waiver_percent / 100)
        total += item.fee
        waived += item.fee_waived
    order.fee, order.fee_waived = total, waived
    order.promised_date = (created + dt.timedelta(days=rng.randint(7, 20))).date()


def _certify(
    item: ServiceOrderItem, inst: Institute, done: dt.datetime, staff: User, store: Any, serial: int
) -> None:
    number = f"{inst.code}-{done:%Y}-{serial:04d}-{item.position}"
    key, digest = store.save(demo_pdf(f"LabShare demo certificate {number}"))
    item.result = (
        ItemResult.CALIBRATED
        if item.service_type == OrderServiceType.CALIBRATION
        else ItemResult.CONFORMING
    )
    item.certificate_number = number
    item.verification_code = f"DEMO{serial:04d}{item.position:02d}"
    item.certificate_key, item.certificate_sha256 = key, digest
    item.completed_at, item.completed_by_id = done, staff.id
    if item.interval_months:
        month0 = done.month - 1 + item.interval_months
        item.due_date = dt.date(done.year + month0 // 12, month0 % 12 + 1, min(done.day, 28))
