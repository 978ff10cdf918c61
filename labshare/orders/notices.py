"""Order messages through the outbox (``labshare.messaging.notify``): each step to
the company, new orders to the institute's staff, and recalibration reminders."""

from __future__ import annotations

from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import select

from labshare.booking.permissions import is_member_of_company
from labshare.extensions import db
from labshare.messaging import notify
from labshare.models import Notification, Role, ServiceOrder, ServiceOrderItem, User

#: Who hears of each order event.
ORDER_EVENTS = {
    "submitted": "both",  # staff: a new order; the company: its copy
    "accepted": "company",
    "rejected": "company",
    "cancelled": "both",
    "received": "company",
    "in_progress": "company",
    "completed": "company",
    "returned": "company",
    "collected": "company",
}


def _company_recipients(order: ServiceOrder) -> list[User]:
    """Whoever placed the order, while still an active member of its company; once
    they have left it, the company's administrators (or, with none, its members):
    the news and the certificates are the company's, not a former employee's."""
    if is_member_of_company(order.user, order.company_id):
        return [order.user]
    members = list(
        db.session.scalars(
            select(User)
            .where(
                User.company_id == order.company_id,
                User.role == Role.SME,
                User.active.is_(True),
            )
            .order_by(User.id)
        )
    )
    admins = [u for u in members if u.company_admin]
    return admins or members


def _institute_name(order: ServiceOrder, locale: str) -> str:
    institute = order.institute
    if locale.startswith("en") and institute.name_en:
        return institute.name_en
    return institute.name


def _subject(event: str, order_id: int, institute: str) -> str:
    subjects = {
        "submitted": _("Service order %(id)s submitted to %(name)s", id=order_id, name=institute),
        "accepted": _("Service order %(id)s accepted by %(name)s", id=order_id, name=institute),
        "rejected": _("Service order %(id)s rejected by %(name)s", id=order_id, name=institute),
        "cancelled": _("Service order %(id)s cancelled", id=order_id),
        "received": _("Service order %(id)s: items received", id=order_id),
        "in_progress": _("Service order %(id)s: work started", id=order_id),
        "completed": _("Service order %(id)s completed: certificates ready", id=order_id),
        "returned": _("Service order %(id)s: items sent back", id=order_id),
        "collected": _("Service order %(id)s: items collected", id=order_id),
    }
    return subjects[event]


def order_event(order: ServiceOrder, event: str) -> list[Notification]:
    """Queue one event's messages, at most once per (order, event, recipient)."""
    audience = ORDER_EVENTS[event]
    recipients: list[User] = []
    if audience in ("company", "both"):
        recipients.extend(_company_recipients(order))
    if audience in ("staff", "both"):
        recipients.extend(u for u in notify._staff_of(order.institute_id) if u not in recipients)
    queued: list[Notification] = []
    for user in recipients:
        locale = notify._locale_of(user)
        with force_locale(locale):
            institute = _institute_name(order, locale)
            for_staff = user.role == Role.STAFF
            subject = _subject(event, order.id, institute)
            if for_staff and event == "submitted":
                subject = _("New service order %(id)s to accept", id=order.id)
            text, html = notify._render(
                "order_event",
                user,
                order=order,
                event=event,
                for_staff=for_staff,
                institute_name=institute,
            )
        note = notify.enqueue(
            user,
            f"order_{event}",
            subject=subject,
            body_text=text,
            body_html=html,
            dedupe_key=f"order:{order.id}:{event}:{user.id}",
        )
        if note is not None:
            queued.append(note)
    return queued


def recalibration_reminder(item: ServiceOrderItem) -> Notification | None:
    """Tell the company an item is due for calibration or verification again, with a
    link to order the same items again."""
    order = item.order
    note: Notification | None = None
    for user in _company_recipients(order):
        note = _reminder_to(user, order, item) or note
    return note


def _reminder_to(user: User, order: ServiceOrder, item: ServiceOrderItem) -> Notification | None:
    locale = notify._locale_of(user)
    with force_locale(locale):
        subject = _(
            "%(item)s is due for recalibration on %(date)s",
            item=item.name,
            date=item.due_date.isoformat() if item.due_date else "",
        )
        text, html = notify._render(
            "recalibration_reminder",
            user,
            order=order,
            item=item,
            institute_name=_institute_name(order, locale),
        )
    return notify.enqueue(
        user,
        "recalibration_reminder",
        subject=subject,
        body_text=text,
        body_html=html,
        # The order's id leads, so the in-app list can link to "order again".
        dedupe_key=f"recalibration:{order.id}:{item.id}:{item.due_date}"
        + ("" if user.id == order.user_id else f":{user.id}"),
    )
