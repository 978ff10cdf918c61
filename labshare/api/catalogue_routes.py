"""The catalogue for staff and their institute's systems (a LIMS): labs, instruments,
rules, opening hours, closures and quotas. The checks are the web forms' and the
import's (``catalogue_admin``, ``quotas``); a resource of another institute is 404.
``PUT .../by-external-id/{id}`` creates or updates by the institute's own id, and a
payload that changes nothing writes nothing (no audit row, no calendar change)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Response, jsonify
from flask_babel import gettext as _

from labshare.api import bp
from labshare.api.catalogue_schemas import (
    CatalogueItemOut,
    ClosureBody,
    ClosureOut,
    HoursBody,
    InstrumentBody,
    LabBody,
    QuotaBody,
    RulesBody,
    closure_json,
    instrument_data,
    item_json,
    lab_data,
)
from labshare.api.registry import endpoint
from labshare.api.schemas import MAX_ID, QuotaOut
from labshare.booking.policies import closures, quotas
from labshare.booking.rules import institute_zone
from labshare.catalogue import catalogue_admin, catalogue_sync
from labshare.catalogue.catalogue_admin import RulesData
from labshare.errors import NotFound, ValidationFailed
from labshare.extensions import db
from labshare.models import (
    BookingQuota,
    Closure,
    Institute,
    Instrument,
    Lab,
    Resource,
    Role,
    User,
)
from labshare.timeutil import isoformat_local
from labshare.web.manage.forms import parse_periods

ERRORS = (403, 404, 422)


# -- helpers ------------------------------------------------------------------------------


def _institute(user: User) -> Institute:
    institute = db.session.get(Institute, user.institute_id)
    assert institute is not None  # staff always have one (a check constraint)
    return institute


def own_resource(user: User, resource_id: int, kind: type[Resource] = Resource) -> Any:
    """One of the caller's institute's resources; anything else (another institute's,
    the wrong kind) is 404, as if it did not exist."""
    resource = db.session.get(Resource, min(resource_id, MAX_ID))
    if resource is None or resource.institute_id != user.institute_id:
        raise NotFound(_("No resource %(id)s.", id=resource_id))
    if not isinstance(resource, kind):
        raise NotFound(_("No resource %(id)s.", id=resource_id))
    return resource


def _lab_of(user: User, body: InstrumentBody) -> Lab | None:
    """The body's lab, by id or by external id; None (the service answers 422 on
    lab_id) when it is not one of the caller's institute's labs."""
    if body.lab_external_id is not None:
        key = catalogue_sync.check_external_id(body.lab_external_id, field="lab_external_id")
        found = catalogue_sync.by_external_id(user.institute_id or 0, key) if key else None
        if not isinstance(found, Lab):
            raise ValidationFailed(
                _("No lab of the institute has this id."), field="lab_external_id"
            )
        return found
    if body.lab_id is None:
        return None
    lab = db.session.get(Resource, body.lab_id)
    return lab if isinstance(lab, Lab) and lab.institute_id == user.institute_id else None


def _created_or_found(body: dict[str, Any], created: bool) -> Response:
    response = jsonify(body)
    response.status_code = 201 if created else 200
    return response


def _reload(resource: Resource) -> Resource:
    db.session.refresh(resource)  # the calendar version the triggers wrote
    return resource


# -- labs ---------------------------------------------------------------------------------


@endpoint(
    bp,
    "/catalogue/labs",
    "POST",
    summary="Create a lab (staff)",
    description="A lab of the caller's institute. Every bad field is a 422 naming it.",
    tag="catalogue",
    roles=(Role.STAFF,),
    body=LabBody,
    response=CatalogueItemOut,
    status=201,
    errors=ERRORS,
)
def create_lab(user: User, body: LabBody) -> dict[str, Any]:
    key = catalogue_sync.check_external_id(body.external_id)
    lab = catalogue_sync.save_lab(user, _institute(user), None, lab_data(body), key)
    db.session.commit()
    return item_json(_reload(lab))


@endpoint(
    bp,
    "/catalogue/labs/<int:lab_id>",
    "PUT",
    summary="Replace a lab's details (staff of its institute)",
    tag="catalogue",
    roles=(Role.STAFF,),
    body=LabBody,
    response=CatalogueItemOut,
    errors=ERRORS,
)
def update_lab(user: User, lab_id: int, body: LabBody) -> dict[str, Any]:
    lab = own_resource(user, lab_id, Lab)
    key = catalogue_sync.check_external_id(body.external_id)
    catalogue_sync.save_lab(user, _institute(user), lab, lab_data(body), key)
    db.session.commit()
    return item_json(_reload(lab))


@endpoint(
    bp,
    "/catalogue/labs/by-external-id/<path:external_id>",
    "PUT",
    summary="Create or update a lab by the institute's own id (a LIMS sync)",
    description="The same payload again changes nothing: no audit row, no calendar change.",
    tag="catalogue",
    roles=(Role.STAFF,),
    body=LabBody,
    response=CatalogueItemOut,
    errors=ERRORS,
)
def sync_lab(user: User, external_id: str, body: LabBody) -> Any:
    key = catalogue_sync.check_external_id(external_id)
    if key is None:
        raise ValidationFailed(_("This field is required."), field="external_id")
    found = catalogue_sync.by_external_id(user.institute_id or 0, key)
    if found is not None and not isinstance(found, Lab):
        raise ValidationFailed(_("This id belongs to an instrument."), field="external_id")
    lab = catalogue_sync.save_lab(user, _institute(user), found, lab_data(body), key)
    db.session.commit()
    return _created_or_found(item_json(_reload(lab)), found is None)


@endpoint(
    bp,
    "/catalogue/labs/<int:lab_id>/opening-hours",
    "PUT",
    summary="Replace a lab's weekly opening hours (staff of its institute)",
    description="Local times of the institute; 24:00 closes at midnight, a period that "
    "closes before it opens runs overnight. The same hours again change nothing.",
    tag="catalogue",
    roles=(Role.STAFF,),
    body=HoursBody,
    response=CatalogueItemOut,
    errors=ERRORS,
)
def set_hours(user: User, lab_id: int, body: HoursBody) -> dict[str, Any]:
    lab = own_resource(user, lab_id, Lab)
    periods: list[tuple[int, dt.time, dt.time]] = []
    for index, p in enumerate(body.periods):
        try:
            parsed = parse_periods(f"{p.opens}-{p.closes}")
        except ValueError:
            parsed = []
        if len(parsed) != 1:
            raise ValidationFailed(
                _("Write opening hours like 08:30-12:00."), field=f"periods[{index}]"
            )
        periods.append((p.weekday, *parsed[0]))
    catalogue_admin.set_opening_hours(user, lab, periods)
    db.session.commit()
    return item_json(_reload(lab))


# -- instruments --------------------------------------------------------------------------


@endpoint(
    bp,
    "/catalogue/instruments",
    "POST",
    summary="Create an instrument (staff)",
    description="In one of the caller's institute's labs (lab_id or lab_external_id). "
    "The checks are the form's and the import's; every bad field is a 422 naming it.",
    tag="catalogue",
    roles=(Role.STAFF,),
    body=InstrumentBody,
    response=CatalogueItemOut,
    status=201,
    errors=ERRORS,
)
def create_instrument(user: User, body: InstrumentBody) -> dict[str, Any]:
    key = catalogue_sync.check_external_id(body.external_id)
    lab = _lab_of(user, body)
    instrument = catalogue_sync.save_instrument(
        user, _institute(user), None, lab, instrument_data(body), key
    )
    db.session.commit()
    return item_json(_reload(instrument))


@endpoint(
    bp,
    "/catalogue/instruments/<int:instrument_id>",
    "PUT",
    summary="Replace an instrument's details (staff of its institute)",
    tag="catalogue",
    roles=(Role.STAFF,),
    body=InstrumentBody,
    response=CatalogueItemOut,
    errors=ERRORS,
)
def update_instrument(user: User, instrument_id: int, body: InstrumentBody) -> dict[str, Any]:
    instrument = own_resource(user, instrument_id, Instrument)
    key = catalogue_sync.check_external_id(body.external_id)
    lab = _lab_of(user, body)
    catalogue_sync.save_instrument(
        user, _institute(user), instrument, lab, instrument_data(body), key
    )
    db.session.commit()
    return item_json(_reload(instrument))


@endpoint(
    bp,
    "/catalogue/instruments/by-external-id/<path:external_id>",
    "PUT",
    summary="Create or update an instrument by the institute's own id (a LIMS sync)",
    description="201 when created, 200 when found. The same payload again changes "
    "nothing: no audit row, no calendar change.",
    tag="catalogue",
    roles=(Role.STAFF,),
    body=InstrumentBody,
    response=CatalogueItemOut,
    errors=ERRORS,
)
def sync_instrument(user: User, external_id: str, body: InstrumentBody) -> Any:
    key = catalogue_sync.check_external_id(external_id)
    if key is None:
        raise ValidationFailed(_("This field is required."), field="external_id")
    found = catalogue_sync.by_external_id(user.institute_id or 0, key)
    if found is not None and not isinstance(found, Instrument):
        raise ValidationFailed(_("This id belongs to a lab."), field="external_id")
    lab = _lab_of(user, body)
    instrument = catalogue_sync.save_instrument(
        user, _institute(user), found, lab, instrument_data(body), key
    )
    db.session.commit()
    return _created_or_found(item_json(_reload(instrument)), found is None)


# -- any resource -------------------------------------------------------------------------


@endpoint(
    bp,
    "/catalogue/resources/<int:resource_id>/retire",
    "POST",
    summary="Retire a lab or instrument (staff of its institute)",
    description="Status retired: nothing new is booked on it; its history stays.",
    tag="catalogue",
    roles=(Role.STAFF,),
    response=CatalogueItemOut,
    errors=(403, 404),
)
def retire_resource(user: User, resource_id: int) -> dict[str, Any]:
    resource = own_resource(user, resource_id)
    catalogue_sync.retire(user, resource)
    db.session.commit()
    return item_json(_reload(resource))


@endpoint(
    bp,
    "/catalogue/resources/<int:resource_id>/rules",
    "PUT",
    summary="Give a lab or instrument booking rules of its own (staff of its institute)",
    description="The same checks as the rules form; the same rules again change nothing.",
    tag="catalogue",
    roles=(Role.STAFF,),
    body=RulesBody,
    response=CatalogueItemOut,
    errors=ERRORS,
)
def set_rules(user: User, resource_id: int, body: RulesBody) -> dict[str, Any]:
    resource = own_resource(user, resource_id)
    catalogue_admin.set_rules(user, resource, RulesData(**body.model_dump()))
    db.session.commit()
    return item_json(_reload(resource))


@endpoint(
    bp,
    "/catalogue/resources/<int:resource_id>/rules/clear",
    "POST",
    summary="Drop a resource's own rules: it follows its lab's, or the defaults",
    tag="catalogue",
    roles=(Role.STAFF,),
    response=CatalogueItemOut,
    errors=(403, 404),
)
def clear_rules(user: User, resource_id: int) -> dict[str, Any]:
    resource = own_resource(user, resource_id)
    catalogue_admin.clear_rules(user, resource)
    db.session.commit()
    return item_json(_reload(resource))


@endpoint(
    bp,
    "/catalogue/resources/<int:resource_id>/closures",
    "POST",
    summary="Close a lab or instrument for a period (staff of its institute)",
    description="A closure over time-holding bookings is a 409 listing them (error."
    "bookings) unless on_bookings says what happens to them; each booker is then told "
    "once, in-app and by mail, with the nearest free alternatives. dry_run=true: 200 "
    "with the bookings it would cover, nothing written.",
    tag="catalogue",
    roles=(Role.STAFF,),
    body=ClosureBody,
    response=ClosureOut,
    status=201,
    errors=(403, 404, 409, 422),
)
def add_closure(user: User, resource_id: int, body: ClosureBody) -> Any:
    resource = own_resource(user, resource_id)
    closure, inside = closures.close(
        user,
        resource,
        body.start,
        body.end,
        kind=body.kind,
        note=body.note,
        on_bookings=body.on_bookings,
        message=body.message,
        dry_run=body.dry_run,
    )
    briefs = [closures.booking_brief(b) for b in inside]
    if closure is None:
        tz = institute_zone(resource)
        db.session.rollback()
        return _created_or_found(
            {
                "id": None,
                "resource_id": resource.id,
                "start": isoformat_local(body.start, tz),
                "end": isoformat_local(body.end, tz),
                "kind": body.kind,
                "note": body.note,
                "bookings": briefs,
            },
            False,
        )
    db.session.commit()
    return {**closure_json(closure, institute_zone(resource)), "bookings": briefs}


@endpoint(
    bp,
    "/catalogue/closures/<int:closure_id>",
    "DELETE",
    summary="Remove a closure (staff of its institute)",
    tag="catalogue",
    roles=(Role.STAFF,),
    response=ClosureOut,
    errors=(403, 404),
)
def delete_closure(user: User, closure_id: int) -> dict[str, Any]:
    closure = db.session.get(Closure, min(closure_id, MAX_ID))
    if closure is None:
        raise NotFound(_("No such closure."))
    resource = own_resource(user, closure.resource_id)
    out = closure_json(closure, institute_zone(resource))
    catalogue_admin.delete_closure(user, closure)
    db.session.commit()
    return out


@endpoint(
    bp,
    "/catalogue/quotas",
    "POST",
    summary="Create a booking quota of the institute or one of its resources (staff)",
    tag="catalogue",
    roles=(Role.STAFF,),
    body=QuotaBody,
    response=QuotaOut,
    status=201,
    errors=ERRORS,
)
def create_quota(user: User, body: QuotaBody) -> dict[str, Any]:
    quota = quotas.create_quota(
        user,
        user.institute_id or 0,
        body.resource_id,
        period=body.period,
        max_hours=body.max_hours,
        max_bookings=body.max_bookings,
        count_completed=body.count_completed,
    )
    db.session.commit()
    return quotas.quota_json(quota)


@endpoint(
    bp,
    "/catalogue/quotas/<int:quota_id>",
    "DELETE",
    summary="Remove one of the institute's quotas (staff)",
    tag="catalogue",
    roles=(Role.STAFF,),
    response=QuotaOut,
    errors=(403, 404),
)
def delete_quota(user: User, quota_id: int) -> dict[str, Any]:
    quota = db.session.get(BookingQuota, min(quota_id, MAX_ID))
    if quota is None or quota.institute_id != user.institute_id:
        raise NotFound(_("No such quota."))
    out = quotas.quota_json(quota)
    quotas.delete_quota(user, quota.id, quota.institute_id)
    db.session.commit()
    return out
