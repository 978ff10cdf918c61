"""Service orders over the API: the catalogue, orders, their transitions, the
certificate download and the public verification. The rules and tenancy live in
labshare/orders; each handler commits once, at the end."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Response
from flask_babel import gettext as _
from pydantic import Field
from sqlalchemy import func, select

from labshare.api import bp
from labshare.api.registry import BodyModel, QueryModel, ResponseModel, endpoint
from labshare.api.schemas import MAX_ID, PageQuery
from labshare.api.serialize import page_json
from labshare.errors import NotFound, ValidationFailed
from labshare.extensions import db
from labshare.models import (
    DeliveryMethod,
    Institute,
    OrderServiceType,
    OrderStatus,
    Role,
    ServiceOffering,
    ServiceOrder,
    User,
)
from labshare.models import Field as MeasurementField
from labshare.orders import certificates, intake, lifecycle
from labshare.orders import offerings as offering_service
from labshare.orders.api_json import order_json
from labshare.orders.certificates import verify_limit
from labshare.orders.downloads import certificate_response, upload_from_request
from labshare.orders.permissions import visible_orders

TRANSITION_ERRORS = (403, 404, 409, 422)

# -- models --------------------------------------------------------------------------------


class OfferingQuery(PageQuery):
    institute: str | None = Field(None, max_length=32, description="institute code")
    field: MeasurementField | None = None
    service_type: OrderServiceType | None = None


class OfferingOut(ResponseModel):
    id: int
    institute: dict[str, Any]
    field: MeasurementField
    service_type: OrderServiceType
    name: str
    name_en: str | None
    procedure: str | None
    turnaround_days: int
    fee: float
    fee_waiver_percent: int
    interval_months: int | None


class OfferingCreate(BodyModel):
    field: str = Field(description="measurement field")
    service_type: str = Field(description="verification, calibration or testing")
    name: str
    name_en: str | None = None
    procedure: str | None = None
    turnaround_days: int = 7
    fee: float = Field(0, allow_inf_nan=False)
    fee_waiver_percent: int = 0
    interval_months: int | None = None


class ItemIn(BodyModel):
    offering_id: int | None = Field(None, description="a service of the chosen institute")
    name: str | None = Field(None, description="instrument or sample name")
    model: str | None = None
    serial_number: str | None = None
    measuring_range: str | None = None
    accuracy_class: str | None = None
    quantity: int | None = Field(1, description="1 to 10000")
    procedure: str | None = Field(None, description="e.g. a JJG or JJF number")


class OrderCreate(BodyModel):
    institute_id: int = Field(ge=1, le=MAX_ID)
    delivery: str = Field(description="drop_off, courier or on_site")
    tracking_number: str | None = None
    notes: str | None = None
    items: list[ItemIn] = Field(description="1 to 200 items")


class OrderQuery(PageQuery):
    status: OrderStatus | None = None


class FeeIn(BodyModel):
    item_id: int
    fee: float = Field(allow_inf_nan=False)


class AcceptBody(BodyModel):
    promised_date: dt.date | None = Field(None, description="YYYY-MM-DD, the institute's date")
    fees: list[FeeIn] = Field(
        default_factory=list, description="fee per item; default: the catalogue fee x quantity"
    )


class ConditionIn(BodyModel):
    item_id: int
    condition: str | None = None


class ReceiveBody(BodyModel):
    conditions: list[ConditionIn] = Field(default_factory=list)


class ReasonBody(BodyModel):
    reason: str | None = None


class ItemOut(ResponseModel):
    id: int
    position: int
    offering_id: int
    service_type: OrderServiceType
    field: MeasurementField
    name: str
    model: str | None
    serial_number: str | None
    measuring_range: str | None
    accuracy_class: str | None
    quantity: int
    procedure: str | None
    fee: float
    fee_waived: float
    condition_note: str | None
    result: str | None
    certificate_number: str | None
    verification_code: str | None
    has_certificate: bool
    completed_at: dt.datetime | None
    interval_months: int | None
    due_date: dt.date | None


class OrderOut(ResponseModel):
    id: int
    institute: dict[str, Any]
    company_id: int
    user_id: int
    status: OrderStatus
    delivery: DeliveryMethod
    tracking_number: str | None
    notes: str | None
    fee: float
    fee_waived: float
    promised_date: dt.date | None
    overdue: bool
    decision_reason: str | None
    created_at: dt.datetime
    decided_at: dt.datetime | None
    received_at: dt.datetime | None
    completed_at: dt.datetime | None
    closed_at: dt.datetime | None
    items: list[ItemOut]
    actions: list[str] = Field(description="the moves the caller may make now")


class VerifyQuery(QueryModel):
    number: str = Field(min_length=1, max_length=100, description="certificate number")
    code: str = Field(min_length=1, max_length=32, description="verification code")


class VerifyOut(ResponseModel):
    genuine: bool
    certificate_number: str
    issued_by: str | None
    issued_by_en: str | None
    issued_at: dt.date | None
    result: str | None
    item: str | None


# -- helpers -------------------------------------------------------------------------------


def load_order(user: User, order_id: int) -> ServiceOrder:
    order = db.session.get(ServiceOrder, order_id) if order_id <= MAX_ID else None
    if order is None or not lifecycle.visible_to(order, user):
        raise NotFound(_("No service order %(id)s.", id=order_id))
    return order


# -- catalogue -----------------------------------------------------------------------------


@endpoint(
    bp,
    "/service-offerings",
    "GET",
    summary="What institutes do with items sent to them",
    description="Per institute and field: the service, typical turnaround and fee per item.",
    tag="service-orders",
    query=OfferingQuery,
    response=OfferingOut,
    paginated=True,
)
def list_offerings(query: OfferingQuery) -> dict[str, Any]:
    where: list[Any] = [ServiceOffering.active.is_(True), Institute.active.is_(True)]
    if query.institute:
        where.append(Institute.code == query.institute)
    if query.field is not None:
        where.append(ServiceOffering.field == query.field)
    if query.service_type is not None:
        where.append(ServiceOffering.service_type == query.service_type)
    base = select(ServiceOffering, Institute).join(
        Institute, Institute.id == ServiceOffering.institute_id
    )
    total = db.session.scalar(
        select(func.count(ServiceOffering.id))
        .join(Institute, Institute.id == ServiceOffering.institute_id)
        .where(*where)
    )
    rows = db.session.execute(
        base.where(*where)
        .order_by(ServiceOffering.id)
        .offset((query.page - 1) * query.per_page)
        .limit(query.per_page)
    ).all()
    items = [
        {
            "id": o.id,
            "institute": {"id": i.id, "code": i.code, "name": i.name},
            "field": o.field.value,
            "service_type": o.service_type.value,
            "name": o.name,
            "name_en": o.name_en,
            "procedure": o.procedure,
            "turnaround_days": o.turnaround_days,
            "fee": float(o.fee),
            "fee_waiver_percent": o.fee_waiver_percent,
            "interval_months": o.interval_months,
        }
        for o, i in rows
    ]
    return page_json(items, int(total or 0), query.page, query.per_page)


def offering_json(o: ServiceOffering) -> dict[str, Any]:
    i = db.session.get(Institute, o.institute_id)
    assert i is not None
    return {
        "id": o.id,
        "institute": {"id": i.id, "code": i.code, "name": i.name},
        "field": o.field.value,
        "service_type": o.service_type.value,
        "name": o.name,
        "name_en": o.name_en,
        "procedure": o.procedure,
        "turnaround_days": o.turnaround_days,
        "fee": float(o.fee),
        "fee_waiver_percent": o.fee_waiver_percent,
        "interval_months": o.interval_months,
    }


@endpoint(
    bp,
    "/service-offerings",
    "POST",
    summary="Add a service to the caller's institute's catalogue (staff)",
    tag="service-orders",
    roles=(Role.STAFF,),
    body=OfferingCreate,
    response=OfferingOut,
    status=201,
    errors=(422,),
)
def create_offering(user: User, body: OfferingCreate) -> dict[str, Any]:
    offering = offering_service.create_offering(
        user,
        field=body.field,
        service_type=body.service_type,
        name=body.name,
        name_en=body.name_en,
        procedure=body.procedure,
        turnaround_days=body.turnaround_days,
        fee=str(body.fee),
        fee_waiver_percent=body.fee_waiver_percent,
        interval_months=body.interval_months,
    )
    db.session.commit()
    return offering_json(offering)


# -- orders --------------------------------------------------------------------------------


@endpoint(
    bp,
    "/service-orders",
    "GET",
    summary="Service orders the caller may see",
    description="SME members: their company's; staff: their institute's; admins: all.",
    tag="service-orders",
    auth=True,
    query=OrderQuery,
    response=OrderOut,
    paginated=True,
)
def list_orders(user: User, query: OrderQuery) -> dict[str, Any]:
    where = [visible_orders(user)]
    if query.status is not None:
        where.append(ServiceOrder.status == query.status)
    total = db.session.scalar(select(func.count(ServiceOrder.id)).where(*where)) or 0
    rows = db.session.scalars(
        select(ServiceOrder)
        .where(*where)
        .order_by(ServiceOrder.created_at.desc(), ServiceOrder.id.desc())
        .offset((query.page - 1) * query.per_page)
        .limit(query.per_page)
    )
    return page_json([order_json(o, user) for o in rows], int(total), query.page, query.per_page)


@endpoint(
    bp,
    "/service-orders/<int:order_id>",
    "GET",
    summary="One service order",
    tag="service-orders",
    auth=True,
    response=OrderOut,
    errors=(404,),
)
def get_order(user: User, order_id: int) -> dict[str, Any]:
    return order_json(load_order(user, order_id), user)


@endpoint(
    bp,
    "/service-orders",
    "POST",
    summary="Send items to an institute (SME members)",
    description="201 with the order, status submitted. 422 names the field: items "
    "(none, or more than 200), items.N.quantity, items.N.offering_id ...",
    tag="service-orders",
    roles=(Role.SME,),
    body=OrderCreate,
    response=OrderOut,
    status=201,
    errors=(422,),
)
def create_order(user: User, body: OrderCreate) -> dict[str, Any]:
    items = [intake.ItemInput(**i.model_dump()) for i in body.items]
    order = intake.create_order(
        body.institute_id,
        user,
        items,
        delivery=body.delivery,
        tracking_number=body.tracking_number,
        notes=body.notes,
    )
    db.session.commit()
    return order_json(order, user)


@endpoint(
    bp,
    "/service-orders/<int:order_id>/accept",
    "POST",
    summary="Accept with a quote (staff of its institute): submitted -> accepted",
    tag="service-orders",
    auth=True,
    body=AcceptBody,
    response=OrderOut,
    errors=TRANSITION_ERRORS,
)
def accept_order(user: User, order_id: int, body: AcceptBody) -> dict[str, Any]:
    fees: dict[int, Any] = {}
    for n, fee in enumerate(body.fees):
        if fee.item_id in fees:
            raise ValidationFailed(_("Each item once."), field=f"fees.{n}.item_id")
        fees[fee.item_id] = str(fee.fee)
    order = lifecycle.accept_order(
        load_order(user, order_id), user, promised_date=body.promised_date, fees=fees
    )
    db.session.commit()
    return order_json(order, user)


@endpoint(
    bp,
    "/service-orders/<int:order_id>/reject",
    "POST",
    summary="Reject with a reason (staff of its institute): submitted -> rejected",
    tag="service-orders",
    auth=True,
    body=ReasonBody,
    response=OrderOut,
    errors=TRANSITION_ERRORS,
)
def reject_order(user: User, order_id: int, body: ReasonBody) -> dict[str, Any]:
    order = lifecycle.reject_order(load_order(user, order_id), user, body.reason)
    db.session.commit()
    return order_json(order, user)


@endpoint(
    bp,
    "/service-orders/<int:order_id>/cancel",
    "POST",
    summary="Withdraw the order before the items are received (its company)",
    tag="service-orders",
    auth=True,
    body=ReasonBody,
    response=OrderOut,
    errors=TRANSITION_ERRORS,
)
def cancel_order(user: User, order_id: int, body: ReasonBody) -> dict[str, Any]:
    order = lifecycle.cancel_order(load_order(user, order_id), user, body.reason)
    db.session.commit()
    return order_json(order, user)


@endpoint(
    bp,
    "/service-orders/<int:order_id>/receive",
    "POST",
    summary="Check the items in, noting their condition (staff): accepted -> received",
    tag="service-orders",
    auth=True,
    body=ReceiveBody,
    response=OrderOut,
    errors=TRANSITION_ERRORS,
)
def receive_order(user: User, order_id: int, body: ReceiveBody) -> dict[str, Any]:
    conditions = {c.item_id: c.condition for c in body.conditions}
    order = lifecycle.receive_order(load_order(user, order_id), user, conditions)
    db.session.commit()
    return order_json(order, user)


@endpoint(
    bp,
    "/service-orders/<int:order_id>/start",
    "POST",
    summary="Start the work (staff): received -> in_progress",
    tag="service-orders",
    auth=True,
    response=OrderOut,
    errors=TRANSITION_ERRORS,
)
def start_order(user: User, order_id: int) -> dict[str, Any]:
    order = lifecycle.start_order(load_order(user, order_id), user)
    db.session.commit()
    return order_json(order, user)


@endpoint(
    bp,
    "/service-orders/<int:order_id>/items/<int:item_id>/complete",
    "POST",
    summary="Complete one item with its result and certificate PDF (staff)",
    description="multipart/form-data: result (conforming, not_conforming, calibrated), "
    "certificate_number, interval_months (optional), file (the PDF, at most "
    "CERTIFICATE_MAX_BYTES, 10 MB by default; checked by content). The last item "
    "completes the order. 413 payload_too_large for a larger file.",
    tag="service-orders",
    auth=True,
    response=OrderOut,
    errors=(*TRANSITION_ERRORS, 413),
    raw_body={
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["result", "certificate_number", "file"],
                    "properties": {
                        "result": {
                            "type": "string",
                            "enum": ["conforming", "not_conforming", "calibrated"],
                        },
                        "certificate_number": {"type": "string", "maxLength": 100},
                        "interval_months": {"type": "integer", "minimum": 1, "maximum": 120},
                        "file": {"type": "string", "format": "binary"},
                    },
                }
            }
        },
    },
)
def complete_item(user: User, order_id: int, item_id: int) -> dict[str, Any]:
    order = load_order(user, order_id)
    upload = upload_from_request()
    lifecycle.complete_item(
        order,
        item_id,
        user,
        result=upload.result,
        certificate_number=upload.certificate_number,
        pdf=upload.data,
        interval_months=upload.interval_months,
    )
    db.session.commit()
    return order_json(order, user)


@endpoint(
    bp,
    "/service-orders/<int:order_id>/return",
    "POST",
    summary="The items were sent back (staff): completed -> returned",
    tag="service-orders",
    auth=True,
    response=OrderOut,
    errors=TRANSITION_ERRORS,
)
def return_order(user: User, order_id: int) -> dict[str, Any]:
    order = lifecycle.return_order(load_order(user, order_id), user)
    db.session.commit()
    return order_json(order, user)


@endpoint(
    bp,
    "/service-orders/<int:order_id>/collect",
    "POST",
    summary="The company fetched the items (staff): completed -> collected",
    tag="service-orders",
    auth=True,
    response=OrderOut,
    errors=TRANSITION_ERRORS,
)
def collect_order(user: User, order_id: int) -> dict[str, Any]:
    order = lifecycle.collect_order(load_order(user, order_id), user)
    db.session.commit()
    return order_json(order, user)


@endpoint(
    bp,
    "/service-orders/<int:order_id>/items/<int:item_id>/certificate",
    "GET",
    summary="An item's certificate or report (PDF): the order's company and its institute's staff",
    tag="service-orders",
    auth=True,
    errors=(404,),
    content_type="application/pdf",
)
def download_certificate(user: User, order_id: int, item_id: int) -> Response:
    return certificate_response(load_order(user, order_id), item_id)


@endpoint(
    bp,
    "/certificates/verify",
    "GET",
    summary="Is this certificate genuine? (number and verification code; rate-limited)",
    description="The same answer shape whether the number is unknown or the code wrong: "
    "genuine false and nothing else.",
    tag="service-orders",
    query=VerifyQuery,
    response=VerifyOut,
    limit=verify_limit,
)
def verify_certificate(query: VerifyQuery) -> dict[str, Any]:
    return certificates.verify(query.number, query.code).as_dict()
