"""The request and response bodies of the service-order routes (order_routes.py)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import Field

from labshare.api.registry import BodyModel, QueryModel, ResponseModel
from labshare.api.schemas import MAX_ID, PageQuery
from labshare.models import DeliveryMethod, OrderServiceType, OrderStatus
from labshare.models import Field as MeasurementField


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
    # Any number and code is answered "not genuine", a NUL too: nothing else is said.
    refuses_nul = False
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
