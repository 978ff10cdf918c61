"""Checking an uploaded certificate by its content, and the public verification."""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from typing import Any

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from labshare.errors import DomainError, ValidationFailed
from labshare.extensions import db
from labshare.models import Institute, ServiceOrder, ServiceOrderItem

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
_STARTXREF = re.compile(rb"startxref\s+(\d+)\s+%%EOF\s*$")
_OBJ = re.compile(rb"\d+\s+\d+\s+obj\b")


class PayloadTooLarge(DomainError):
    status = 413
    code = "payload_too_large"


def max_bytes() -> int:
    return int(current_app.config.get("CERTIFICATE_MAX_BYTES") or DEFAULT_MAX_BYTES)


def check_file_name(name: str | None) -> None:
    """The name is never used to store the file; one that tries to name a path is
    refused all the same, so a crafted client learns nothing by trying."""
    if name and ("/" in name or "\\" in name or ".." in name or "\x00" in name):
        raise ValidationFailed(_l("The file name must not contain a path."), field="file")


def check_pdf(data: bytes) -> None:
    """A PDF by content: the ``%PDF-`` header, an end-of-file marker after a
    ``startxref`` that points inside the file at a cross-reference table or stream,
    and at least one object. Size within ``CERTIFICATE_MAX_BYTES``."""
    limit = max_bytes()
    if len(data) > limit:
        raise PayloadTooLarge(
            _l("The file is larger than %(n)d MB.", n=max(1, limit // (1024 * 1024))),
            field="file",
        )
    not_pdf = ValidationFailed(_l("The file is not a PDF document."), field="file")
    if not data.startswith(b"%PDF-1.") and not data.startswith(b"%PDF-2."):
        raise not_pdf
    match = _STARTXREF.search(data[-1024:])
    if match is None or _OBJ.search(data) is None:
        raise not_pdf
    offset = int(match.group(1))
    if offset <= 0 or offset >= len(data):
        raise not_pdf
    at = data[offset : offset + 32]
    if not (at.startswith(b"xref") or _OBJ.match(at)):
        raise not_pdf


@dataclass
class Verification:
    genuine: bool
    certificate_number: str
    issued_by: str | None = None
    issued_by_en: str | None = None
    issued_at: str | None = None
    result: str | None = None
    item: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "genuine": self.genuine,
            "certificate_number": self.certificate_number,
            "issued_by": self.issued_by,
            "issued_by_en": self.issued_by_en,
            "issued_at": self.issued_at,
            "result": self.result,
            "item": self.item,
        }


def verify(number: str, code: str) -> Verification:
    """Whether ``number`` with ``code`` is a certificate we issued. An unknown number
    and a wrong code give the same answer, compared in constant time."""
    number = (number or "").strip()[:100]
    code = (code or "").strip().upper()[:32]
    # PostgreSQL refuses a NUL in a text parameter; no certificate number has one.
    number, code = number.replace("\x00", ""), code.replace("\x00", "")
    row = db.session.execute(
        select(ServiceOrderItem, Institute)
        .join(ServiceOrder, ServiceOrder.id == ServiceOrderItem.order_id)
        .join(Institute, Institute.id == ServiceOrder.institute_id)
        .where(ServiceOrderItem.certificate_number == number)
    ).first()
    expected = row[0].verification_code if row is not None else None
    matches = hmac.compare_digest((expected or "-" * 10).encode(), code.encode())
    if row is None or expected is None or not matches or row[0].completed_at is None:
        return Verification(genuine=False, certificate_number=number)
    item, institute = row
    return Verification(
        genuine=True,
        certificate_number=number,
        issued_by=institute.name,
        issued_by_en=institute.name_en,
        issued_at=item.completed_at.date().isoformat(),
        result=item.result.value if item.result else None,
        item=item.name,
    )


def verify_limit() -> str:
    """Verification answers anyone: limited per address, so numbers cannot be tried
    in bulk (``RATELIMIT_VERIFY``)."""
    return str(current_app.config.get("RATELIMIT_VERIFY") or "10/minute;100/hour")
