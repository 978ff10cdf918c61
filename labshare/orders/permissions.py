"""Which orders a user may see: exactly the bookings' tenancy."""

from __future__ import annotations

from sqlalchemy import ColumnElement

from labshare.booking.permissions import _tenant_scope
from labshare.models import ServiceOrder, User


def visible_orders(user: User) -> ColumnElement[bool]:
    return _tenant_scope(user, ServiceOrder.institute_id, ServiceOrder.company_id)
