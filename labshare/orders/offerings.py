"""An institute's service catalogue for orders: what it does with items sent to it."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from flask_babel import lazy_gettext as _l

from labshare.booking.permissions import is_staff_of
from labshare.errors import NotAllowed, NotFound, ValidationFailed
from labshare.extensions import db
from labshare.models import Field, OrderServiceType, ServiceOffering, User
from labshare.ops import audit
from labshare.orders.inputs import MAX_ID, check_no_control


def _staff_institute(actor: User) -> int:
    if actor.institute_id is None or not is_staff_of(actor, actor.institute_id):
        raise NotAllowed(_l("Only an institute's staff manage its services."))
    return actor.institute_id


def _int(value: object, field: str, low: int, high: int, *, required: bool) -> int | None:
    if value is None or value == "":
        if required:
            raise ValidationFailed(_l("This field is required."), field=field)
        return None
    try:
        number = int(str(value))
    except ValueError:
        raise ValidationFailed(_l("A whole number is required."), field=field) from None
    if not low <= number <= high:
        raise ValidationFailed(
            _l("A number from %(low)d to %(high)d is required.", low=low, high=high), field=field
        )
    return number


def create_offering(
    actor: User,
    *,
    field: str | None,
    service_type: str | None,
    name: str | None,
    name_en: str | None = None,
    procedure: str | None = None,
    turnaround_days: object = 7,
    fee: object = "0",
    fee_waiver_percent: object = 0,
    interval_months: object = None,
) -> ServiceOffering:
    """A new service of the actor's institute; each value checked, naming its field."""
    institute_id = _staff_institute(actor)
    try:
        fld = Field(field or "")
    except ValueError:
        raise ValidationFailed(_l("Choose a measurement field."), field="field") from None
    try:
        service = OrderServiceType(service_type or "")
    except ValueError:
        raise ValidationFailed(
            _l("Choose verification, calibration or testing."), field="service_type"
        ) from None
    text = (name or "").strip()
    for value, what in ((text, "name"), (name_en or "", "name_en"), (procedure or "", "procedure")):
        check_no_control(value, what)
    if not text or len(text) > 200:
        raise ValidationFailed(_l("Give a name of at most 200 characters."), field="name")
    try:
        money = Decimal(str(fee if fee not in (None, "") else "0"))
    except InvalidOperation:
        raise ValidationFailed(_l("Not a number."), field="fee") from None
    if not money.is_finite() or money < 0 or money > Decimal("1e9"):
        raise ValidationFailed(_l("A fee is a number of at least 0."), field="fee")
    offering = ServiceOffering(
        institute_id=institute_id,
        field=fld,
        service_type=service,
        name=text,
        name_en=(name_en or "").strip()[:200] or None,
        procedure=(procedure or "").strip()[:100] or None,
        turnaround_days=_int(turnaround_days, "turnaround_days", 0, 365, required=True),
        fee=money.quantize(Decimal("0.01")),
        fee_waiver_percent=_int(fee_waiver_percent, "fee_waiver_percent", 0, 100, required=True),
        interval_months=_int(interval_months, "interval_months", 1, 120, required=False),
    )
    db.session.add(offering)
    db.session.flush()
    audit.record("service_offering.create", offering, actor=actor, data={"name": text})
    return offering


def set_active(offering_id: int, actor: User, active: bool) -> ServiceOffering:
    """Withdraw a service from the catalogue (orders already placed keep it) or offer
    it again."""
    institute_id = _staff_institute(actor)
    offering = db.session.get(ServiceOffering, offering_id) if 1 <= offering_id <= MAX_ID else None
    if offering is None or offering.institute_id != institute_id:
        raise NotFound(_l("No such service."))
    offering.active = active
    audit.record(
        "service_offering.activate" if active else "service_offering.withdraw",
        offering,
        actor=actor,
    )
    return offering
