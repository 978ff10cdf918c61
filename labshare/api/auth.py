"""Bearer-token authentication of API requests. The API never reads the session
cookie: a request is whoever its ``Authorization: Bearer`` token belongs to."""

from __future__ import annotations

from flask import g
from flask_babel import gettext as _

from labshare.errors import Unauthorized
from labshare.models import User
from labshare.ratelimit import bearer_secret
from labshare.services.tokens import user_for_token


def require_user() -> User:
    """The token's user, remembered on ``g.api_user`` (the locale selector reads it;
    the rate limiter's key may have looked it up already)."""
    secret = bearer_secret()
    if secret is None:
        raise Unauthorized(_("Send Authorization: Bearer <token> (POST /api/v1/auth/token)."))
    user = getattr(g, "api_user", None)
    if user is None:
        user = user_for_token(secret)
    g.api_user = user
    return user
