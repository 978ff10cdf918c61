"""The booking row both write paths insert, and its fee."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

from labshare.booking.checks import BookingRequest
from labshare.models import Booking, BookingStatus, Resource, ResourceKind, User

CENT = Decimal("0.01")


def compute_fee(
    resource: Resource, start: dt.datetime, end: dt.datetime
) -> tuple[Decimal, Decimal]:
    hours = Decimal(int((end - start).total_seconds())) / Decimal(3600)
    fee = (hours * Decimal(resource.fee_per_hour or 0)).quantize(CENT, rounding=ROUND_HALF_UP)
    waived = (fee * Decimal(resource.fee_waiver_percent or 0) / Decimal(100)).quantize(
        CENT, rounding=ROUND_HALF_UP
    )
    return fee, min(waived, fee)


def new_booking(
    resource: Resource,
    booker: User,
    request: BookingRequest,
    company_id: int,
    status: BookingStatus,
    fee: Decimal,
    waived: Decimal,
) -> Booking:
    """The booking row both write paths insert (resource kind and institute copied)."""
    return Booking(
        resource_id=resource.id,
        resource_kind=ResourceKind(resource.kind),
        institute_id=resource.institute_id,
        company_id=company_id,
        user_id=booker.id,
        start_at=request.start,
        end_at=request.end,
        status=status,
        purpose=request.purpose,
        samples=request.samples,
        fee=fee,
        fee_waived=waived,
    )
