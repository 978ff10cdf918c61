"""Domain errors and their one mapping to HTTP: JSON under /api, HTML pages elsewhere."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from flask import Flask, g, jsonify, render_template, request
from flask_babel import lazy_gettext as _l
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class DomainError(Exception):
    """Base of every refusal the services raise. ``message`` may be a lazy string,
    rendered in the user's language when the response is built."""

    status = 400
    code = "bad_request"

    def __init__(
        self,
        message: Any = None,
        *,
        field: str | None = None,
        rule: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(str(message) if message is not None else self.code)
        self.message = message if message is not None else self.code
        self.field = field
        self.rule = rule
        self.details = details or {}

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": str(self.message)}
        if self.field:
            body["field"] = self.field
        if self.rule:
            body["rule"] = self.rule
        body.update(self.details)
        return body


class BadRequest(DomainError):
    status = 400
    code = "bad_request"


class Unauthorized(DomainError):
    status = 401
    code = "unauthorized"


class NotAllowed(DomainError):
    status = 403
    code = "forbidden"


class NotFound(DomainError):
    status = 404
    code = "not_found"


class SlotTaken(DomainError):
    status = 409
    code = "conflict"


class InvalidTransition(DomainError):
    status = 409
    code = "invalid_state"


class ValidationFailed(DomainError):
    status = 422
    code = "validation_error"


class RuleViolation(DomainError):
    status = 422
    code = "rule_violation"


class ServiceBusy(DomainError):
    """The request lost a race with others (a deadlock, a serialization failure, a
    busy SQLite database) more times than it is retried; nothing was written. The
    client may simply send it again after ``retry_after`` seconds."""

    status = 503
    code = "service_unavailable"

    def __init__(self, message: Any = None, *, retry_after: int = 1) -> None:
        super().__init__(
            message or _l("The service is busy; nothing was changed. Please try again.")
        )
        self.retry_after = retry_after


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    503: "service_unavailable",
}


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.path == "/healthz"


def json_error(status: int, code: str, message: str, **extra: Any) -> Any:
    body: dict[str, Any] = {"code": code, "message": message}
    body.update({k: v for k, v in extra.items() if v is not None})
    return jsonify({"error": body}), status


def register_error_handlers(app: Flask) -> None:
    from labshare.extensions import db

    @app.errorhandler(DomainError)
    def domain_error(exc: DomainError) -> Any:
        db.session.rollback()
        headers = {}
        if isinstance(exc, ServiceBusy):
            headers["Retry-After"] = str(exc.retry_after)
        if wants_json():
            return jsonify({"error": exc.to_dict()}), exc.status, headers
        return (
            render_template("errors/error.html", status=exc.status, message=str(exc.message)),
            exc.status,
            headers,
        )

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        status = exc.code or 500
        if wants_json():
            code = _HTTP_CODES.get(status, "error")
            message = exc.description or code
            if status == 429:
                message = str(_l("Too many requests; try again later."))
            if status == 413:
                message = str(_l("The request body is too large."))
            body, _status = json_error(status, code, message)
        else:
            body = render_template("errors/error.html", status=status, message=exc.description)
        # RFC 9110: a 405 lists the allowed methods (the default response did).
        allow = [(k, v) for k, v in exc.get_headers() if k.lower() == "allow"]
        return body, status, allow

    @app.errorhandler(Exception)
    def unhandled(exc: Exception) -> Any:
        from labshare.database import is_busy, is_retryable

        if is_retryable(exc) or is_busy(exc):  # outside a view (a hook): nothing was kept
            log.warning("request lost a race outside the view: %s", exc)
            return domain_error(ServiceBusy())
        request_id = getattr(g, "request_id", None) or uuid.uuid4().hex[:12]
        log.exception("unhandled error, request %s", request_id)
        try:
            db.session.rollback()
        except Exception:  # noqa: BLE001 - the database may be the thing that failed
            log.warning("rollback failed after error %s", request_id)
        message = str(_l("Something went wrong on our side. Reference: %(ref)s", ref=request_id))
        if wants_json():
            return json_error(500, "internal_error", message)
        return render_template("errors/error.html", status=500, message=message), 500
