"""Companies and their members (company administrators, invitations), the review
of new companies by institute staff, and institute administrators' staff accounts."""

from flask import Blueprint

bp = Blueprint("company", __name__)

from labshare.web.company import views  # noqa: E402,F401  - routes register on import
