"""The waitlist: join a taken slot's line, list my company's entries,
take, decline or leave an offer; staff (and admins) list a resource's line. The
rules live in ``booking.policies.waitlist``; each handler commits once, at the end."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask_babel import gettext as _
from pydantic import Field
from sqlalchemy import func, select

from labshare.api import bp
from labshare.api.registry import AwareTime, BodyModel, ResponseModel, endpoint
from labshare.api.resource_routes import load_resource
from labshare.api.schemas import MAX_ID, BookingOut, PageQuery
from labshare.api.serialize import booking_json, page_json
from labshare.booking.permissions import is_member_of_company
from labshare.booking.policies import waitlist
from labshare.booking.rules import institute_zone
from labshare.errors import NotFound
from labshare.extensions import db
from labshare.models import Role, User, WaitlistEntry, WaitlistStatus
from labshare.timeutil import isoformat_local

ENTRY_ERRORS = (403, 404, 409, 422)


class WaitlistJoin(BodyModel):
    resource_id: int = Field(ge=1, le=MAX_ID)
    start: AwareTime
    end: AwareTime
    purpose: str = Field(min_length=1, max_length=500)


class WaitlistQuery(PageQuery):
    status: WaitlistStatus | None = None


class WaitlistEntryOut(ResponseModel):
    id: int
    resource_id: int
    resource_name: str
    company_id: int
    user_id: int
    start: dt.datetime
    end: dt.datetime
    purpose: str
    status: WaitlistStatus
    position: int | None = Field(description="place in the resource's line while waiting")
    offered_at: dt.datetime | None
    offer_expires_at: dt.datetime | None = Field(
        description="an offered entry holds its slot until then"
    )
    booking_id: int | None = Field(description="the booking made by taking the offer")
    created_at: dt.datetime


class LineEntryOut(WaitlistEntryOut):
    company_name: str


def entry_json(entry: WaitlistEntry) -> dict[str, Any]:
    return _entry_fields(entry, waitlist.position(entry))


def _entry_fields(entry: WaitlistEntry, position: int | None) -> dict[str, Any]:
    tz = institute_zone(entry.resource)

    def local(value: dt.datetime | None) -> str | None:
        return isoformat_local(value, tz) if value is not None else None

    return {
        "id": entry.id,
        "resource_id": entry.resource_id,
        "resource_name": entry.resource.name,
        "company_id": entry.company_id,
        "user_id": entry.user_id,
        "start": isoformat_local(entry.start_at, tz),
        "end": isoformat_local(entry.end_at, tz),
        "purpose": entry.purpose,
        "status": str(entry.status),
        "position": position,
        "offered_at": local(entry.offered_at),
        "offer_expires_at": local(entry.offer_expires_at),
        "booking_id": entry.booking_id,
        "created_at": isoformat_local(entry.created_at, tz),
    }


def load_entry(entry_id: int, user: User) -> WaitlistEntry:
    """An entry of the caller's company, or NotFound (other companies' entries do
    not exist for the caller)."""
    entry = db.session.get(WaitlistEntry, entry_id)
    if entry is None or not is_member_of_company(user, entry.company_id):
        raise NotFound(_("No waitlist entry %(id)s.", id=entry_id))
    return entry


@endpoint(
    bp,
    "/waitlist",
    "POST",
    summary="Join the waitlist of a taken slot (SME members)",
    description="201 with the entry. Only for a slot the rules allow that is taken now "
    "(a free slot: 422 rule_violation slot_free, book it instead); one open entry per "
    "company and slot (waitlist_duplicate); a limited number of open entries per "
    "company (waitlist_limit). When the time frees up, the first in line is offered it.",
    tag="waitlist",
    roles=(Role.SME,),
    body=WaitlistJoin,
    response=WaitlistEntryOut,
    status=201,
    errors=(404, 422),
)
def join_waitlist(user: User, body: WaitlistJoin) -> dict[str, Any]:
    resource = load_resource(body.resource_id)
    entry = waitlist.join(resource, user, body.start, body.end, purpose=body.purpose)
    db.session.commit()
    return entry_json(entry)


@endpoint(
    bp,
    "/waitlist",
    "GET",
    summary="My company's waitlist entries (SME members)",
    description="Newest first.",
    tag="waitlist",
    roles=(Role.SME,),
    query=WaitlistQuery,
    response=WaitlistEntryOut,
    paginated=True,
)
def list_waitlist(user: User, query: WaitlistQuery) -> dict[str, Any]:
    where = [WaitlistEntry.company_id == user.company_id]
    if query.status is not None:
        where.append(WaitlistEntry.status == query.status)
    total = db.session.scalar(select(func.count(WaitlistEntry.id)).where(*where)) or 0
    rows = db.session.scalars(
        select(WaitlistEntry)
        .where(*where)
        .order_by(WaitlistEntry.created_at.desc(), WaitlistEntry.id.desc())
        .offset((query.page - 1) * query.per_page)
        .limit(query.per_page)
    ).unique()
    return page_json([entry_json(e) for e in rows], int(total), query.page, query.per_page)


@endpoint(
    bp,
    "/resources/<int:resource_id>/waitlist",
    "GET",
    summary="Who waits for a resource (staff of its institute, admins)",
    description="The open entries (waiting and offered) in line order, first in line "
    "first; position counts the waiting entries only (an offered entry holds its slot "
    "until offer_expires_at). Staff of another institute: 404.",
    tag="waitlist",
    roles=(Role.STAFF, Role.ADMIN),
    query=PageQuery,
    response=LineEntryOut,
    paginated=True,
    errors=(404,),
)
def list_resource_waitlist(user: User, resource_id: int, query: PageQuery) -> dict[str, Any]:
    resource = load_resource(resource_id)
    line = waitlist.resource_line(resource, user, page=query.page, per_page=query.per_page)
    items = [
        {**_entry_fields(p.entry, p.position), "company_name": p.entry.company.name}
        for p in line.places
    ]
    return page_json(items, line.total, query.page, query.per_page)


@endpoint(
    bp,
    "/waitlist/<int:entry_id>",
    "GET",
    summary="One waitlist entry of my company",
    tag="waitlist",
    roles=(Role.SME,),
    response=WaitlistEntryOut,
    errors=(404,),
)
def get_waitlist_entry(user: User, entry_id: int) -> dict[str, Any]:
    return entry_json(load_entry(entry_id, user))


@endpoint(
    bp,
    "/waitlist/<int:entry_id>/accept",
    "POST",
    summary="Take an open offer: book its slot",
    description="201 with the booking, made through the same atomic path as POST "
    "/bookings (every rule re-checked). 409 invalid_state when the offer is no longer "
    "open or has expired.",
    tag="waitlist",
    roles=(Role.SME,),
    response=BookingOut,
    status=201,
    errors=ENTRY_ERRORS,
)
def accept_waitlist_offer(user: User, entry_id: int) -> dict[str, Any]:
    booking = waitlist.accept_offer(load_entry(entry_id, user), user)
    db.session.commit()
    return booking_json(booking)


@endpoint(
    bp,
    "/waitlist/<int:entry_id>/decline",
    "POST",
    summary="Decline an open offer; it passes to the next in line",
    tag="waitlist",
    roles=(Role.SME,),
    response=WaitlistEntryOut,
    errors=ENTRY_ERRORS,
)
def decline_waitlist_offer(user: User, entry_id: int) -> dict[str, Any]:
    entry = waitlist.decline_offer(load_entry(entry_id, user), user)
    db.session.commit()
    return entry_json(entry)


@endpoint(
    bp,
    "/waitlist/<int:entry_id>/leave",
    "POST",
    summary="Leave the waitlist; an open offer passes to the next in line",
    tag="waitlist",
    roles=(Role.SME,),
    response=WaitlistEntryOut,
    errors=ENTRY_ERRORS,
)
def leave_waitlist(user: User, entry_id: int) -> dict[str, Any]:
    entry = waitlist.leave(load_entry(entry_id, user), user)
    db.session.commit()
    return entry_json(entry)
