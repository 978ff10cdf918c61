"""The JSON API of ../shared/API.md over the same services as the web views."""

from flask import Blueprint

from labshare.extensions import csrf

bp = Blueprint("api", __name__, url_prefix="/api/v1")
# Bearer tokens, never the session cookie: nothing for a cross-site form to ride on.
csrf.exempt(bp)

from labshare.api import views  # noqa: E402,F401  - routes register on import
