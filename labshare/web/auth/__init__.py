import hashlib

from flask import Blueprint
from flask.blueprints import BlueprintSetupState

bp = Blueprint("auth", __name__)


def _require_scrypt(state: BlueprintSetupState) -> None:
    # Werkzeug hashes passwords with scrypt; some Python builds (old OpenSSL, LibreSSL)
    # lack it, and would only fail at the first registration. Fail at start-up instead.
    if not hasattr(hashlib, "scrypt"):
        raise RuntimeError(
            "This Python has no hashlib.scrypt (needs OpenSSL 1.1+); passwords cannot be hashed"
        )


bp.record_once(_require_scrypt)

from labshare.web.auth import views  # noqa: E402,F401  - routes register on import
