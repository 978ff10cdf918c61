"""The read-only catalogue: labs and instruments, institutes, one resource."""

from __future__ import annotations

import datetime as dt
import enum
import functools
from typing import Any, TypeVar

from flask import abort, current_app, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import func, select
from werkzeug.routing import BuildError
from wtforms.fields.choices import SelectChoice

from labshare.booking.policies import waitlist
from labshare.booking.rules import effective_rules, institute_zone, load_opening_periods
from labshare.catalogue import search_cache
from labshare.catalogue.search import ResourceFilters, SearchResult, search_resources
from labshare.errors import ValidationFailed
from labshare.extensions import db
from labshare.labels import label as label_of
from labshare.models import (
    Field,
    Institute,
    Instrument,
    Lab,
    Resource,
    ResourceKind,
    ResourceStatus,
)
from labshare.timeutil import to_local, utcnow
from labshare.web.catalogue import bp
from labshare.web.catalogue.forms import CatalogueFilterForm
from labshare.web.main.forms import apply_domain_error

E = TypeVar("E", bound=enum.StrEnum)

PER_PAGE = 20
MAX_PAGE = 500


def _page_arg() -> int:
    value = request.args.get("page", "1")
    return min(int(value), MAX_PAGE) if value.isdigit() and int(value) > 0 else 1


def _filter_choices(form: CatalogueFilterForm, version: int | None) -> None:
    """The provinces' and institutes' choices, read only when their selects are
    rendered anew (forms.OptionCache: kept per catalogue ``version``, when known)."""

    @functools.cache
    def institutes() -> list[Any]:
        return list(
            db.session.execute(
                select(Institute.code, Institute.name, Institute.province_code, Institute.province)
                .where(Institute.active.is_(True))
                .order_by(Institute.province_code, Institute.code)
            ).all()
        )

    def provinces() -> list[SelectChoice]:
        seen = dict.fromkeys((row.province_code, row.province) for row in institutes())
        return [SelectChoice("", _("All provinces"))] + [
            SelectChoice(code, name) for code, name in seen
        ]

    def institute_choices() -> list[SelectChoice]:
        return [SelectChoice("", _("All institutes"))] + [
            SelectChoice(row.code, row.name) for row in institutes()
        ]

    token = None if version is None else ("catalogue", version)
    for field, source in ((form.province, provinces), (form.institute, institute_choices)):
        field.choices_source = source
        field.choices_version = token


def _number(form: CatalogueFilterForm) -> float | None:
    text = (form.value.data or "").strip().replace(",", ".")
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValidationFailed(_("Enter a number."), field="value") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ValidationFailed(_("Enter a number."), field="value")
    return value


def _member(enum_cls: type[E], value: str | None) -> E | None:
    """The enum member called ``value``; None (no filter) for empty or unknown values."""
    try:
        return enum_cls(value) if value else None
    except ValueError:
        return None


def _home_province() -> str | None:
    """The province of the signed-in member's company (ranks its institutes first)."""
    company = getattr(current_user, "company", None) if current_user.is_authenticated else None
    return getattr(company, "province", None) or None


def _facet_label(facet: str, value: str, label: str) -> str:
    if facet == "field":
        return label_of(Field(value))
    if facet == "kind":
        return label_of(ResourceKind(value))
    return label


@bp.get("/catalogue")
def index() -> Any:
    form = CatalogueFilterForm(request.args)
    # read once: the filters' choices and the search's catalogue parts are kept per
    # catalogue version (labshare/catalogue/search_cache.py)
    version = search_cache.kept_version()
    _filter_choices(form, version)
    page = _page_arg()
    result = SearchResult(items=[], total=0, rules={})
    if form.validate():
        try:
            filters = ResourceFilters(
                q=(form.q.data or "").strip() or None,
                kind=_member(ResourceKind, form.kind.data),
                field=_member(Field, form.field.data),
                province=form.province.data or None,
                institute=form.institute.data or None,
                measurand=form.measurand.data or None,
                value=_number(form),
                unit=form.unit.data or None,
                near_province=_home_province(),
            )
            with search_cache.known_version(version):
                result = search_resources(filters, page=page, per_page=PER_PAGE, facets=True)
        except ValidationFailed as exc:
            apply_domain_error(form, exc)
    pages = max(1, -(-result.total // PER_PAGE))
    args = {k: v for k, v in request.args.items() if k != "page" and v}
    return render_template(
        "catalogue/index.html",
        form=form,
        result=result,
        page=page,
        pages=pages,
        args=args,
        facet_label=_facet_label,
        today=to_local(utcnow(), current_app.config["DEFAULT_TIMEZONE"]).date(),
        card_version=version,  # the cards are kept per catalogue version (cards.py)
    )


@bp.get("/institutes")
def institutes() -> Any:
    rows = db.session.scalars(
        select(Institute)
        .where(Institute.active.is_(True))
        .order_by(Institute.province_code, Institute.code)
    ).all()
    counts = _resource_counts([i.id for i in rows])
    return render_template("catalogue/institutes.html", institutes=rows, counts=counts)


def _resource_counts(institute_ids: list[int]) -> dict[tuple[int, str], int]:
    if not institute_ids:
        return {}
    rows = db.session.execute(
        select(Resource.institute_id, Resource.kind, func.count(Resource.id))
        .where(Resource.institute_id.in_(institute_ids), Resource.status != ResourceStatus.RETIRED)
        .group_by(Resource.institute_id, Resource.kind)
    ).all()
    return {(iid, str(kind)): int(n) for iid, kind, n in rows}


@bp.get("/institutes/<code>")
def institute(code: str) -> Any:
    inst = db.session.scalar(
        select(Institute).where(Institute.code == code, Institute.active.is_(True))
    )
    if inst is None:
        abort(404)
    labs = db.session.scalars(
        select(Lab)
        .where(Lab.institute_id == inst.id, Lab.status != ResourceStatus.RETIRED)
        .order_by(Lab.id)
    ).all()
    per_lab: dict[int, int] = {
        lab_id: int(n)
        for lab_id, n in db.session.execute(
            select(Instrument.lab_id, func.count(Instrument.id))
            .where(
                Instrument.institute_id == inst.id,
                Instrument.status != ResourceStatus.RETIRED,
            )
            .group_by(Instrument.lab_id)
        ).all()
    }
    return render_template("catalogue/institute.html", institute=inst, labs=labs, per_lab=per_lab)


def _resource_url(resource: Resource, *endpoints: str) -> str | None:
    """A page of another blueprint about ``resource``, if that blueprint is there."""
    for endpoint in endpoints:
        if endpoint in current_app.view_functions:
            try:
                return url_for(endpoint, resource_id=resource.id)
            except BuildError:
                continue
    return None


@bp.get("/resources/<int:resource_id>")
def resource(resource_id: int) -> Any:
    item = db.get_or_404(Resource, resource_id)
    if not item.institute.active:
        abort(404)
    tz = institute_zone(item)
    today = to_local(utcnow(), tz).date()
    hours: dict[int, list[tuple[dt.time, dt.time]]] = {}
    for weekday, opens, closes in sorted(load_opening_periods(item)):
        hours.setdefault(weekday, []).append((opens, closes))
    instruments: list[Instrument] = []
    if isinstance(item, Lab):
        instruments = list(
            db.session.scalars(
                select(Instrument)
                .where(Instrument.lab_id == item.id, Instrument.status != ResourceStatus.RETIRED)
                .order_by(Instrument.id)
            )
        )
    return render_template(
        "catalogue/resource.html",
        resource=item,
        is_instrument=isinstance(item, Instrument),
        rules=effective_rules(item),
        hours=hours,
        instruments=instruments,
        today=today,
        timezone=tz,
        book_url=_resource_url(item, "bookings.new"),
        calendar_url=_resource_url(item, "bookings.calendar"),
        waitlist_url=(  # staff of its institute and admins: who waits for it
            _resource_url(item, "bookings.resource_waitlist")
            if current_user.is_authenticated and waitlist.may_see_line(current_user, item)
            else None
        ),
    )
