"""The service catalogue over the API: what institutes do with items sent to them,
and staff adding to their institute's. The rules live in labshare/orders/offerings.py;
each handler commits once, at the end."""

from __future__ import annotations

from typing import Any

from pydantic import Field
from sqlalchemy import func, select

from labshare.api import bp
from labshare.api.registry import BodyModel, ResponseModel, endpoint
from labshare.api.schemas import PageQuery
from labshare.api.serialize import page_json
from labshare.extensions import db
from labshare.models import Field as MeasurementField
from labshare.models import Institute, OrderServiceType, Role, ServiceOffering, User
from labshare.orders import offerings as offering_service


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


def offering_json(o: ServiceOffering, i: Institute) -> dict[str, Any]:
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
    items = [offering_json(o, i) for o, i in rows]
    return page_json(items, int(total or 0), query.page, query.per_page)


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
    institute = db.session.get(Institute, offering.institute_id)
    assert institute is not None
    return offering_json(offering, institute)
