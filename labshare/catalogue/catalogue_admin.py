"""Institute staff maintain their catalogue: labs, instruments, booking rules,
opening hours and closures.

Every function checks that the actor is staff of the resource's institute
(``actor=None`` is the command line, trusted), validates its input field by field
(``ValidationFailed(field=...)``, nothing written then), writes, audits, and
leaves the commit to the caller. Inputs are plain dataclasses of already-typed
values; forms and the importer only check shape.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence
from dataclasses import fields
from decimal import Decimal
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from labshare.booking.permissions import is_staff_of
from labshare.booking.rules import period_minutes
from labshare.catalogue import capability
from labshare.catalogue.catalogue_input import (  # noqa: F401 (re-exported)
    CLOSURE_MAX,
    NOTE_MAX,
    InstrumentData,
    LabData,
    ResourceData,
    RulesData,
    _enum,
    _Errors,
    _text,
    instrument_errors,
    instrument_values,
    lab_values,
    rules_values,
)
from labshare.database import begin_write
from labshare.errors import NotAllowed, ValidationFailed
from labshare.extensions import db
from labshare.models import (
    HOLDING_STATUSES,
    Booking,
    BookingRules,
    Closure,
    ClosureKind,
    Institute,
    Instrument,
    Lab,
    OpeningPeriod,
    Resource,
    User,
)
from labshare.ops import audit

# -- authorization ------------------------------------------------------------------------


def _authorize(actor: User | None, institute_id: int) -> None:
    """``actor=None``: the command line, run by the operator."""
    if actor is not None and not is_staff_of(actor, institute_id):
        raise NotAllowed(_l("Only staff of the institute can change its catalogue."))


def _changes(obj: Any, values: dict[str, Any]) -> dict[str, Any]:
    changed: dict[str, Any] = {}
    for key, value in values.items():
        before = getattr(obj, key, None)
        if before != value:
            changed[key] = _jsonable(value)
        setattr(obj, key, value)
    return changed


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return value


# -- labs ---------------------------------------------------------------------------------


def create_lab(actor: User | None, institute: Institute, data: LabData) -> Lab:
    _authorize(actor, institute.id)
    values = lab_values(data)
    begin_write()
    lab = Lab(institute_id=institute.id, **values)
    db.session.add(lab)
    db.session.flush()
    audit.record("lab.create", lab, actor=actor, data={"name": lab.name})
    return lab


def update_lab(actor: User | None, lab: Lab, data: LabData) -> Lab:
    _authorize(actor, lab.institute_id)
    values = lab_values(data)
    begin_write()
    changed = _changes(lab, values)
    db.session.flush()
    if changed:
        audit.record("lab.update", lab, actor=actor, data=changed)
    return lab


# -- instruments --------------------------------------------------------------------------


def _check_lab(actor: User | None, lab: Lab | None, institute_id: int | None = None) -> Lab:
    if lab is None:
        raise ValidationFailed(_l("Choose one of the institute's labs."), field="lab_id")
    _authorize(actor, lab.institute_id)
    if institute_id is not None and lab.institute_id != institute_id:
        raise ValidationFailed(_l("Choose one of the institute's labs."), field="lab_id")
    return lab


def _apply_instrument(instrument: Instrument, values: dict[str, Any]) -> dict[str, Any]:
    changed = _changes(instrument, values)
    capability.refresh_base_range(instrument)
    return changed


def create_instrument(actor: User | None, lab: Lab | None, data: InstrumentData) -> Instrument:
    lab = _check_lab(actor, lab)
    values = instrument_values(data)
    begin_write()
    instrument = Instrument(institute_id=lab.institute_id, lab_id=lab.id)
    _apply_instrument(instrument, values)
    db.session.add(instrument)
    db.session.flush()
    audit.record("instrument.create", instrument, actor=actor, data={"name": instrument.name})
    return instrument


def update_instrument(
    actor: User | None, instrument: Instrument, lab: Lab | None, data: InstrumentData
) -> Instrument:
    _authorize(actor, instrument.institute_id)
    lab = _check_lab(actor, lab, instrument.institute_id)
    values = instrument_values(data)
    begin_write()
    values["lab_id"] = lab.id
    changed = _apply_instrument(instrument, values)
    db.session.flush()
    if changed:
        audit.record("instrument.update", instrument, actor=actor, data=changed)
    return instrument


# -- booking rules ------------------------------------------------------------------------


def own_rules(resource: Resource) -> BookingRules | None:
    return db.session.scalar(select(BookingRules).where(BookingRules.resource_id == resource.id))


def set_rules(actor: User | None, resource: Resource, data: RulesData) -> BookingRules:
    """Give ``resource`` rules of its own (an instrument no longer follows its lab's)."""
    _authorize(actor, resource.institute_id)
    values = rules_values(data)
    begin_write()
    row = own_rules(resource)
    if row is None:
        row = BookingRules(resource_id=resource.id)
        db.session.add(row)
    changed = _changes(row, values)
    db.session.flush()
    if changed:  # the same rules again (a nightly sync) leave no trace
        audit.record("rules.set", resource, actor=actor, data=changed)
    return row


def clear_rules(actor: User | None, resource: Resource) -> bool:
    """Drop the resource's own rules: it follows its lab's, or the defaults."""
    _authorize(actor, resource.institute_id)
    begin_write()
    row = own_rules(resource)
    if row is None:
        return False
    db.session.delete(row)
    db.session.flush()
    audit.record("rules.clear", resource, actor=actor)
    return True


# -- opening hours ------------------------------------------------------------------------

Period = tuple[int, dt.time, dt.time]


def check_periods(periods: Sequence[Period]) -> list[Period]:
    """Sorted periods; overlapping or empty ones are refused, naming ``day_<weekday>``.
    A period that closes at or before its opening time closes on the next day
    (``rules.closes_next_day``: 24:00 is 00:00, 22:00-06:00 runs overnight), so
    overlaps are judged over the whole week, Sunday night into Monday included."""
    errors = _Errors()
    week = 7 * 24 * 60
    spans: list[tuple[int, int, int]] = []  # (first minute of the week, last + 1, weekday)
    for weekday, opens, closes in periods:
        if not 0 <= weekday <= 6:
            raise ValidationFailed(_l("Unknown weekday."), field="weekday")
        if opens == closes and opens != dt.time(0):
            errors.add(f"day_{weekday}", _l("Each period must close after it opens."))
            continue
        first = weekday * 24 * 60 + opens.hour * 60 + opens.minute
        spans.append((first, first + period_minutes(opens, closes), weekday))
    spans.sort()
    for (_f1, last1, _w1), (first2, _l2, weekday2) in itertools.pairwise(spans):
        if first2 < last1:
            errors.add(f"day_{weekday2}", _l("The periods of a day must not overlap."))
    if len(spans) > 1 and spans[-1][1] > spans[0][0] + week:  # Sunday night into Monday
        errors.add(f"day_{spans[0][2]}", _l("The periods of a day must not overlap."))
    errors.raise_first()
    return sorted((w, o, c) for w, o, c in periods)


def set_opening_hours(actor: User | None, lab: Lab, periods: Sequence[Period]) -> Lab:
    """Replace the lab's weekly opening hours (local time of the institute). Existing
    bookings are kept; they were valid when made."""
    _authorize(actor, lab.institute_id)
    checked = check_periods(periods)
    begin_write()
    current = sorted((p.weekday, p.opens, p.closes) for p in lab.opening_periods)
    if current == checked:  # unchanged: no rows rewritten, so no calendar version bump
        return lab
    lab.opening_periods.clear()
    db.session.flush()
    for weekday, opens, closes in checked:
        lab.opening_periods.append(OpeningPeriod(weekday=weekday, opens=opens, closes=closes))
    db.session.flush()
    audit.record(
        "lab.opening_hours",
        lab,
        actor=actor,
        data={
            "periods": [[w, o.isoformat("minutes"), c.isoformat("minutes")] for w, o, c in checked]
        },
    )
    return lab


# -- closures -----------------------------------------------------------------------------


def add_closure(
    actor: User | None,
    resource: Resource,
    start: dt.datetime,
    end: dt.datetime,
    *,
    kind: ClosureKind | str,
    note: str | None = None,
) -> Closure:
    _authorize(actor, resource.institute_id)
    errors = _Errors()
    for field, value in (("start", start), ("end", end)):
        if not isinstance(value, dt.datetime) or value.tzinfo is None:
            errors.add(field, _l("A date and time is required."))
    errors.raise_first()
    if end <= start:
        errors.add("end", _l("The end must be after the start."))
    elif end - start > CLOSURE_MAX:
        errors.add("end", _l("A closure may last at most two years."))
    closure_kind = _enum(errors, "kind", str(kind), ClosureKind)
    note_text = _text(errors, "note", note, NOTE_MAX)
    errors.raise_first()
    begin_write()
    closure = Closure(
        resource_id=resource.id,
        start_at=start.astimezone(dt.UTC),
        end_at=end.astimezone(dt.UTC),
        kind=closure_kind,
        note=note_text,
    )
    db.session.add(closure)
    db.session.flush()
    audit.record(
        "closure.create",
        closure,
        actor=actor,
        data={"resource_id": resource.id, "start": start.isoformat(), "end": end.isoformat()},
    )
    return closure


def bookings_in_closure(closure: Closure) -> int:
    """How many time-holding bookings fall in ``closure`` (staff decide what to do)."""
    resource = db.session.get(Resource, closure.resource_id)
    ids = [closure.resource_id]
    if isinstance(resource, Lab):
        ids += list(
            db.session.scalars(select(Instrument.id).where(Instrument.lab_id == resource.id))
        )
    return int(
        db.session.scalar(
            select(func.count(Booking.id)).where(
                Booking.resource_id.in_(ids),
                Booking.status.in_(HOLDING_STATUSES),
                Booking.start_at < closure.end_at,
                Booking.end_at > closure.start_at,
            )
        )
        or 0
    )


def delete_closure(actor: User | None, closure: Closure) -> None:
    resource = db.session.get(Resource, closure.resource_id)
    assert resource is not None
    _authorize(actor, resource.institute_id)
    begin_write()
    audit.record("closure.delete", closure, actor=actor, data={"resource_id": resource.id})
    db.session.delete(closure)
    db.session.flush()


def field_names(data_cls: type[Any]) -> list[str]:
    return [f.name for f in fields(data_cls)]
