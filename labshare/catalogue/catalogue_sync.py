"""The catalogue as an institute's own system (a LIMS) keeps it: labs and instruments
found again by the institute's own id (``external_id``), created or updated with the
very checks of the web forms and the import (``catalogue_admin``), retired.

An update that changes nothing writes nothing: no audit row, no calendar version
bump, so a nightly sync of an unchanged catalogue leaves no trace.
"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from labshare.booking.permissions import is_staff_of
from labshare.catalogue import catalogue_admin
from labshare.catalogue.catalogue_admin import InstrumentData, LabData
from labshare.database import begin_write
from labshare.errors import NotAllowed, ValidationFailed
from labshare.extensions import db
from labshare.models import Institute, Instrument, Lab, Resource, ResourceStatus, User
from labshare.ops import audit

EXTERNAL_ID_MAX = 100


def check_external_id(value: str | None, *, field: str = "external_id") -> str | None:
    """The id as stored: stripped; None when empty. Control characters and ids longer
    than 100 characters are refused, naming ``field``."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if len(text) > EXTERNAL_ID_MAX:
        raise ValidationFailed(
            _l("At most %(n)d characters are allowed.", n=EXTERNAL_ID_MAX), field=field
        )
    if any(ord(c) < 32 for c in text):
        raise ValidationFailed(_l("Control characters are not allowed."), field=field)
    return text


def by_external_id(institute_id: int, external_id: str) -> Resource | None:
    return db.session.scalar(
        select(Resource).where(
            Resource.institute_id == institute_id, Resource.external_id == external_id
        )
    )


def _check_unused(institute_id: int, external_id: str | None, own_id: int | None) -> None:
    """422 on external_id when another resource of the institute holds the id."""
    if external_id is None:
        return
    holder = by_external_id(institute_id, external_id)
    if holder is not None and holder.id != own_id:
        raise ValidationFailed(
            _l(
                "Another lab or instrument of the institute has this id (No. %(id)d).", id=holder.id
            ),
            field="external_id",
        )


def _set_external_id(resource: Resource, external_id: str | None) -> None:
    if external_id == resource.external_id:
        return
    _check_unused(resource.institute_id, external_id, resource.id)
    resource.external_id = external_id
    db.session.flush()


def _authorize(actor: User | None, institute_id: int) -> None:
    if actor is not None and not is_staff_of(actor, institute_id):
        raise NotAllowed(_l("Only staff of the institute can change its catalogue."))


def save_lab(
    actor: User | None,
    institute: Institute,
    lab: Lab | None,
    data: LabData,
    external_id: str | None,
) -> Lab:
    """Create (``lab`` None) or update a lab, with its external id."""
    _authorize(actor, institute.id)
    begin_write()
    if lab is None:
        catalogue_admin.lab_values(data)  # every field checked before anything is written
        _check_unused(institute.id, external_id, None)
        lab = catalogue_admin.create_lab(actor, institute, data)
    else:
        catalogue_admin.lab_values(data)
        _check_unused(institute.id, external_id, lab.id)
        lab = catalogue_admin.update_lab(actor, lab, data)
    _set_external_id(lab, external_id)
    return lab


def save_instrument(
    actor: User | None,
    institute: Institute,
    instrument: Instrument | None,
    lab: Lab | None,
    data: InstrumentData,
    external_id: str | None,
) -> Instrument:
    """Create (``instrument`` None) or update an instrument, with its external id."""
    _authorize(actor, institute.id)
    begin_write()
    if lab is not None and lab.institute_id != institute.id:
        lab = None  # another institute's lab is no lab of this one: 422 on lab_id
    if instrument is None:
        if lab is None:
            raise ValidationFailed(_l("Choose one of the institute's labs."), field="lab_id")
        catalogue_admin.instrument_values(data)
        _check_unused(institute.id, external_id, None)
        instrument = catalogue_admin.create_instrument(actor, lab, data)
    else:
        catalogue_admin.instrument_values(data)
        _check_unused(institute.id, external_id, instrument.id)
        instrument = catalogue_admin.update_instrument(actor, instrument, lab, data)
    _set_external_id(instrument, external_id)
    return instrument


def retire(actor: User | None, resource: Resource) -> Resource:
    """Take a lab or instrument out of the catalogue for good (status ``retired``:
    nothing new is booked on it; its history stays). Retiring twice changes nothing."""
    _authorize(actor, resource.institute_id)
    begin_write()
    if resource.status == ResourceStatus.RETIRED:
        return resource
    was = resource.status
    resource.status = ResourceStatus.RETIRED
    db.session.flush()
    audit.record(
        f"{resource.kind}.retire",
        resource,
        actor=actor,
        from_state=str(was),
        to_state=str(ResourceStatus.RETIRED),
    )
    return resource
