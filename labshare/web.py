"""Request-level glue: locale and zone selection, request ids, security headers,
the user loader and template helpers."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from flask import Flask, g, request, session
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
    if not user_id.isdigit():
        return None
    user = db.session.get(User, int(user_id))
    return user if user is not None and user.active else None


CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)


class Int32Converter(IntegerConverter):
    """``<int:...>`` limited to the id columns' range (32-bit INTEGER): a larger
    number matches no route (404) instead of overflowing in the database (500)."""

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", 2**31 - 1)
        super().__init__(map, *args, **kwargs)


def register_request_hooks(app: Flask) -> None:
    # Before any blueprint adds its rules: the rules bind their converters when added.
    app.url_map.converters["int"] = Int32Converter
    login_manager.login_view = "auth.login"
    login_manager.login_message_category = "info"

    @app.before_request
    def _request_id() -> None:
        g.request_id = request.headers.get("X-Request-Id", "")[:64] or uuid.uuid4().hex[:12]

    @app.after_request
    def _headers(response: Any) -> Any:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
        response.headers["X-Request-Id"] = g.get("request_id", "")
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
