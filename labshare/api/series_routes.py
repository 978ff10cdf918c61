"""Recurring booking series: preview, create, read, and whole-series
approve / reject / cancel. One occurrence at a time uses the booking endpoints.
Tenancy as for single bookings: a series the caller may not see is a 404."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import Field, PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

from labshare.api import bp
from labshare.api.registry import AwareTime, BodyModel, ResponseModel, endpoint
from labshare.api.resource_routes import load_resource
from labshare.api.schemas import BookingOut, CancelBody, RejectBody
from labshare.api.serialize import booking_json
from labshare.booking.policies import recurrence
from labshare.booking.policies.recurrence import SeriesOutcome, SeriesPlan
from labshare.extensions import db
from labshare.models import BookingSeries, Role, User
from labshare.ratelimit import booking_limit, caller_key
from labshare.timeutil import isoformat_local

ERRORS = (403, 404, 409, 422)


def _parse_date(value: Any) -> dt.date:
    if not isinstance(value, str):
        raise PydanticCustomError("string_type", "Input should be a string")
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise PydanticCustomError("invalid_date", "not a date of the form YYYY-MM-DD") from None


#: A calendar date ``YYYY-MM-DD``; a string that is no such date is a 422 (a wrong
#: value), a non-string a 400 (a wrong JSON type).
LocalDate = Annotated[
    dt.date,
    PlainValidator(_parse_date),
    WithJsonSchema({"type": "string", "format": "date"}),
]


class RecurrenceIn(BodyModel):
    freq: str = Field(description="daily, weekly or monthly")
    interval: int = Field(1, description="every n days / weeks / months, 1-99")
    weekdays: list[int] | None = Field(
        None, description="weekly only: 0 (Monday) to 6 (Sunday); default the start's weekday"
    )
    until: LocalDate | None = Field(
        None, description="last day (local, inclusive); exactly one of until and count"
    )
    count: int | None = Field(
        None, description=f"number of occurrences, at most {recurrence.MAX_OCCURRENCES}"
    )


class SeriesBody(BodyModel):
    resource_id: int = Field(ge=1, le=2**31 - 1)
    start: AwareTime = Field(description="the first occurrence's start")
    end: AwareTime = Field(description="the first occurrence's end")
    purpose: str = Field(min_length=1, max_length=500)
    samples: str | None = Field(None, max_length=5000)
    recurrence: RecurrenceIn


class SeriesCreate(SeriesBody):
    skip_conflicting: bool = Field(
        False,
        description="false: book every occurrence or nothing; true: book those that can be",
    )


class OccurrenceOut(ResponseModel):
    index: int
    start: dt.datetime
    end: dt.datetime
    ok: bool
    code: str | None = Field(description="conflict or rule_violation when not ok")
    rule: str | None = Field(description="the rule broken (rule_violation)")
    message: str | None
    booking_id: int | None = Field(description="the booking made (create only)")


class PreviewOut(ResponseModel):
    timezone: str
    cut_at_horizon: bool = Field(description="later occurrences lie beyond the booking horizon")
    occurrences: list[OccurrenceOut]


class RecurrenceOut(ResponseModel):
    freq: str
    interval: int
    weekdays: list[int]
    until: dt.date | None
    count: int | None


class SkippedOut(ResponseModel):
    booking_id: int
    code: str
    rule: str | None
    message: str


class SeriesOut(ResponseModel):
    id: int
    resource_id: int
    institute_id: int
    company_id: int
    user_id: int
    start: dt.datetime
    end: dt.datetime
    timezone: str
    purpose: str
    samples: str | None
    recurrence: RecurrenceOut
    created_at: dt.datetime
    bookings: list[BookingOut]
    occurrences: list[OccurrenceOut] | None = Field(
        None, description="create only: every occurrence, booked or skipped and why"
    )
    skipped: list[SkippedOut] | None = Field(
        None,
        description="approve/reject/cancel only: occurrences a rule refused; "
        "occurrences in other states are left alone",
    )


def _occurrence_json(occ: recurrence.Occurrence, tz: str) -> dict[str, Any]:
    return {
        "index": occ.index,
        "start": isoformat_local(occ.start, tz),
        "end": isoformat_local(occ.end, tz),
        "ok": occ.ok,
        "code": occ.code,
        "rule": occ.rule,
        "message": occ.message,
        "booking_id": occ.booking_id,
    }


def series_json(series: BookingSeries, viewer: User | None = None) -> dict[str, Any]:
    tz = series.timezone
    return {
        "id": series.id,
        "resource_id": series.resource_id,
        "institute_id": series.institute_id,
        "company_id": series.company_id,
        "user_id": series.user_id,
        "start": isoformat_local(series.start_at, tz),
        "end": isoformat_local(series.end_at, tz),
        "timezone": tz,
        "purpose": series.purpose,
        "samples": series.samples,
        "recurrence": {
            "freq": series.freq,
            "interval": series.interval_n,
            "weekdays": series.weekday_list,
            "until": series.until_date.isoformat() if series.until_date else None,
            "count": series.count_n,
        },
        "created_at": isoformat_local(series.created_at, tz),
        "bookings": [booking_json(b, viewer) for b in recurrence.series_bookings(series)],
    }


def spec_of(body: SeriesBody) -> recurrence.RecurrenceSpec:
    r = body.recurrence
    return recurrence.validate_spec(
        r.freq, interval=r.interval, weekdays=r.weekdays, until=r.until, count=r.count
    )


@endpoint(
    bp,
    "/series/preview",
    "POST",
    summary="Preview a recurring booking: every occurrence, ok or why not (SME members)",
    description="Writes nothing. Occurrences are wall-clock times in the institute's zone, "
    "cut at the booking horizon, at most 100. Exactly what creation would book now: "
    "later occurrences count the earlier ones against quotas.",
    tag="series",
    roles=(Role.SME,),
    body=SeriesBody,
    response=PreviewOut,
    errors=(404, 422),
)
def preview_series(user: User, body: SeriesBody) -> dict[str, Any]:
    resource = load_resource(body.resource_id)
    plan = recurrence.preview_series(
        resource,
        user,
        body.start,
        body.end,
        spec_of(body),
        purpose=body.purpose,
        samples=body.samples,
    )
    db.session.rollback()  # read-only
    return _plan_json(plan)


def _plan_json(plan: SeriesPlan) -> dict[str, Any]:
    return {
        "timezone": plan.timezone,
        "cut_at_horizon": plan.cut_at_horizon,
        "occurrences": [_occurrence_json(o, plan.timezone) for o in plan.occurrences],
    }


@endpoint(
    bp,
    "/series",
    "POST",
    summary="Book a recurring series (SME members)",
    description="201 with the series and every occurrence. skip_conflicting=false: if any "
    "occurrence cannot be booked, nothing is, and the error (409 conflict when all "
    "failures are conflicts, else 422 rule_violation) lists them under `occurrences`. "
    "skip_conflicting=true: the rest are booked; an error only when none can be.",
    tag="series",
    roles=(Role.SME,),
    body=SeriesCreate,
    response=SeriesOut,
    status=201,
    errors=ERRORS,
    limit=booking_limit,
    limit_key=caller_key,
)
def create_series(user: User, body: SeriesCreate) -> dict[str, Any]:
    resource = load_resource(body.resource_id)
    plan = recurrence.create_series(
        resource,
        user,
        body.start,
        body.end,
        spec_of(body),
        purpose=body.purpose,
        samples=body.samples,
        skip_conflicting=body.skip_conflicting,
    )
    db.session.commit()
    assert plan.series is not None
    out = series_json(plan.series, user)
    out["occurrences"] = occurrences_json(plan)
    return out


def occurrences_json(plan: SeriesPlan) -> list[dict[str, Any]]:
    return [_occurrence_json(o, plan.timezone) for o in plan.occurrences]


@endpoint(
    bp,
    "/series/<int:series_id>",
    "GET",
    summary="One recurring series and its bookings",
    tag="series",
    auth=True,
    response=SeriesOut,
    errors=(404,),
)
def get_series(user: User, series_id: int) -> dict[str, Any]:
    return series_json(recurrence.get_series(series_id, user), user)


def _outcome_json(outcome: SeriesOutcome, user: User) -> dict[str, Any]:
    out = series_json(outcome.series, user)
    out["skipped"] = [
        {"booking_id": b.id, "code": e.code, "rule": e.rule, "message": str(e.message)}
        for b, e in outcome.skipped
    ]
    return out


@endpoint(
    bp,
    "/series/<int:series_id>/approve",
    "POST",
    summary="Approve every pending occurrence (staff of its institute)",
    description="Each occurrence is re-checked as a single approval is; one refused stays "
    "pending and is listed under `skipped`. 409 when none is pending.",
    tag="series",
    auth=True,
    response=SeriesOut,
    errors=ERRORS,
)
def approve_series(user: User, series_id: int) -> dict[str, Any]:
    series = recurrence.get_series(series_id, user)
    outcome = recurrence.approve_series(series, user)
    db.session.commit()
    return _outcome_json(outcome, user)


@endpoint(
    bp,
    "/series/<int:series_id>/reject",
    "POST",
    summary="Reject every pending occurrence, with a reason (staff of its institute)",
    tag="series",
    auth=True,
    body=RejectBody,
    response=SeriesOut,
    errors=ERRORS,
)
def reject_series(user: User, series_id: int, body: RejectBody) -> dict[str, Any]:
    series = recurrence.get_series(series_id, user)
    outcome = recurrence.reject_series(series, user, body.reason)
    db.session.commit()
    return _outcome_json(outcome, user)


@endpoint(
    bp,
    "/series/<int:series_id>/cancel",
    "POST",
    summary="Cancel every pending or approved occurrence",
    description="Its company's members (each occurrence until its cancellation deadline; "
    "later ones are left alone and listed under `skipped`) and its institute's staff.",
    tag="series",
    auth=True,
    body=CancelBody,
    response=SeriesOut,
    errors=ERRORS,
)
def cancel_series(user: User, series_id: int, body: CancelBody) -> dict[str, Any]:
    series = recurrence.get_series(series_id, user)
    outcome = recurrence.cancel_series(series, user, body.reason)
    db.session.commit()
    return _outcome_json(outcome, user)
