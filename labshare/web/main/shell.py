"""What every page's frame needs: the navigation by role, the language names,
enum labels and friendly error texts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import current_app, request, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from werkzeug.exceptions import default_exceptions
from werkzeug.routing import BuildError

from labshare.labels import WEEKDAY_LABELS, label, measurand_label
from labshare.messaging import inbox
from labshare.models import Role
from labshare.web.main import bp

LANGUAGE_NAMES = (("zh_CN", "中文"), ("en", "English"))


@dataclass(frozen=True)
class NavEntry:
    #: Endpoints to try in order; the first one the app has is used, so a link
    #: appears as soon as the blueprint that serves it is registered.
    endpoints: tuple[str, ...]
    label: Any
    roles: frozenset[Role | None]
    #: Only for users with this flag set (an institute administrator's page).
    flag: str | None = None


ANYONE = frozenset({None, Role.SME, Role.STAFF, Role.ADMIN})

NAV: tuple[NavEntry, ...] = (
    NavEntry(("catalogue.index",), _l("Catalogue"), ANYONE),
    NavEntry(("catalogue.institutes",), _l("Institutes"), ANYONE),
    NavEntry(("orders.services",), _l("Calibration services"), ANYONE),
    NavEntry(("bookings.mine", "bookings.index"), _l("My bookings"), frozenset({Role.SME})),
    NavEntry(("manage.dashboard", "manage.index"), _l("Dashboard"), frozenset({Role.STAFF})),
    NavEntry(("manage.resources", "manage.instruments"), _l("Manage"), frozenset({Role.STAFF})),
    NavEntry(("company.overview",), _l("My company"), frozenset({Role.SME})),
    NavEntry(("company.review",), _l("Companies"), frozenset({Role.STAFF, Role.ADMIN})),
    NavEntry(
        ("company.staff",), _l("Staff accounts"), frozenset({Role.STAFF}), flag="institute_admin"
    ),
    NavEntry(
        ("orders.index",), _l("Service orders"), frozenset({Role.SME, Role.STAFF, Role.ADMIN})
    ),
    NavEntry(("admin.users",), _l("Users"), frozenset({Role.ADMIN})),
    NavEntry(("admin.bookings", "bookings.all"), _l("All bookings"), frozenset({Role.ADMIN})),
    NavEntry(
        ("reports.index", "reports.stats", "reports.campaign"),
        _l("Statistics"),
        frozenset({Role.STAFF, Role.ADMIN}),
    ),
    NavEntry(("audit.index",), _l("Audit log"), frozenset({Role.STAFF, Role.ADMIN})),
    NavEntry(
        ("notifications.index", "account.notifications"),
        _l("Notifications"),
        frozenset({Role.SME, Role.STAFF, Role.ADMIN}),
    ),
    NavEntry(
        ("account.profile", "account.index", "account.security", "account.token_list"),
        _l("Account"),
        frozenset({Role.SME, Role.STAFF, Role.ADMIN}),
    ),
)


@dataclass(frozen=True)
class NavLink:
    url: str
    label: str
    active: bool
    #: A count shown beside the label (unread notifications); None: none.
    count: int | None = None


def unread_notifications() -> int:
    """The signed-in user's unread count, counted once per request (kept in the WSGI
    environ, which lives exactly as long as the request): one count over the user's
    rows, served by the notification (user_id, created_at) index."""
    key = "labshare.unread_notifications"
    if key not in request.environ:
        request.environ[key] = inbox.unread_count(current_user)
    return int(request.environ[key])


def nav_items() -> list[NavLink]:
    role = current_user.role if current_user.is_authenticated else None
    views = current_app.view_functions
    links: list[NavLink] = []
    for entry in NAV:
        if role not in entry.roles:
            continue
        if entry.flag is not None and not getattr(current_user, entry.flag, False):
            continue
        endpoint = next((e for e in entry.endpoints if e in views), None)
        if endpoint is None:
            continue
        try:
            url = url_for(endpoint)
        except BuildError:  # an endpoint that needs arguments is not a nav link
            continue
        count = unread_notifications() if endpoint == "notifications.index" else None
        links.append(NavLink(url, str(entry.label), request.endpoint == endpoint, count))
    return links


ERROR_TITLES: dict[int, Any] = {
    400: _l("The request could not be understood"),
    401: _l("Please log in"),
    403: _l("You may not open this page"),
    404: _l("Page not found"),
    405: _l("This action is not possible here"),
    409: _l("This conflicts with another change"),
    413: _l("The upload is too large"),
    422: _l("Some input could not be accepted"),
    429: _l("Too many requests"),
    500: _l("Something went wrong"),
    503: _l("The service is unavailable for a moment"),
}

ERROR_TEXTS: dict[int, Any] = {
    400: _l("Please go back and try again."),
    401: _l("This page is for signed-in users."),
    403: _l("Your account does not give access to this page."),
    404: _l("The page or the item you asked for does not exist, or is not visible to you."),
    405: _l("Please use the buttons on the pages."),
    409: _l("Someone else changed this in the meantime. Please reload and try again."),
    413: _l("Please choose a smaller file."),
    422: _l("Please check what you entered."),
    429: _l("Please wait a minute and try again."),
    500: _l("We have been told about it. Please try again in a moment."),
    503: _l("Please try again in a minute."),
}


def error_title(status: int) -> str:
    return str(ERROR_TITLES.get(status) or ERROR_TITLES[500 if status >= 500 else 400])


def error_text(status: int) -> str:
    return str(ERROR_TEXTS.get(status) or ERROR_TEXTS[500 if status >= 500 else 400])


def show_error_message(status: int, message: Any) -> bool:
    """Hide Werkzeug's stock English descriptions; show our own (translated) messages."""
    exc = default_exceptions.get(status)
    text = str(message or "")
    return bool(text) and (exc is None or text != exc.description)


def ui_locale() -> str:
    """The page's language as one of LANGUAGES: Babel resolves ``zh_CN`` to
    ``zh_Hans_CN``, which is the same language for us."""
    from flask_babel import get_locale

    locale = get_locale()
    return "zh_CN" if locale is not None and locale.language == "zh" else "en"


@bp.app_context_processor
def _shell() -> dict[str, Any]:
    return {
        "ui_locale": ui_locale(),
        "nav_items": nav_items,
        "language_names": LANGUAGE_NAMES,
        "error_title": error_title,
        "error_text": error_text,
        "show_error_message": show_error_message,
    }


@bp.app_template_filter("label")
def _label(value: Any) -> str:
    return label(value)


@bp.app_template_filter("measurand")
def _measurand(value: str | None) -> str:
    return measurand_label(value)


@bp.app_template_filter("weekday")
def _weekday(value: int) -> str:
    return str(WEEKDAY_LABELS[value % 7])


@bp.app_template_filter("number")
def _number(value: float | int | None) -> str:
    """A range bound as a metrologist writes it: no trailing zeros, no exponent
    for ordinary magnitudes."""
    if value is None:
        return ""
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:g}"


@bp.app_template_filter("display_name")
def _display_name(obj: Any) -> str:
    """The English name on English pages where there is one, else the Chinese name."""
    from flask_babel import get_locale

    name_en = getattr(obj, "name_en", None)
    if name_en and str(get_locale()) == "en":
        return str(name_en)
    return str(obj.name)


@bp.app_template_filter("other_name")
def _other_name(obj: Any) -> str:
    """The name in the other language, shown smaller next to the main one."""
    from flask_babel import get_locale

    name_en = getattr(obj, "name_en", None)
    if not name_en:
        return ""
    return str(obj.name) if str(get_locale()) == "en" else str(name_en)


@bp.before_app_request
def _forget_per_context_caches() -> None:
    """Flask-Babel and Flask-Login cache the locale and the user in ``g``. A real
    request always starts with a fresh ``g``; requests made inside one long app
    context (the test client within a test) must not see the previous request's
    language or user."""
    from flask import g
    from flask_babel import refresh

    if "_flask_babel" in g:  # nothing cached yet (every real request): nothing to do
        refresh()
    g.pop("_login_user", None)
