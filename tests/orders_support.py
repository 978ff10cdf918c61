"""Set-up for the service-order tests: an institute with offerings, companies,
staff, a real (minimal) PDF."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from labshare.extensions import db
from labshare.models import Field, OrderServiceType, Role, ServiceOffering
from tests import factories

NOW = dt.datetime(2030, 1, 1, 0, 0, tzinfo=dt.UTC)  # 08:00 in Shanghai


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
    institute = factories.make_institute()
    other_institute = factories.make_institute()
    offering = make_offering(institute)
    testing = make_offering(
        institute, service_type=OrderServiceType.TESTING, name="样品检测", fee=Decimal("80")
    )
    foreign = make_offering(other_institute)
    sme = factories.make_user(Role.SME)
    colleague = factories.make_user(Role.SME, company=sme.company)
    other_sme = factories.make_user(Role.SME)
    staff = factories.make_user(Role.STAFF, institute=institute)
    other_staff = factories.make_user(Role.STAFF, institute=other_institute)
    admin = factories.make_user(Role.ADMIN)
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


def item(offering: Any, **kw: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "offering_id": offering.id,
        "name": "压力表",
        "model": "Y-100",
        "serial_number": "SN-001",
        "measuring_range": "0-1.6 MPa",
        "accuracy_class": "1.6",
        "quantity": 2,
    }
    values.update(kw)
    return values


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
