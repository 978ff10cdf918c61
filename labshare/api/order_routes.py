"""Service orders over the API: orders, their transitions, the certificate download
and the public verification (the catalogue of services is offering_routes.py). The
rules and tenancy live in labshare/orders; each handler commits once, at the end."""

from __future__ import annotations

from typing import Any

from flask import Response
from flask_babel import gettext as _
from sqlalchemy import func, select

from labshare.api import bp
from labshare.api.order_models import (
    AcceptBody,
    OrderCreate,
    OrderOut,
    OrderQuery,
    ReasonBody,
    ReceiveBody,
    VerifyOut,
    VerifyQuery,
)
from labshare.api.registry import endpoint
from labshare.api.schemas import MAX_ID
from labshare.api.serialize import page_json
from labshare.errors import NotFound, ValidationFailed
from labshare.extensions import db
from labshare.models import Role, ServiceOrder, User
from labshare.orders import certificates, intake, lifecycle
from labshare.orders.api_json import order_json
from labshare.orders.certificates import verify_limit
from labshare.orders.downloads import certificate_response, upload_from_request
from labshare.orders.permissions import visible_orders

TRANSITION_ERRORS = (403, 404, 409, 422)


# -- helpers -------------------------------------------------------------------------------


def load_order(user: User, order_id: int) -> ServiceOrder:
    order = db.session.get(ServiceOrder, order_id) if order_id <= MAX_ID else None
    if order is None or not lifecycle.visible_to(order, user):
        raise NotFound(_("No service order %(id)s.", id=order_id))
    return order


def committed(order: ServiceOrder, user: User) -> dict[str, Any]:
    """Commit the handler's one transaction and answer with the order as ``user`` sees it."""
    db.session.commit()
    return order_json(order, user)


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
    return committed(order, user)


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
    return committed(order, user)


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
    return committed(lifecycle.reject_order(load_order(user, order_id), user, body.reason), user)


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
    return committed(lifecycle.cancel_order(load_order(user, order_id), user, body.reason), user)


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
    return committed(lifecycle.receive_order(load_order(user, order_id), user, conditions), user)


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
    return committed(lifecycle.start_order(load_order(user, order_id), user), user)


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
    return committed(order, user)


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
    return committed(lifecycle.return_order(load_order(user, order_id), user), user)


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
    return committed(lifecycle.collect_order(load_order(user, order_id), user), user)


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
