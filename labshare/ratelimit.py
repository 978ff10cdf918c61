"""Rate limits of the endpoints an attacker would hammer: login, token, registration
and booking creation. The limiter itself (and its storage, ``RATELIMIT_STORAGE_URI``:
``memory://`` by default, Redis when more than one process serves) is bound in
``create_app``; a 429 is the API's JSON error ``rate_limited`` under /api and the
error page elsewhere (labshare/errors.py).

Each limit can be changed in the configuration (``RATELIMIT_LOGIN`` ...); the values
are Flask-Limiter strings such as ``"10/minute;50/hour"``.
"""

from __future__ import annotations

from flask import current_app, request
from flask_limiter.util import get_remote_address
from flask_login import current_user

from labshare.accounts.tokens import user_for_token
from labshare.errors import DomainError
from labshare.models import User

DEFAULTS = {
    "RATELIMIT_LOGIN": "10/minute;100/hour",
    "RATELIMIT_TOKEN": "10/minute;100/hour",
    "RATELIMIT_REGISTER": "10/hour",
    "RATELIMIT_BOOKING": "30/minute",
}


def _configured(name: str) -> str:
    return str(current_app.config.get(name) or DEFAULTS[name])


def login_limit() -> str:
    return _configured("RATELIMIT_LOGIN")


def token_limit() -> str:
    return _configured("RATELIMIT_TOKEN")


def register_limit() -> str:
    return _configured("RATELIMIT_REGISTER")


def booking_limit() -> str:
    return _configured("RATELIMIT_BOOKING")


#: Where this request's bearer token lookup is kept (the request's own environ: ``g``
#: may outlive a request when an app context is shared, as in tests).
TOKEN_USER_KEY = "labshare.token_user"  # noqa: S105 - an environ key, not a secret


def token_user() -> User | None:
    """The active user of this request's bearer token, or None for a missing,
    made-up, revoked or expired one. Looked up once per request."""
    environ = request.environ
    if TOKEN_USER_KEY not in environ:
        secret = bearer_secret()
        user: User | None = None
        if secret is not None:
            try:
                user = user_for_token(secret)
            except DomainError:
                user = None
        environ[TOKEN_USER_KEY] = user
    found: User | None = environ[TOKEN_USER_KEY]
    return found


def caller_key() -> str:
    """Who is asking: the authenticated user (by a valid bearer token or the signed-in
    session), else the client's address. Many SMEs sit behind one company NAT, so
    authenticated limits follow the user; a made-up or expired token counts as no
    token at all, so it cannot buy a fresh bucket."""
    if bearer_secret() is not None:
        user = token_user()
        return f"user:{user.id}" if user is not None else "ip:" + get_remote_address()
    if current_user and current_user.is_authenticated:
        return f"user:{current_user.id}"
    return "ip:" + get_remote_address()


def bearer_secret() -> str | None:
    """The secret of an ``Authorization: Bearer`` header, or None."""
    header = request.headers.get("Authorization", "")
    scheme, _sep, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        return None
    return secret.strip()
