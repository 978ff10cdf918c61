"""Pages: an SME's orders and the order form, the staff queue, an order with its
actions, certificate upload and download, item labels, and the public verification."""

from __future__ import annotations

import io
from typing import Any

import segno
from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user, login_required
from markupsafe import Markup
from sqlalchemy import select

from labshare.booking.permissions import is_staff_of
from labshare.errors import DomainError, NotAllowed, NotFound
from labshare.extensions import csrf, db, limiter
from labshare.models import (
    DeliveryMethod,
    Field,
    Institute,
    ItemResult,
    OrderServiceType,
    Role,
    ServiceOffering,
    ServiceOrder,
)
from labshare.orders import certificates, intake, lifecycle
from labshare.orders import offerings as offering_service
from labshare.orders.downloads import certificate_response, upload_from_request
from labshare.orders.forms import (
    DEFAULT_ROWS,
    date_from_form,
    fees_from_form,
    items_from_form,
    items_of,
)
from labshare.orders.inputs import MAX_ID, MAX_ITEMS
from labshare.orders.labels import order_label
from labshare.orders.permissions import visible_orders
from labshare.orders.queue import is_overdue, staff_queue

bp = Blueprint("orders", __name__)


@bp.app_template_filter("order_label")
def _order_label(value: Any) -> str:
    return order_label(value)


def _user() -> Any:
    return current_user._get_current_object()


def order_or_404(order_id: int) -> ServiceOrder:
    order = db.session.get(ServiceOrder, order_id) if order_id <= MAX_ID else None
    if order is None or not lifecycle.visible_to(order, _user()):
        raise NotFound(_("No service order %(id)s.", id=order_id))
    return order


@bp.route("/orders")
@login_required
def index() -> Any:
    user = _user()
    if user.role == Role.STAFF and user.institute_id is not None:
        institute = db.session.get(Institute, user.institute_id)
        assert institute is not None
        queue = staff_queue(institute)
        return render_template("orders/queue.html", queue=queue, institute=institute)
    orders = db.session.scalars(
        select(ServiceOrder)
        .where(visible_orders(user))
        .order_by(ServiceOrder.created_at.desc(), ServiceOrder.id.desc())
        .limit(200)
    ).all()
    return render_template("orders/mine.html", orders=orders)


def _offerings() -> list[ServiceOffering]:
    return list(
        db.session.scalars(
            select(ServiceOffering)
            .join(Institute, Institute.id == ServiceOffering.institute_id)
            .where(ServiceOffering.active.is_(True), Institute.active.is_(True))
            .order_by(ServiceOffering.institute_id, ServiceOffering.field, ServiceOffering.id)
        )
    )


@bp.route("/orders/services")
def services() -> Any:
    """The service catalogue: per institute and field, what it does with items sent to
    it, the typical turnaround and fee."""
    field = request.args.get("field") or None
    institute_id = request.args.get("institute", type=int)
    rows = [
        o
        for o in _offerings()
        if (field is None or o.field == field)
        and (institute_id is None or o.institute_id == institute_id)
    ]
    names = {
        i.id: i
        for i in db.session.scalars(
            select(Institute).where(Institute.id.in_({o.institute_id for o in rows}))
        )
    }
    return render_template(
        "orders/services.html", offerings=rows, institutes=names, fields=list(Field), field=field
    )


@bp.route("/orders/offerings", methods=["GET", "POST"])
@login_required
def offerings() -> Any:
    """Staff: their institute's services, and a form to add one."""
    user = _user()
    if user.role != Role.STAFF or user.institute_id is None:
        raise NotAllowed(_("Only an institute's staff manage its services."))
    error: DomainError | None = None
    if request.method == "POST":
        form = request.form
        try:
            offering_service.create_offering(
                user,
                field=form.get("field"),
                service_type=form.get("service_type"),
                name=form.get("name"),
                name_en=form.get("name_en"),
                procedure=form.get("procedure"),
                turnaround_days=form.get("turnaround_days"),
                fee=form.get("fee"),
                fee_waiver_percent=form.get("fee_waiver_percent"),
                interval_months=form.get("interval_months"),
            )
        except DomainError as exc:
            if exc.status != 422:
                raise
            db.session.rollback()
            error = exc
        else:
            db.session.commit()
            flash(_("Service added."), "success")
            return redirect(url_for("orders.offerings"))
    rows = db.session.scalars(
        select(ServiceOffering)
        .where(ServiceOffering.institute_id == user.institute_id)
        .order_by(ServiceOffering.field, ServiceOffering.id)
    ).all()
    return render_template(
        "orders/offerings.html",
        offerings=rows,
        fields=list(Field),
        services=list(OrderServiceType),
        error=error,
        form=request.form,
    ), (error.status if error else 200)


@bp.route("/orders/offerings/<int:offering_id>/<any(withdraw,activate):change>", methods=["POST"])
@login_required
def offering_active(offering_id: int, change: str) -> Any:
    offering_service.set_active(offering_id, _user(), change == "activate")
    db.session.commit()
    return redirect(url_for("orders.offerings"))


@bp.route("/orders/new", methods=["GET", "POST"])
@login_required
def new() -> Any:
    user = _user()
    if user.role != Role.SME:
        raise NotAllowed(_("Only members of a company can send items."))
    offerings = _offerings()
    institutes = {o.institute_id for o in offerings}
    names = {
        i.id: i for i in db.session.scalars(select(Institute).where(Institute.id.in_(institutes)))
    }
    error: DomainError | None = None
    rows: list[Any] = []
    chosen: int | None = request.args.get("institute", type=int)
    preset = request.args.get("offering", type=int)
    if request.method == "POST":
        chosen = request.form.get("institute_id", type=int)
        try:
            rows = items_from_form(request.form)
            order = intake.create_order(
                chosen or 0,
                user,
                rows,
                delivery=request.form.get("delivery"),
                tracking_number=request.form.get("tracking_number"),
                notes=request.form.get("notes"),
            )
        except DomainError as exc:
            db.session.rollback()
            error = exc
        else:
            db.session.commit()
            flash(_("Order %(id)s submitted.", id=order.id), "success")
            return redirect(url_for("orders.detail", order_id=order.id))
    else:
        again = request.args.get("again", type=int)
        if again:
            previous = order_or_404(again)
            rows, chosen = items_of(previous), previous.institute_id
        elif preset:
            offering = next((o for o in offerings if o.id == preset), None)
            if offering is not None:
                chosen = offering.institute_id
                rows = [intake.ItemInput(offering_id=offering.id, name="")]
    status = error.status if error is not None else 200
    count = max(len(rows), request.args.get("rows", DEFAULT_ROWS, type=int) or DEFAULT_ROWS)
    return render_template(
        "orders/new.html",
        offerings=offerings,
        institutes=names,
        chosen=chosen,
        rows=rows,
        count=min(count, MAX_ITEMS),
        deliveries=list(DeliveryMethod),
        form=request.form,
        error=error,
    ), status


@bp.route("/orders/<int:order_id>")
@login_required
def detail(order_id: int) -> Any:
    order = order_or_404(order_id)
    return _detail(order)


def _detail(order: ServiceOrder, error: DomainError | None = None) -> Any:
    user = _user()
    status = error.status if error is not None else 200
    return render_template(
        "orders/detail.html",
        order=order,
        actions=lifecycle.allowed_actions(order, user),
        staff=is_staff_of(user, order.institute_id),
        results=list(ItemResult),
        overdue=is_overdue(order),
        error=error,
        max_mb=certificates.max_bytes() // (1024 * 1024),
    ), status


def _act(order: ServiceOrder, action: str) -> ServiceOrder:
    user, form = _user(), request.form
    if action == "accept":
        return lifecycle.accept_order(
            order,
            user,
            promised_date=date_from_form(form.get("promised_date"), "promised_date"),
            fees=fees_from_form(form, order),
        )
    if action == "reject":
        return lifecycle.reject_order(order, user, form.get("reason"))
    if action == "cancel":
        return lifecycle.cancel_order(order, user, form.get("reason"))
    if action == "receive":
        conditions = {i.id: form.get(f"condition-{i.id}") for i in order.items}
        return lifecycle.receive_order(order, user, conditions)
    if action == "start":
        return lifecycle.start_order(order, user)
    if action == "return":
        return lifecycle.return_order(order, user)
    if action == "collect":
        return lifecycle.collect_order(order, user)
    raise NotFound()


@bp.route(
    "/orders/<int:order_id>/<any(accept,reject,cancel,receive,start,return,collect):action>",
    methods=["POST"],
)
@login_required
def act(order_id: int, action: str) -> Any:
    order = order_or_404(order_id)
    try:
        _act(order, action)
    except DomainError as exc:
        if exc.status not in (409, 422):
            raise
        db.session.rollback()
        return _detail(order_or_404(order_id), exc)
    db.session.commit()
    flash(_("Order %(id)s: %(status)s.", id=order.id, status=order_label(order.status)), "success")
    return redirect(url_for("orders.detail", order_id=order.id))


@bp.route("/orders/<int:order_id>/items/<int:item_id>/complete", methods=["POST"])
@csrf.exempt  # checked below, once the body limit allows a certificate
@login_required
def complete_item(order_id: int, item_id: int) -> Any:
    order = order_or_404(order_id)
    try:
        upload = upload_from_request()
        if current_app.config.get("WTF_CSRF_ENABLED", True):
            csrf.protect()
        lifecycle.complete_item(
            order,
            item_id,
            _user(),
            result=upload.result,
            certificate_number=upload.certificate_number,
            pdf=upload.data,
            interval_months=upload.interval_months,
        )
    except DomainError as exc:
        if exc.status not in (409, 413, 422):
            raise
        db.session.rollback()
        return _detail(order_or_404(order_id), exc)
    db.session.commit()
    flash(_("Certificate saved."), "success")
    return redirect(url_for("orders.detail", order_id=order_id))


@bp.route("/orders/<int:order_id>/items/<int:item_id>/certificate")
@login_required
def certificate(order_id: int, item_id: int) -> Any:
    return certificate_response(order_or_404(order_id), item_id)


def _qr_svg(data: str) -> Markup:
    out = io.BytesIO()
    segno.make(data, error="m").save(out, kind="svg", scale=3, xmldecl=False, svgns=True)
    return Markup(out.getvalue().decode())  # noqa: S704 - segno's own SVG, no user markup


@bp.route("/orders/<int:order_id>/labels")
@login_required
def labels(order_id: int) -> Any:
    order = order_or_404(order_id)
    base = str(current_app.config.get("PUBLIC_BASE_URL", "")).rstrip("/")
    codes = {item.id: _qr_svg(f"{base}/orders/{order.id}#item-{item.id}") for item in order.items}
    return render_template("orders/labels.html", order=order, codes=codes)


@bp.route("/verify", methods=["GET", "POST"])
@limiter.limit(certificates.verify_limit, methods=["POST"])
def verify() -> Any:
    answer = None
    if request.method == "POST":
        answer = certificates.verify(request.form.get("number", ""), request.form.get("code", ""))
    return render_template("orders/verify.html", answer=answer, form=request.form)
