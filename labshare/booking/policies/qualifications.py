"""Marking users qualified (trained) for instruments that require it."""

from __future__ import annotations

import datetime as dt

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from labshare.booking.permissions import is_staff_of
from labshare.database import begin_write
from labshare.errors import NotAllowed, ValidationFailed
from labshare.extensions import db
from labshare.models import Instrument, Qualification, Role, User
from labshare.ops import audit


def _authorize(actor: User, instrument: Instrument) -> None:
    if not is_staff_of(actor, instrument.institute_id):
        raise NotAllowed(_l("Only staff of the instrument's institute can manage qualifications."))


def _lock(instrument: Instrument) -> None:
    """The instrument's write lock (SQLite's BEGIN IMMEDIATE, the resource's row on
    PostgreSQL), the one its bookings take: a grant or revocation and a booking that
    reads the qualification are decided one after the other, and two grants of the
    same qualification find each other's row instead of both inserting one."""
    from labshare.booking.bookings import lock_resources

    begin_write()
    lock_resources([instrument.id])


def find_qualification(user: User, instrument: Instrument) -> Qualification | None:
    return db.session.scalar(
        select(Qualification).where(
            Qualification.user_id == user.id, Qualification.resource_id == instrument.id
        )
    )


def grant_qualification(
    actor: User, user: User, instrument: Instrument, *, valid_until: dt.date | None = None
) -> Qualification:
    """Mark ``user`` qualified for ``instrument``; granting again updates the validity."""
    _authorize(actor, instrument)
    if user.role != Role.SME:
        raise ValidationFailed(
            _l("Only members of a company can be marked qualified."), field="user"
        )
    _lock(instrument)
    qualification = find_qualification(user, instrument)
    if qualification is None:
        qualification = Qualification(
            user_id=user.id, resource_id=instrument.id, granted_by_id=actor.id
        )
        db.session.add(qualification)
    qualification.granted_by_id = actor.id
    qualification.valid_until = valid_until
    db.session.flush()
    audit.record(
        "qualification.grant",
        qualification,
        actor=actor,
        data={"user_id": user.id, "resource_id": instrument.id},
    )
    return qualification


def revoke_qualification(actor: User, user: User, instrument: Instrument) -> bool:
    """Remove the qualification; False when there was none."""
    _authorize(actor, instrument)
    _lock(instrument)
    qualification = find_qualification(user, instrument)
    if qualification is None:
        return False
    audit.record(
        "qualification.revoke",
        qualification,
        actor=actor,
        data={"user_id": user.id, "resource_id": instrument.id},
    )
    db.session.delete(qualification)
    db.session.flush()
    return True
