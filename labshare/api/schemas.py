"""Request and response models of the API. Request models validate (see registry);
response models document the JSON the handlers build, in the OpenAPI document."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

from pydantic import ConfigDict, Field, PlainValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

from labshare.api.registry import AwareTime, BodyModel, QueryModel, ResponseModel, _parse_time
from labshare.models import BookingStatus, ResourceKind, ResourceStatus, Role, ServiceType
from labshare.models import Field as MeasurementField

MAX_PER_PAGE = 200
MAX_ID = 2**31 - 1  # ids are 32-bit INTEGER columns: larger is a 422, not a 500


class PageQuery(QueryModel):
    page: int = Field(1, ge=1, le=1_000_000, description="1-based page number")
    per_page: int = Field(20, ge=1, le=MAX_PER_PAGE, description="items per page, at most 200")


# -- requests ------------------------------------------------------------------------


class TokenRequest(BodyModel):
    email: str = Field(min_length=3, max_length=254)
    password: str = Field(min_length=1, max_length=200)


class ResourceQuery(PageQuery):
    # frozen: the fast path shares one per query string (labshare/fastpath.py)
    model_config = ConfigDict(frozen=True)

    q: str | None = Field(
        None,
        max_length=100,
        description="words, Chinese, English or pinyin, each matched in the name, English "
        "name, model, manufacturer, measurand (any of its names) or institute; ranked",
    )
    kind: ResourceKind | None = None
    field: MeasurementField | None = Field(None, description="measurement field")
    province: str | None = Field(
        None, max_length=50, description="province name (prefix, e.g. 江苏) or GB/T 2260 code"
    )
    institute: str | None = Field(None, max_length=32, description="institute code")
    measurand: str | None = Field(
        None, max_length=64, description="capability match: the quantity, e.g. pressure"
    )
    value: float | None = Field(
        None, allow_inf_nan=False, description="capability match: the value to measure"
    )
    unit: str | None = Field(
        None, max_length=32, description="capability match: the value's unit, e.g. kPa or °C"
    )
    available_from: AwareTime | None = Field(
        None,
        description="with available_to: only resources with a free slot in this window "
        "(at most 31 days). Examines at most the first 200 resources matching the other "
        "filters, in rank order; narrow the search to see further.",
    )
    available_to: AwareTime | None = None
    duration: int | None = Field(
        None,
        ge=1,
        le=31 * 24 * 60,
        description="minutes the free slot must last, rounded up to each resource's slot "
        "grid: with available_from/available_to, and for the free_this_week facet "
        "(default: each resource's minimum booking)",
    )
    near: str | None = Field(
        None,
        max_length=6,
        description="the searcher's province (GB/T 2260 code): among equally good matches, "
        "its institutes come first",
    )
    facets: bool = Field(
        False,
        description="also return, under facets, the counts of the matches by field, kind, "
        "province and institute, and how many are free this week (free_this_week)",
    )


class AvailabilityQuery(QueryModel):
    from_: AwareTime = Field(alias="from")
    to: AwareTime = Field(description="at most 31 days after from")


class BookingQuery(PageQuery):
    status: BookingStatus | None = None
    from_: AwareTime | None = Field(
        None, alias="from", description="bookings that end after this instant"
    )
    to: AwareTime | None = Field(None, description="bookings that start before this instant")
    resource_id: int | None = Field(None, ge=1, le=MAX_ID)


class BookingCreate(BodyModel):
    resource_id: int = Field(ge=1, le=MAX_ID)
    start: AwareTime
    end: AwareTime
    purpose: str = Field(min_length=1, max_length=500)
    samples: str | None = Field(None, max_length=5000)


class RejectBody(BodyModel):
    reason: str = Field(min_length=1, max_length=500)


class CancelBody(BodyModel):
    reason: str | None = Field(None, max_length=500)


class UsageBody(BodyModel):
    # check-in: optional; defaults to the booking's check-in, if any
    checked_in_at: AwareTime | None = Field(
        None, description="defaults to the booking's check-in time, where it has one"
    )
    checked_out_at: AwareTime
    service_type: ServiceType
    samples_count: int = Field(ge=0, le=1_000_000)
    problem_solved: bool
    notes: str | None = Field(None, max_length=5000)


def _date_or_time(value: Any) -> dt.date | dt.datetime:
    """A plain date (``2026-11-01``: that day's midnight in the zone the statistics
    use), or an instant with a UTC offset as everywhere else."""
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError as exc:
            raise PydanticCustomError("invalid_time", "invalid") from exc
    return _parse_time(value)


DateOrAwareTime = Annotated[
    dt.date | dt.datetime,
    PlainValidator(_date_or_time),
    WithJsonSchema(
        {
            "type": "string",
            "description": "a date, e.g. 2026-11-01 (midnight in the zone the response "
            "names), or ISO 8601 with a UTC offset, e.g. 2026-11-01T00:00:00+08:00",
        }
    ),
]


class StatsQuery(QueryModel):
    from_: DateOrAwareTime = Field(alias="from", description="bookings starting at or after this")
    to: DateOrAwareTime = Field(description="bookings starting before this")
    institute: str | None = Field(
        None, max_length=32, description="institute code (admins; staff only their own)"
    )


# -- responses -----------------------------------------------------------------------


class TokenOut(ResponseModel):
    token: str
    expires_at: dt.datetime


class InstituteRef(ResponseModel):
    id: int
    code: str
    name: str


class CompanyRef(ResponseModel):
    id: int
    name: str
    credit_code: str


class MeOut(ResponseModel):
    id: int
    email: str
    name: str
    role: Role
    company: CompanyRef | None
    institute: InstituteRef | None
    calendar_feed_url: str
    company_admin: bool = False
    institute_admin: bool = False


class CapabilityOut(ResponseModel):
    measurand: str
    unit: str
    range_min: float
    range_max: float
    accuracy: str | None


class RulesOut(ResponseModel):
    slot_minutes: int
    min_minutes: int
    max_minutes: int
    lead_time_hours: int
    horizon_days: int
    requires_approval: bool
    max_active_per_company: int
    cancel_deadline_hours: int
    # -- check-in --
    checkin_required: bool = Field(
        description="approved bookings nobody checked into are released (no-show)"
    )
    checkin_opens_minutes: int = Field(description="check-in opens this long before the start")
    checkin_release_minutes: int = Field(
        description="an unchecked booking is released this long after its start"
    )
    # -- end check-in --
    # -- waitlist --
    waitlist_enabled: bool = Field(description="SMEs may join the waitlist of a taken slot")
    waitlist_offer_minutes: int = Field(
        description="how long a freed slot is held for the first in line"
    )
    # -- end waitlist --
    # -- booking policies --
    buffer_minutes: int = Field(description="minutes kept free before and after a booking")
    late_cancel_hours: int = Field(
        description="a company's cancellation less than this many hours ahead is late; 0: off"
    )
    no_show_approval_threshold: int | None = Field(
        description="companies with this many no-shows need approval; null: off"
    )


class QuotaOut(ResponseModel):
    id: int
    scope: str = Field(description="instrument, lab (the lab and its instruments) or institute")
    resource_id: int | None
    institute_id: int
    period: str = Field(description="day, week (from Monday), month or year, local time")
    max_hours: float | None
    max_bookings: int | None
    count_completed: bool
    # -- end booking policies --


# -- booking groups --
class BundleOut(ResponseModel):
    name: str
    instrument_ids: list[int] = Field(description="the instruments booked together, this one too")


# -- end booking groups --


class ResourceOut(ResponseModel):
    id: int
    kind: ResourceKind
    name: str
    name_en: str | None
    institute: InstituteRef
    lab_id: int | None = Field(description="the instrument's lab; null for a lab")
    field: MeasurementField
    province: str
    capability: CapabilityOut | None = Field(description="null for a lab")
    calibration_valid_until: dt.date | None
    requires_qualification: bool
    status: ResourceStatus
    fee_per_hour: float
    fee_waiver_percent: int
    timezone: str
    rules: RulesOut
    quotas: list[QuotaOut] | None = Field(
        None, description="the quotas that apply (resource detail only)"
    )
    # -- booking groups --
    bundle: BundleOut | None = Field(
        None,
        description="resource detail only: the instrument's 'booked together' bundle "
        "(booking any of its instruments books them all); null: none",
    )
    # -- end booking groups --


class BusyOut(ResponseModel):
    start: dt.datetime
    end: dt.datetime
    reason: str = Field(
        description="booked, buffer, offered (held for the waitlist), closure, holiday (a "
        "public holiday the lab follows), closed or calibration_expired"
    )


class FreeOut(ResponseModel):
    start: dt.datetime
    end: dt.datetime


class AvailabilityOut(ResponseModel):
    resource_id: int
    timezone: str
    busy: list[BusyOut]
    free: list[FreeOut]


class BookingOut(ResponseModel):
    id: int
    resource_id: int
    resource_name: str
    institute_id: int
    company_id: int
    user_id: int
    start: dt.datetime
    end: dt.datetime
    status: BookingStatus
    purpose: str
    samples: str | None
    fee: float
    fee_waived: float
    decision_reason: str | None
    created_at: dt.datetime
    # -- recurrence --
    booked_by_id: int | None = Field(
        None, description="the staff member who booked for the company; null: the booker"
    )
    series_id: int | None = Field(
        None, description="the recurring series this booking belongs to; null: none"
    )
    # -- end recurrence --
    # -- check-in --
    checked_in_at: dt.datetime | None = Field(
        None, description="when someone checked in for the booking; null: nobody has"
    )
    # -- end check-in --
    company_no_shows: int | None = Field(
        None,
        description="staff of the institute only: the company's no-shows and late "
        "cancellations there over the last 365 days",
    )
    # -- booking groups --
    group_id: int | None = Field(
        None,
        description="the booking group (resources booked together, all or nothing) this "
        "booking belongs to; null: none. See /booking-groups/{id}",
    )
    # -- end booking groups --


class CampaignStatsOut(ResponseModel):
    from_: dt.datetime = Field(alias="from")
    to: dt.datetime
    institute: InstituteRef | None = Field(description="null: all institutes")
    requested: int = Field(description="bookings starting in the window, in any status")
    pending: int
    approved: int = Field(description="approved and not yet completed")
    rejected: int
    cancelled: int
    completed: int
    no_show: int
    usage_hours: float = Field(description="checked-in to checked-out time of usage records")
    distinct_smes: int = Field(description="companies with at least one completed booking")
    fees_charged: float = Field(description="fees of completed bookings, after waivers")
    fees_waived: float = Field(description="waived fees of completed bookings")
    shared_instruments: int = Field(
        description="instruments with at least one completed booking in the window"
    )
    open_labs: int = Field(
        description="available labs with opening hours on some local day of the window"
    )
    timezone: str = Field(
        description="the zone plain dates were read in and local days counted in: the "
        "institute's, or Asia/Shanghai for all institutes"
    )
    # -- service orders: their own figures, and totals of bookings and orders --
    orders: dict[str, Any] | None = Field(
        None,
        description="service orders: orders_total, orders_by_status, items_total, "
        "items_by_status, items_by_service, items_by_field (orders created in the window); "
        "person_times, problems_solved, fees_charged, fees_waived, on_time_share, "
        "turnaround {institute_id: {count, median_hours, p90_hours}} (work completed in "
        "the window)",
    )
    person_times_total: int | None = Field(
        None, description="completed bookings plus finished service orders"
    )
    problems_solved_total: int | None = Field(
        None, description="bookings' problems solved plus service-order items completed"
    )
    fees_waived_total: float | None = Field(
        None, description="fees waived on bookings plus on service orders"
    )
