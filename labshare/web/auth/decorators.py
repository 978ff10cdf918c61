"""Role gates for views: anonymous users go to the login page, the wrong role gets 403."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import abort
from flask_login import current_user, login_required

from labshare.models import Role

F = TypeVar("F", bound=Callable[..., Any])


def role_required(*roles: Role | str) -> Callable[[F], F]:
    """Allow only signed-in users with one of ``roles``."""
    allowed = {Role(r) for r in roles}

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            # login_required lets OPTIONS (its exempt methods) through anonymously.
            if not current_user.is_authenticated or current_user.role not in allowed:
                abort(403)
            return view(*args, **kwargs)

        return login_required(wrapped)

    return decorator
