"""Calibration notices: 30 days before an instrument's calibration runs out, and once
it has, a message to the institute's staff, once per instrument and certificate/date."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from labshare.database import begin_write
from labshare.extensions import db
from labshare.jobs.markers import claim
from labshare.messaging import staff_notices
from labshare.models import Instrument, ResourceStatus
from labshare.timeutil import to_local, utcnow

NOTICE_DAYS = 30


def _local_today(instrument: Instrument, now: dt.datetime) -> dt.date:
    return to_local(now, instrument.institute.timezone).date()


def expired_calibrations(institute_id: int | None = None) -> list[Instrument]:
    """Instruments in service whose calibration has expired (by their institute's date)."""
    now = utcnow()
    query = (
        select(Instrument)
        .where(
            Instrument.calibration_valid_until.is_not(None),
            Instrument.calibration_valid_until <= (now + dt.timedelta(days=1)).date(),
            Instrument.status != ResourceStatus.RETIRED,
        )
        .order_by(Instrument.calibration_valid_until, Instrument.id)
    )
    if institute_id is not None:
        query = query.where(Instrument.institute_id == institute_id)
    return [
        i
        for i in db.session.scalars(query)
        if i.calibration_valid_until is not None
        and i.calibration_valid_until < _local_today(i, now)
    ]


def send_calibration_notices() -> dict[str, Any]:
    begin_write()
    now = utcnow()
    horizon = (now + dt.timedelta(days=NOTICE_DAYS + 1)).date()
    instruments = db.session.scalars(
        select(Instrument)
        .where(
            Instrument.calibration_valid_until.is_not(None),
            Instrument.calibration_valid_until <= horizon,
            Instrument.status != ResourceStatus.RETIRED,
        )
        .order_by(Instrument.calibration_valid_until, Instrument.id)
    )
    expiring: list[int] = []
    expired: list[int] = []
    for instrument in instruments:
        until = instrument.calibration_valid_until
        assert until is not None
        today = _local_today(instrument, now)
        if until < today:
            state, bucket = "expired", expired
        elif until <= today + dt.timedelta(days=NOTICE_DAYS):
            state, bucket = "expiring", expiring
        else:
            continue
        key = f"calibration:{state}:{instrument.id}:{until}:{instrument.certificate_number or '-'}"
        if claim(key, "calibration-notices"):
            staff_notices.calibration_notice(instrument, expired=state == "expired")
            bucket.append(instrument.id)
    return {"expiring": expiring, "expired": expired}
