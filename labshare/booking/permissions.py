"""Who may see and act on what. Tenancy in one place: an SME member sees their
company's bookings, staff their institute's, admins all."""

from __future__ import annotations

from sqlalchemy import ColumnElement, false, true
from sqlalchemy.orm import QueryableAttribute

from labshare.models import Booking, BookingSeries, Role, User


def _tenant_scope(
    user: User, institute_id: QueryableAttribute[int], company_id: QueryableAttribute[int]
) -> ColumnElement[bool]:
    """A WHERE clause on rows carrying ``institute_id`` and ``company_id`` columns:
    admins see all, staff their institute's, SME members their company's."""
    if not user.active:
        return false()
    if user.role == Role.ADMIN:
        return true()
    if user.role == Role.STAFF and user.institute_id is not None:
        return institute_id == user.institute_id
    if user.role == Role.SME and user.company_id is not None:
        return company_id == user.company_id
    return false()


def visible_bookings(user: User) -> ColumnElement[bool]:
    """A WHERE clause selecting the bookings ``user`` may see."""
    return _tenant_scope(user, Booking.institute_id, Booking.company_id)


def visible_series(user: User) -> ColumnElement[bool]:
    """A WHERE clause selecting the booking series ``user`` may see (as bookings)."""
    return _tenant_scope(user, BookingSeries.institute_id, BookingSeries.company_id)


def can_view_tenant(user: User, *, institute_id: int, company_id: int) -> bool:
    """Whether ``user`` may see something that belongs to one company's dealings with
    one institute (a booking, a series): admins, that institute's staff, that company's
    members."""
    if not user.active:
        return False
    if user.role == Role.ADMIN:
        return True
    if user.role == Role.STAFF:
        return user.institute_id is not None and user.institute_id == institute_id
    if user.role == Role.SME:
        return user.company_id is not None and user.company_id == company_id
    return False


def can_view_booking(user: User, booking: Booking) -> bool:
    return can_view_tenant(user, institute_id=booking.institute_id, company_id=booking.company_id)


def is_staff_of(user: User, institute_id: int) -> bool:
    return (
        user.active
        and user.role == Role.STAFF
        and user.institute_id is not None
        and user.institute_id == institute_id
    )


def is_member_of_company(user: User, company_id: int) -> bool:
    return (
        user.active
        and user.role == Role.SME
        and user.company_id is not None
        and user.company_id == company_id
    )
