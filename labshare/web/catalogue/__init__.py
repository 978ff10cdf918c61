from flask import Blueprint

bp = Blueprint("catalogue", __name__)

from labshare.web.catalogue import cards, views  # noqa: E402,F401  - register on import
