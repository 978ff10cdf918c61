"""Campaign statistics."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import select

from labshare.api import bp
from labshare.api.registry import endpoint
from labshare.api.schemas import CampaignStatsOut, StatsQuery
from labshare.api.serialize import institute_ref, money
from labshare.campaign.figures import campaign_totals
from labshare.campaign.periods import NATIONAL_ZONE
from labshare.errors import NotAllowed, NotFound, ValidationFailed
from labshare.extensions import db
from labshare.models import Institute, Role, User
from labshare.orders.stats import order_figures_between
from labshare.timeutil import zone


def _instant(value: dt.date | dt.datetime, tz: str) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    return dt.datetime.combine(value, dt.time(), zone(tz)).astimezone(dt.UTC)


@endpoint(
    bp,
    "/stats/campaign",
    "GET",
    summary="Campaign totals over the bookings starting in a window",
    description="Admins: all institutes, or one with institute=CODE. Staff: their own "
    "institute only (another one is 403). from and to are plain dates (midnight in the "
    "institute's zone, or Asia/Shanghai for all institutes; the response's timezone says "
    "which) or instants with a UTC offset. Counted from the bookings when asked.",
    tag="stats",
    roles=(Role.ADMIN, Role.STAFF),
    query=StatsQuery,
    response=CampaignStatsOut,
    errors=(404,),
)
def campaign(user: User, query: StatsQuery) -> dict[str, Any]:
    institute: Institute | None = None
    if query.institute is not None:
        institute = db.session.scalar(select(Institute).where(Institute.code == query.institute))
        if institute is None:
            raise NotFound(_("No institute %(code)s.", code=query.institute), field="institute")
    if user.role == Role.STAFF:
        if institute is not None and institute.id != user.institute_id:
            raise NotAllowed(_("Staff see their own institute's statistics only."))
        institute = user.institute
    tz = institute.timezone if institute is not None else NATIONAL_ZONE
    start, end = _instant(query.from_, tz), _instant(query.to, tz)
    if end <= start:
        raise ValidationFailed(_("The window must end after it starts."), field="to")
    totals = campaign_totals(
        start, end, institute_id=institute.id if institute is not None else None, tz=tz
    )
    orders = order_figures_between(
        start, end, institute_id=institute.id if institute is not None else None, tz=tz
    )
    return {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "timezone": tz,
        "institute": institute_ref(institute) if institute is not None else None,
        "requested": totals.requested,
        "pending": totals.pending,
        "approved": totals.approved,
        "rejected": totals.rejected,
        "cancelled": totals.cancelled,
        "completed": totals.completed,
        "no_show": totals.no_show,
        "usage_hours": totals.usage_hours,
        "distinct_smes": totals.distinct_smes,
        "fees_charged": money(totals.fees_charged),
        "fees_waived": money(totals.fees_waived),
        "shared_instruments": totals.shared_instruments,
        "open_labs": totals.open_labs,
        "orders": orders.as_dict(),
        "person_times_total": totals.completed + orders.person_times,
        "problems_solved_total": totals.problems_solved + orders.problems_solved,
        "fees_waived_total": money(totals.fees_waived + orders.fees_waived),
    }
