"""Tokens and the caller's own account."""

from __future__ import annotations

from typing import Any

from flask import current_app, request

from labshare.accounts import tokens
from labshare.accounts.accounts import authenticate
from labshare.api import bp
from labshare.api.registry import endpoint
from labshare.api.schemas import MeOut, TokenOut, TokenRequest
from labshare.api.serialize import institute_ref
from labshare.errors import Unauthorized
from labshare.extensions import db
from labshare.models import User
from labshare.ratelimit import token_limit


def calendar_feed_url(user: User) -> str:
    base = str(current_app.config["PUBLIC_BASE_URL"]).rstrip("/")
    return f"{base}/calendar/{tokens.calendar_token(user)}.ics"


@endpoint(
    bp,
    "/auth/token",
    "POST",
    summary="Exchange email and password for a bearer token",
    description="The token expires after API_TOKEN_TTL_HOURS (24 by default). "
    "Personal tokens (PERSONAL_TOKEN_DAYS, 90 days by default) are created in the web UI "
    "at /account/tokens.",
    tag="auth",
    body=TokenRequest,
    response=TokenOut,
    errors=(401,),
    limit=token_limit,
)
def issue_token(body: TokenRequest) -> dict[str, Any]:
    try:
        user = authenticate(body.email, body.password, client=request.remote_addr or "")
    except Unauthorized:
        db.session.commit()  # keep the failure count and the audit rows
        raise
    issued = tokens.issue_login_token(user, int(current_app.config["API_TOKEN_TTL_HOURS"]))
    db.session.commit()
    assert issued.token.expires_at is not None
    return {"token": issued.secret, "expires_at": issued.token.expires_at.isoformat()}


@endpoint(
    bp,
    "/me",
    "GET",
    summary="The signed-in user, with the secret link of their calendar feed",
    tag="auth",
    auth=True,
    response=MeOut,
)
def me(user: User) -> dict[str, Any]:
    had_token = bool(user.calendar_token)
    url = calendar_feed_url(user)
    if not had_token:
        db.session.commit()
    return {
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "role": str(user.role),
        "company": (
            {
                "id": user.company.id,
                "name": user.company.name,
                "credit_code": user.company.credit_code,
            }
            if user.company is not None
            else None
        ),
        "institute": institute_ref(user.institute) if user.institute is not None else None,
        "calendar_feed_url": url,
        "company_admin": user.company_admin,
        "institute_admin": user.institute_admin,
    }
