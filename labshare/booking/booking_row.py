"""The booking row both write paths insert, and its fee; the lean path's INSERT."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, cast

from sqlalchemy import Table, insert, inspect
from sqlalchemy.orm import make_transient_to_detached

from labshare.booking.checks import BookingRequest
from labshare.database import is_sqlite
from labshare.extensions import db
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
    return Booking(**booking_values(resource, booker, request, company_id, status, fee, waived))


def booking_values(
    resource: Resource,
    booker: User,
    request: BookingRequest,
    company_id: int,
    status: BookingStatus,
    fee: Decimal,
    waived: Decimal,
) -> dict[str, Any]:
    """``new_booking``'s columns, for ``insert_booking``."""
    return {
        "resource_id": resource.id,
        "resource_kind": ResourceKind(resource.kind),
        "institute_id": resource.institute_id,
        "company_id": company_id,
        "user_id": booker.id,
        "start_at": request.start,
        "end_at": request.end,
        "status": status,
        "purpose": request.purpose,
        "samples": request.samples,
        "fee": fee,
        "fee_waived": waived,
    }


#: What a new row holds in the columns the caller does not name: the model's
#: defaults (a callable's called per row: the stamps), else NULL.
def _column_defaults() -> tuple[tuple[str, Any, bool], ...]:
    out = []
    for column in Booking.__table__.c:
        if column.primary_key:
            continue
        default = column.default
        if default is None:
            out.append((column.key, None, False))
        elif getattr(default, "is_callable", False):
            out.append((column.key, default.arg, True))
        else:
            out.append((column.key, default.arg, False))
    return tuple(out)


_DEFAULTS = _column_defaults()
_MAPPER = inspect(Booking)
#: Built once: a statement's construction costs more CPU than its cached compilation.
_INSERT = insert(cast(Table, Booking.__table__))


def booking_row(values: dict[str, Any]) -> dict[str, Any]:
    """Every column of a new row: ``values``, else the model's default."""
    row = {}
    for key, default, call in _DEFAULTS:
        if key in values:
            row[key] = values[key]
        else:
            row[key] = default(None) if call else default
    return row


def booking_from_row(row: dict[str, Any], booking_id: int) -> Booking:
    """The persistent instance of the row just inserted (``booking_row``) with id
    ``booking_id``: what it holds is what the row holds, as after a flush."""
    # Filled as a query's loader fills an instance (its dict, no attribute events):
    # the constructor's event per attribute cost more than the INSERT's execution.
    booking: Booking = _MAPPER.class_manager.new_instance()
    booking.__dict__.update(row)
    booking.__dict__["id"] = booking_id
    make_transient_to_detached(booking)  # the relationships unloaded, as after a flush
    db.session.add(booking)
    return booking


def insert_booking(values: dict[str, Any], *, savepoint: bool) -> Booking:
    """Insert a booking of ``values`` (the columns ``new_booking`` sets, and any
    others) with one Core INSERT, and return it as a persistent instance holding
    exactly what was written: the same row, attributes and identity as a flushed
    ``Booking(**values)``, without the unit of work's CPU. ``savepoint``: on
    PostgreSQL insert in a savepoint (the caller's transaction stays usable after
    a conflict). The exclusion constraint's refusal (SQLSTATE 23P01) is raised as
    the IntegrityError; the caller turns it into SlotTaken."""
    row = booking_row(values)
    if savepoint and not is_sqlite():
        with db.session.begin_nested():
            result = db.session.connection().execute(_INSERT, row)
    else:
        result = db.session.connection().execute(_INSERT, row)
    inserted = result.inserted_primary_key
    assert inserted is not None  # one row inserted
    return booking_from_row(row, inserted[0])
