"""The caller's password and personal tokens."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import Field

from labshare.accounts import passwords, tokens
from labshare.api import bp
from labshare.api.registry import BodyModel, ResponseModel, endpoint
from labshare.extensions import db
from labshare.models import ApiToken, User
from labshare.ratelimit import caller_key, token_limit


class PasswordChange(BodyModel):
    current_password: str = Field(min_length=1, max_length=200)
    new_password: str = Field(min_length=1, max_length=200)


class PasswordChanged(ResponseModel):
    changed: bool
    tokens_revoked: int


class PersonalTokenOut(ResponseModel):
    id: int
    name: str
    prefix: str
    created_at: dt.datetime
    expires_at: dt.datetime | None
    last_used_at: dt.datetime | None


def _token_json(token: ApiToken) -> dict[str, Any]:
    return {
        "id": token.id,
        "name": token.name,
        "prefix": token.prefix,
        "created_at": token.created_at.isoformat(),
        "expires_at": token.expires_at.isoformat() if token.expires_at else None,
        "last_used_at": token.last_used_at.isoformat() if token.last_used_at else None,
    }


@endpoint(
    bp,
    "/me/password",
    "POST",
    summary="Change the caller's password (needs the current one)",
    description="Ends every web session of the account and revokes every API token, "
    "the one used for this request included: get a new one from POST /api/v1/auth/token. "
    "422 names current_password (wrong) or new_password (too short, too common, "
    "unchanged).",
    tag="auth",
    auth=True,
    body=PasswordChange,
    response=PasswordChanged,
    errors=(422,),
    limit=token_limit,
    limit_key=caller_key,  # per account: a stolen token must not guess from many addresses
)
def change_password(user: User, body: PasswordChange) -> dict[str, Any]:
    revoked = passwords.change_password(user, body.current_password, body.new_password)
    db.session.commit()
    return {"changed": True, "tokens_revoked": revoked}


@endpoint(
    bp,
    "/me/tokens",
    "GET",
    summary="The caller's personal API tokens that still work, with their expiry",
    tag="auth",
    auth=True,
    response=PersonalTokenOut,
    paginated=True,
)
def list_tokens(user: User) -> dict[str, Any]:
    items = [_token_json(t) for t in tokens.list_personal_tokens(user)]
    return {"items": items, "total": len(items), "page": 1, "per_page": 200}


@endpoint(
    bp,
    "/me/tokens/<int:token_id>/revoke",
    "POST",
    summary="Revoke one of the caller's personal tokens",
    tag="auth",
    auth=True,
    response=PersonalTokenOut,
    errors=(404,),
)
def revoke_token(user: User, token_id: int) -> dict[str, Any]:
    token = tokens.revoke_token(user, token_id)
    db.session.commit()
    return _token_json(token)
