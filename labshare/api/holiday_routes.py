"""Public holidays and make-up workdays: the calendar (anyone reads it, admins keep
it) and the opt-outs of institutes and labs."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from flask_babel import gettext as _
from pydantic import Field

from labshare.api import bp
from labshare.api.registry import BodyModel, QueryModel, ResponseModel, endpoint
from labshare.api.schemas import MAX_ID
from labshare.booking import holiday_admin
from labshare.errors import NotFound
from labshare.extensions import db
from labshare.models import CalendarDay, Institute, Lab, Role, User

ERRORS = (400, 403, 404, 422)


class HolidayQuery(QueryModel):
    year: int = Field(..., description="the calendar year")
    region: str | None = Field(
        None, max_length=6, description="a province code: its extra days with the national ones"
    )


class HolidayOut(ResponseModel):
    id: int
    date: dt.date
    kind: Literal["holiday", "workday"]
    name: str
    name_en: str | None
    works_as: int | None = Field(None, description="make-up workday: the weekday whose hours")
    region: str = Field(..., description="'' national, else a province code")
    source: Literal["library", "file", "admin"]
    bookings_inside: list[int] | None = Field(
        None,
        description="after adding a holiday: ids of the bookings not yet over that touched "
        "it (made before it was known), now cancelled or pending as on_bookings said",
    )


class HolidayBody(BodyModel):
    date: str = Field(..., description="YYYY-MM-DD, local day")
    kind: str = Field(..., description="holiday or workday (a make-up Saturday or Sunday)")
    name: str = Field(..., description="e.g. 国庆节")
    name_en: str | None = None
    works_as: int | None = Field(None, description="workday: 0 (Monday) to 6 (Sunday)")
    region: str | None = Field(None, description="a 6-digit province code; absent: national")
    on_bookings: str | None = Field(
        None,
        description="a holiday over bookings: cancel them, or ask_move (the default: approved "
        "ones wait for approval again); either way each booker is told once with alternatives",
    )
    message: str | None = Field(
        None, description="to the companies whose bookings the holiday covers (500 characters)"
    )


class LoadBody(BodyModel):
    year: int
    on_bookings: str | None = Field(
        None,
        description="a holiday over bookings: cancel them, or ask_move (the default: approved "
        "ones wait for approval again); either way each booker is told once with alternatives",
    )
    message: str | None = Field(
        None, description="to the companies whose bookings the holiday covers (500 characters)"
    )


class LoadOut(ResponseModel):
    year: int
    source: Literal["library", "file"]
    holidays: int
    workdays: int
    changed: bool
    bookings_inside: list[int] = Field(
        ...,
        description="bookings not yet over that touched a new holiday, now cancelled or "
        "pending as on_bookings said",
    )


class FollowsBody(BodyModel):
    follows: bool


class FollowsOut(ResponseModel):
    id: int
    follows_holidays: bool


class YearCoverage(ResponseModel):
    year: int
    holidays: int = Field(..., description="national holidays loaded for the year")


class CoverageOut(ResponseModel):
    years: list[YearCoverage] = Field(..., description="this year and the next")
    missing: list[int] = Field(
        ...,
        description="years without any holiday: labs that follow the calendar stay open on "
        "that year's holidays until an admin loads it",
    )


def day_json(row: CalendarDay) -> dict[str, Any]:
    return {
        "id": row.id,
        "date": row.day.isoformat(),
        "kind": row.kind,
        "name": row.name,
        "name_en": row.name_en,
        "works_as": row.works_as,
        "region": row.region,
        "source": row.source,
    }


@endpoint(
    bp,
    "/holidays",
    "GET",
    summary="Public holidays and make-up workdays of a year",
    description="The national calendar (and a province's extra days with region): labs "
    "that follow it are closed on a holiday and open on a make-up workday with the hours "
    "of weekday works_as (Monday, or the lab's first weekday with hours, when null).",
    tag="holidays",
    query=HolidayQuery,
    response=HolidayOut,
    listed=True,
    errors=(422,),
)
def list_holidays(query: HolidayQuery) -> Any:
    return [day_json(r) for r in holiday_admin.list_days(query.year, query.region)]


@endpoint(
    bp,
    "/holidays/coverage",
    "GET",
    summary="Whether this year and the next have public holidays loaded",
    description="chinese-calendar and the data file cover a fixed span of years; a year "
    "outside it has no holidays until an admin loads the State Council's notice.",
    tag="holidays",
    response=CoverageOut,
    errors=(),
)
def holiday_coverage() -> Any:
    year = holiday_admin.local_today().year
    counts = holiday_admin.holidays_per_year([year, year + 1])
    return {
        "years": [{"year": y, "holidays": n} for y, n in sorted(counts.items())],
        "missing": [y for y, n in sorted(counts.items()) if n == 0],
    }


@endpoint(
    bp,
    "/holidays",
    "POST",
    summary="Add or replace one day of the calendar (admins)",
    description="A holiday over bookings made before it was known closes them as a closure "
    "does: approved ones go back to pending (on_bookings ask_move, the default) or all are "
    "cancelled (cancel); each booker is told once, with alternatives and the message, and "
    "the institutes' staff too. A province's day touches only that province's institutes.",
    tag="holidays",
    roles=(Role.ADMIN,),
    body=HolidayBody,
    response=HolidayOut,
    status=201,
    errors=ERRORS,
)
def put_holiday(user: User, body: HolidayBody) -> Any:
    added = holiday_admin.add_day(
        user,
        day=body.date,
        kind=body.kind,
        name=body.name,
        name_en=body.name_en,
        works_as=body.works_as,
        region=body.region,
        on_bookings=body.on_bookings,
        message=body.message,
    )
    out = day_json(added.row)
    db.session.commit()
    return {**out, "bookings_inside": added.bookings_inside}


@endpoint(
    bp,
    "/holidays/<int:day_id>",
    "DELETE",
    summary="Remove one day of the calendar (admins)",
    tag="holidays",
    roles=(Role.ADMIN,),
    status=204,
    errors=ERRORS,
)
def delete_holiday(user: User, day_id: int) -> Any:
    holiday_admin.remove_day(user, min(day_id, MAX_ID))
    db.session.commit()
    return "", 204


@endpoint(
    bp,
    "/holidays/load",
    "POST",
    summary="Load a year of the national calendar (admins)",
    description="From labshare/data/holidays_cn.json when it lists the year, else from the "
    "chinese-calendar package. Days an admin entered stay; the same year again changes "
    "nothing and tells nobody. Bookings on a new holiday: as for adding a day (on_bookings).",
    tag="holidays",
    roles=(Role.ADMIN,),
    body=LoadBody,
    response=LoadOut,
    errors=ERRORS,
)
def load_holidays(user: User, body: LoadBody) -> Any:
    loaded = holiday_admin.load_year(
        body.year, user, on_bookings=body.on_bookings, message=body.message
    )
    db.session.commit()
    return {
        "year": loaded.year,
        "source": loaded.source,
        "holidays": loaded.holidays,
        "workdays": loaded.workdays,
        "changed": loaded.changed,
        "bookings_inside": loaded.bookings_inside,
    }


@endpoint(
    bp,
    "/institutes/<int:institute_id>/holidays",
    "PUT",
    summary="Whether an institute follows the holiday calendar",
    description="Admins, or the institute's administrator.",
    tag="holidays",
    roles=(Role.ADMIN, Role.STAFF),
    body=FollowsBody,
    response=FollowsOut,
    errors=ERRORS,
)
def institute_follows(user: User, institute_id: int, body: FollowsBody) -> Any:
    institute = db.session.get(Institute, min(institute_id, MAX_ID))
    if institute is None or (user.role != Role.ADMIN and user.institute_id != institute.id):
        raise NotFound(_("No institute %(id)s.", id=institute_id))
    holiday_admin.set_institute_follows(user, institute, body.follows)
    db.session.commit()
    return {"id": institute.id, "follows_holidays": institute.follows_holidays}


@endpoint(
    bp,
    "/catalogue/labs/<int:lab_id>/holidays",
    "PUT",
    summary="Whether a lab follows the holiday calendar (staff of its institute)",
    description="false: the lab works through public holidays and keeps its weekly hours "
    "on make-up workdays.",
    tag="holidays",
    roles=(Role.ADMIN, Role.STAFF),
    body=FollowsBody,
    response=FollowsOut,
    errors=ERRORS,
)
def lab_follows(user: User, lab_id: int, body: FollowsBody) -> Any:
    lab = db.session.get(Lab, min(lab_id, MAX_ID))
    if lab is None:
        raise NotFound(_("No resource %(id)s.", id=lab_id))
    holiday_admin.set_lab_follows(user, lab, body.follows)
    db.session.commit()
    return {"id": lab.id, "follows_holidays": lab.follows_holidays}
