"""Bearer-token authentication of API requests. The API never reads the session
cookie: a request is whoever its ``Authorization: Bearer`` token belongs to."""

from __future__ import annotations

from flask import g, request
from flask_babel import gettext as _

from labshare.accounts.tokens import user_for_token
from labshare.errors import Unauthorized
from labshare.models import User
from labshare.ratelimit import TOKEN_USER_KEY, bearer_secret, token_user


def require_user() -> User:
    """The token's user, remembered on ``g.api_user`` (the locale selector reads it).
    The rate limiter's key may have looked the token up already in this request."""
    secret = bearer_secret()
    if secret is None:
        raise Unauthorized(_("Send Authorization: Bearer <token> (POST /api/v1/auth/token)."))
    user = token_user() if TOKEN_USER_KEY in request.environ else None
    if user is None:
        user = user_for_token(secret)  # raises with the precise reason
    g.api_user = user
    return user
