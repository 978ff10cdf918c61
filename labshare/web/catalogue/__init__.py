from flask import Blueprint

bp = Blueprint("catalogue", __name__)

from labshare.web.catalogue import views  # noqa: E402,F401  - routes register on import
