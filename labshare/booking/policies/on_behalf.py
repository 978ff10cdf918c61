"""Staff book for a company (one that phones in): the booking is the company's, made
by one of its members as the booker, with ``booked_by_id`` the staff member; every
rule applies as if the member had booked (``bookings.create_booking``), and the
member is told as for any booking of theirs."""

from __future__ import annotations

import datetime as dt

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from labshare.booking import bookings
from labshare.booking.permissions import is_staff_of
from labshare.errors import NotFound, ValidationFailed
from labshare.extensions import db
from labshare.models import Booking, Company, Resource, Role, User


def booker_for(company_id: int, user_id: int | None) -> User:
    """The member the booking is made for: ``user_id`` (a member of the company),
    else the company's administrator, else its earliest active member."""
    company = db.session.get(Company, company_id)
    if company is None:
        raise ValidationFailed(_l("No such company."), field="company_id")
    members = select(User).where(
        User.company_id == company.id, User.role == Role.SME, User.active.is_(True)
    )
    if user_id is not None:
        member = db.session.scalar(members.where(User.id == user_id))
        if member is None:
            raise ValidationFailed(_l("Choose a member of the company."), field="user_id")
        return member
    member = db.session.scalar(members.order_by(User.company_admin.desc(), User.id))
    if member is None:
        raise ValidationFailed(
            _l("The company has no active member to book for."), field="company_id"
        )
    return member


def book_for_company(
    staff: User,
    resource: Resource,
    company_id: int,
    start: dt.datetime,
    end: dt.datetime,
    *,
    purpose: str,
    samples: str | None = None,
    user_id: int | None = None,
) -> Booking:
    if not is_staff_of(staff, resource.institute_id):
        raise NotFound(_l("No such resource."))
    booker = booker_for(company_id, user_id)
    return bookings.create_booking(
        resource, booker, start, end, purpose=purpose, samples=samples, on_behalf_by=staff
    )
