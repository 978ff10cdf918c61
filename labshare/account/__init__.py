"""The user's own API tokens and calendar feed link, and the feed itself."""

from flask import Blueprint

bp = Blueprint("account", __name__)

from labshare.account import views  # noqa: E402,F401  - routes register on import
