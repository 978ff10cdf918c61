from flask import Blueprint

bp = Blueprint("main", __name__)

from labshare.web.main import shell, views  # noqa: E402,F401  - routes register on import
