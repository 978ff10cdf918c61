"""The user's own API tokens and calendar feed link, the feed itself, and the
account's security page (password, e-mail confirmation, sessions)."""

from flask import Blueprint

bp = Blueprint("account", __name__)

from labshare.web.account import security, views  # noqa: E402,F401  - routes register on import
