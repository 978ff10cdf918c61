"""Staff book for a company (one that phones in): the booking is the company's, made
by one of its members as the booker, with ``booked_by_id`` the staff member; every
rule applies as if the member had booked, and the member is told as for any booking
of theirs (once per booking, series or group).

Every way staff can book for a company goes through here, so none forgets who
booked: a single booking (``bookings.create_booking``; an instrument of a "booked
together" bundle books the bundle), a lab with some of its instruments
(``groups.create_group``) and a recurring series (``recurrence.create_series``),
each given ``on_behalf_by``. Staff of another institute get NotFound before anything
is read of the company."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from labshare.booking import bookings
from labshare.booking.permissions import is_staff_of
from labshare.booking.policies import groups, recurrence
from labshare.errors import NotFound, ValidationFailed
from labshare.extensions import db
from labshare.models import Booking, BookingGroup, Company, Resource, Role, User


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


def _booker(staff: User, resource: Resource, company_id: int, user_id: int | None) -> User:
    """The booker, once ``staff`` is known to be of ``resource``'s institute."""
    if not is_staff_of(staff, resource.institute_id):
        raise NotFound(_l("No such resource."))
    return booker_for(company_id, user_id)


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
    """One booking (or, for an instrument of a bundle, the bundle's)."""
    booker = _booker(staff, resource, company_id, user_id)
    return bookings.create_booking(
        resource, booker, start, end, purpose=purpose, samples=samples, on_behalf_by=staff
    )


def book_group_for_company(
    staff: User,
    lab: Resource,
    instrument_ids: Sequence[int],
    company_id: int,
    start: dt.datetime,
    end: dt.datetime,
    *,
    purpose: str,
    samples: str | None = None,
    user_id: int | None = None,
) -> BookingGroup:
    """A lab and some of its instruments together, all or nothing."""
    booker = _booker(staff, lab, company_id, user_id)
    instruments: list[Resource] = []
    for instrument_id in instrument_ids:
        instrument = db.session.get(Resource, instrument_id)
        if instrument is None:
            raise ValidationFailed(_l("Choose instruments from the list."), field="instrument_ids")
        instruments.append(instrument)
    return groups.create_group(
        lab,
        instruments,
        booker,
        start,
        end,
        purpose=purpose,
        samples=samples,
        on_behalf_by=staff,
    )


def book_series_for_company(
    staff: User,
    resource: Resource,
    company_id: int,
    start: dt.datetime,
    end: dt.datetime,
    spec: recurrence.RecurrenceSpec,
    *,
    purpose: str,
    samples: str | None = None,
    user_id: int | None = None,
    skip_conflicting: bool = False,
) -> recurrence.SeriesPlan:
    """A recurring series: all or nothing, or (``skip_conflicting``) what can be."""
    booker = _booker(staff, resource, company_id, user_id)
    return recurrence.create_series(
        resource,
        booker,
        start,
        end,
        spec,
        purpose=purpose,
        samples=samples,
        skip_conflicting=skip_conflicting,
        on_behalf_by=staff,
    )
