"""Which orders a user may see: exactly the bookings' tenancy."""

from __future__ import annotations

from sqlalchemy import ColumnElement

from labshare.models import ServiceOrder, User
from labshare.services.permissions import _tenant_scope


def visible_orders(user: User) -> ColumnElement[bool]:
    return _tenant_scope(user, ServiceOrder.institute_id, ServiceOrder.company_id)
