"""The monthly usage report: JSON figures, or the export as CSV or XLSX."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from typing import Any, Literal

from flask import Response, stream_with_context
from pydantic import Field
from werkzeug.exceptions import ServiceUnavailable

from labshare.api import bp
from labshare.api.registry import QueryModel, ResponseModel, endpoint
from labshare.api.schemas import InstituteRef
from labshare.api.serialize import institute_ref, money
from labshare.campaign import export
from labshare.campaign.counters import SERVICE_FIELDS
from labshare.models import Role, User
from labshare.ops import storage
from labshare.orders.export import iter_orders_csv
from labshare.orders.stats import order_figures

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class UsageReportQuery(QueryModel):
    month: str = Field(pattern=r"^\d{4}-\d{2}$", description="the month, YYYY-MM")
    format: Literal["json", "csv", "xlsx"] = Field("json", description="json, csv or xlsx")
    institute: str | None = Field(
        None, max_length=32, description="institute code (admins; staff only their own)"
    )
    detail: Literal["bookings", "orders"] = Field(
        "bookings", description="format=csv: the booking detail, or the service orders' items"
    )


class UsageFigures(ResponseModel):
    open_labs: int
    shared_instruments: int
    requested: int
    pending: int
    approved: int
    rejected: int
    cancelled: int
    completed: int
    no_show: int
    approval_rate: float | None
    median_decision_hours: float | None
    usage_hours: float
    distinct_smes: int
    new_smes: int
    person_times: dict[str, int] = Field(description="by service type")
    problems_solved: int
    fees_charged: float
    fees_waived: float


class UsageReportOut(ResponseModel):
    month: str
    institute: InstituteRef | None = Field(description="null: all institutes")
    figures: UsageFigures
    orders: dict[str, Any] | None = Field(
        None, description="service-order figures of the month (see /stats/campaign)"
    )


@endpoint(
    bp,
    "/reports/usage",
    "GET",
    summary="The monthly usage report",
    description="Figures of a month (local days of each institute) as JSON, or the "
    "export: format=csv (booking detail, UTF-8 with BOM, text/csv) or format=xlsx "
    "(Summary, Institutes, Instruments, Bookings, Orders); detail=orders with format=csv: "
    "the service orders' items. Admins: all institutes or one with "
    "institute=CODE; staff: their own institute only (another is 403); SMEs: 403.",
    tag="stats",
    roles=(Role.ADMIN, Role.STAFF),
    query=UsageReportQuery,
    response=UsageReportOut,
    errors=(404,),
)
def usage_report(user: User, query: UsageReportQuery) -> Any:
    period = export.parse_month(query.month)
    scope, institute = export.scope_for(user, query.institute)
    if query.format == "csv" and query.detail == "orders":
        name = export.filename(period, institute, "csv").replace(".csv", "-orders.csv")
        return Response(
            stream_with_context(iter_orders_csv(period, scope)),
            mimetype="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    if query.format == "csv":
        name = export.filename(period, institute, "csv")
        return Response(
            stream_with_context(export.iter_csv(period, scope)),
            mimetype="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    if query.format == "xlsx":
        return xlsx_response(period, scope, export.filename(period, institute, "xlsx"))
    figures = export.build_report(period, scope).figures
    c = figures.counters
    return {
        "month": query.month,
        "institute": institute_ref(institute) if institute is not None else None,
        "figures": {
            "open_labs": figures.open_labs,
            "shared_instruments": figures.shared_instruments,
            "requested": c["bookings_total"],
            **{s: c[s] for s in ("pending", "approved", "rejected", "cancelled")},
            **{s: c[s] for s in ("completed", "no_show")},
            "approval_rate": figures.approval_rate,
            "median_decision_hours": figures.median_decision_hours,
            "usage_hours": c.usage_hours,
            "distinct_smes": figures.distinct_smes,
            "new_smes": figures.new_smes,
            "person_times": {s: int(c[s]) for s in SERVICE_FIELDS},
            "problems_solved": c["problems_solved"],
            "fees_charged": money(c.fees_charged),
            "fees_waived": money(c["fees_waived"]),
        },
        "orders": order_figures(period, scope).as_dict(),
    }


def xlsx_response(period: export.Period, scope: export.Scope, name: str) -> Response:
    """The workbook goes to a temporary file (a zip is written at the end), then out
    in chunks; the file disappears when the response is done."""
    spool = tempfile.TemporaryFile()  # noqa: SIM115 - closed by the response generator
    try:
        export.write_xlsx(spool, period, scope)
    except OSError as exc:  # a full disk: a clear 503, not a stack trace
        spool.close()
        raise ServiceUnavailable(description=storage.write_failure(exc, name)) from None
    spool.seek(0)

    def chunks() -> Iterator[bytes]:
        with spool:
            while block := spool.read(256 * 1024):
                yield block

    return Response(
        chunks(),
        mimetype=XLSX,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
