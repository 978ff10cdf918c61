"""Statistics dashboards (admins: national or a province or an institute; staff:
their institute) and the export download. Charts are server-side SVG (no script
under the CSP), each with a table of the same numbers beside it."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from flask import Blueprint, Response, render_template, request, stream_with_context
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from labshare.booking import holiday_admin
from labshare.campaign import export
from labshare.campaign.counters import Counters
from labshare.campaign.periods import NATIONAL_ZONE, Period, Scope
from labshare.campaign.trend import monthly_trend
from labshare.campaign.utilisation import utilisation
from labshare.extensions import db
from labshare.labels import label
from labshare.models import Field, Institute, ResourceKind, Role
from labshare.orders.stats import order_figures
from labshare.timeutil import to_local, utcnow
from labshare.web.auth.decorators import role_required

bp = Blueprint("reports", __name__, url_prefix="/reports")


def _scope() -> tuple[Scope, Institute | None, str | None]:
    """The filter: staff always their institute; admins ``institute`` or ``province``."""
    code = request.args.get("institute", "").strip() or None
    scope, institute = export.scope_for(current_user, code)
    province = request.args.get("province", "").strip() or None
    if institute is None and province and current_user.role == Role.ADMIN:
        return Scope.province(province), None, province
    return scope, institute, None


def _period() -> Period:
    month = request.args.get("month", "").strip()
    if month:
        return export.parse_month(month)
    today = to_local(utcnow(), NATIONAL_ZONE).date()
    return Period.month(today.strftime("%Y-%m"))


def _bars(rows: list[tuple[str, float]]) -> list[dict[str, Any]]:
    top = max((v for _l, v in rows), default=0) or 1
    return [{"label": k, "value": v, "pct": round(100 * v / top, 1)} for k, v in rows]


@bp.get("/")
@role_required(Role.ADMIN, Role.STAFF)
def index() -> str:
    period = _period()
    scope, institute, province = _scope()
    report = export.build_report(period, scope)
    util = utilisation(period, scope, report.resources)
    trend = monthly_trend(period.start.strftime("%Y-%m"), scope, months=12)
    by_field: dict[str, Counters] = defaultdict(Counters)
    by_province: dict[str, Counters] = defaultdict(Counters)
    for rid, c in report.by_resource.items():
        info = report.resources.get(rid)
        if info is None or not c["bookings_total"]:
            continue
        by_field[label(Field(info.field))].add(c)
        by_province[info.province].add(c)
    instruments = [
        (info, report.by_resource.get(rid, Counters()), util.ratio(rid))
        for rid, info in report.resources.items()
        if info.kind == ResourceKind.INSTRUMENT
    ]
    instruments.sort(key=lambda t: (-int(t[1]["usage_minutes"]), -int(t[1]["bookings_total"])))
    heat_max = max((h for row in util.heat for h in row), default=0) or 1
    institutes = (
        db.session.scalars(select(Institute).order_by(Institute.code)).all()
        if current_user.role == Role.ADMIN
        else []
    )
    provinces = sorted({(i.province_code, i.province) for i in institutes})
    return render_template(
        "reports/index.html",
        period=period,
        month=period.start.strftime("%Y-%m"),
        institute=institute,
        province=province,
        institutes=institutes,
        provinces=provinces,
        figures=report.figures,
        summary=export.summary_rows(report),
        trend=_bars([(m, c.usage_hours) for m, c in trend]),
        trend_rows=trend,
        trend_empty=not any(c["bookings_total"] for _m, c in trend),
        heat_total=sum(h for row in util.heat for h in row),
        top=instruments[:10],
        heat=util.heat,
        heat_max=heat_max,
        by_field=_bars(
            sorted(((k, c.usage_hours) for k, c in by_field.items()), key=lambda t: -t[1])
        ),
        by_field_rows=by_field,
        by_province=_bars(
            sorted(((k, c.usage_hours) for k, c in by_province.items()), key=lambda t: -t[1])
        ),
        by_province_rows=by_province,
        weekdays=[_("Mon"), _("Tue"), _("Wed"), _("Thu"), _("Fri"), _("Sat"), _("Sun")],
        orders=order_figures(period, scope),  # service orders: their own figures
        institute_names={i.id: i.name for i in db.session.scalars(select(Institute))},
        holiday_gaps=holiday_admin.gaps_for(period.start.year),
    )


@bp.get("/export")
@role_required(Role.ADMIN, Role.STAFF)
def download() -> Response:
    from labshare.api.report_routes import xlsx_response

    period = _period()
    scope, institute, _province = _scope()
    if request.args.get("format") == "csv":
        name = export.filename(period, institute, "csv")
        return Response(
            stream_with_context(export.iter_csv(period, scope)),
            mimetype="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    return xlsx_response(period, scope, export.filename(period, institute, "xlsx"))
