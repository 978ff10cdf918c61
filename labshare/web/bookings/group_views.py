"""Booking groups on the SME pages: on a lab's booking form, instruments of the lab
to book with it (all or nothing, booking/policies/groups.py); on a booking's page, the other
bookings of its group."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import request
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from labshare.booking.bookings import create_booking
from labshare.booking.policies import groups
from labshare.errors import ValidationFailed
from labshare.extensions import db
from labshare.models import Booking, Instrument, Lab, Resource, ResourceStatus, User
from labshare.web.bookings import bp


def group_choices(resource: Resource) -> list[Instrument]:
    """The instruments that can be booked with ``resource`` (a lab), in name order."""
    if not isinstance(resource, Lab):
        return []
    return list(
        db.session.scalars(
            select(Instrument)
            .where(Instrument.lab_id == resource.id, Instrument.status != ResourceStatus.RETIRED)
            .order_by(Instrument.name, Instrument.id)
        )
    )


def chosen_ids() -> list[int]:
    """The instrument ids ticked on the form; anything else is a 422."""
    out: list[int] = []
    for raw in request.form.getlist("instrument_ids"):
        try:
            value = int(raw)
        except ValueError:
            raise ValidationFailed(
                _l("Choose instruments from the list."), field="instrument_ids"
            ) from None
        if not 1 <= value <= 2**31 - 1:
            raise ValidationFailed(_l("Choose instruments from the list."), field="instrument_ids")
        out.append(value)
    return out


def book(
    resource: Resource,
    booker: User,
    start: dt.datetime,
    end: dt.datetime,
    *,
    purpose: str,
    samples: str | None,
) -> Booking:
    """The booking form's one call: a lab with ticked instruments books them all as
    a group (the lab's booking is returned), anything else a single booking."""
    ids = chosen_ids() if isinstance(resource, Lab) else []
    if not ids:
        return create_booking(resource, booker, start, end, purpose=purpose, samples=samples)
    instruments: list[Resource] = []
    for instrument_id in ids:
        instrument = db.session.get(Resource, instrument_id)
        if instrument is None:
            raise ValidationFailed(_l("Choose instruments from the list."), field="instrument_ids")
        instruments.append(instrument)
    group = groups.create_group(
        resource, instruments, booker, start, end, purpose=purpose, samples=samples
    )
    return next(m for m in groups.members_of(group.id) if m.resource_id == resource.id)


@bp.app_context_processor
def _group_helpers() -> dict[str, Any]:
    def group_members(booking: Booking) -> list[Booking]:
        return groups.members_of(booking.group_id) if booking.group_id is not None else []

    def group_chosen() -> set[int]:
        try:
            return set(chosen_ids()) if request.method == "POST" else set()
        except ValidationFailed:
            return set()

    return {
        "group_choices": group_choices,
        "group_members": group_members,
        "group_chosen": group_chosen,
        "bundle_members": groups.bundle_members,
    }
