"""Request-level glue: locale and zone selection, request ids, security headers,
the user loader and template helpers."""

from __future__ import annotations

import datetime as dt
import hmac
import uuid
from typing import Any

from flask import Flask, g, request, session
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_babel import format_datetime
from flask_login import current_user
from werkzeug.routing import IntegerConverter

from labshare.extensions import db, login_manager
from labshare.models import User
from labshare.timeutil import to_local

LANGUAGES = ("zh_CN", "en")


def select_locale() -> str:
    from flask import current_app, has_request_context

    if not has_request_context():  # jobs, CLI, services called from tests
        return str(current_app.config["BABEL_DEFAULT_LOCALE"])
    if "locale" in session and session["locale"] in LANGUAGES:
        return str(session["locale"])
    user = getattr(g, "api_user", None) or (
        current_user if current_user and current_user.is_authenticated else None
    )
    if user is not None and getattr(user, "locale", None) in LANGUAGES:
        return str(user.locale)
    best = request.accept_languages.best_match(LANGUAGES) if request else None
    return best or str(current_app.config["BABEL_DEFAULT_LOCALE"])


def select_timezone() -> str:
    return "UTC"


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    """The user of a session or remember-me cookie, whose id is ``"<id>:<nonce>"``
    (``User.get_id``): a cookie issued before the account's nonce was replaced
    (logout, password change or reset, "sign out other devices", deactivation) finds
    nobody. The same one query as a plain id lookup."""
    number, _sep, nonce = user_id.partition(":")
    if not number.isdigit() or not nonce or int(number) > ID_MAX:
        return None
    user = db.session.get(User, int(number))
    if user is None or not user.active:
        return None
    if not hmac.compare_digest(user.session_nonce, nonce):
        return None
    return user


CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)

#: Set on every response unless the view set its own.
SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("Content-Security-Policy", CSP),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "strict-origin-when-cross-origin"),
)


#: The id columns are 32-bit INTEGER.
ID_MAX = 2**31 - 1


class Int32Converter(IntegerConverter):
    """``<int:...>`` limited to the id columns' range (32-bit INTEGER): a larger
    number matches no route (404) instead of overflowing in the database (500)."""

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", ID_MAX)
        super().__init__(map, *args, **kwargs)


class CookieSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, except that a request without a session cookie
    (every API call from a script: the API is token-only) gets its empty session
    without building the cookie signer first. Same sessions, same cookies."""

    def open_session(self, app: Flask, request: Any) -> SecureCookieSession | None:
        if app.secret_key and not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app: Flask, session: Any, response: Any) -> None:
        if not session and not session.modified:  # nothing to write or delete
            if session.accessed:
                response.vary.add("Cookie")
            return
        super().save_session(app, session, response)


def register_request_hooks(app: Flask) -> None:
    # Before any blueprint adds its rules: the rules bind their converters when added.
    app.url_map.converters["int"] = Int32Converter
    app.session_interface = CookieSessionInterface()
    login_manager.login_view = "auth.login"
    login_manager.login_message_category = "info"

    @app.before_request
    def _request_id() -> None:
        g.request_id = request.headers.get("X-Request-Id", "")[:64] or uuid.uuid4().hex[:12]

    @app.after_request
    def _headers(response: Any) -> Any:
        # Every response: one pass over its headers, not a scan per header set.
        headers = response.headers
        present = {key.lower() for key, _value in headers}
        for key, value in SECURITY_HEADERS:
            if key.lower() not in present:
                headers.add(key, value)
        headers.set("X-Request-Id", g.get("request_id", ""))
        return response

    @app.template_filter("local")
    def _local(value: dt.datetime | None, tz: str, fmt: str = "yyyy-MM-dd HH:mm") -> str:
        if value is None:
            return ""
        return format_datetime(to_local(value, tz).replace(tzinfo=None), fmt)

    @app.context_processor
    def _globals() -> dict[str, Any]:
        from flask_babel import get_locale

        return {"current_locale": str(get_locale()), "languages": LANGUAGES}
