from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api/v1")

from labshare.api import views  # noqa: E402,F401  - routes register on import
