from flask import Blueprint

bp = Blueprint("admin", __name__, url_prefix="/admin")

from labshare.web.admin import institutes, views  # noqa: E402,F401  - routes register on import
