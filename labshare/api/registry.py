"""The API's route registry: one declaration per endpoint validates its requests and
describes it in ``/api/v1/openapi.json``, so the document cannot drift from the code.

A handler is declared with ``@endpoint(path, method, query=Model, body=Model,
response=Model, ...)`` and receives keyword arguments: its path parameters,
``user`` (when it needs a token), ``query`` and ``body`` (validated models).

How requests fail, as API.md says:
- malformed JSON, a body that is not an object, or a value of the wrong JSON type
  -> 400 ``bad_request`` (with ``field`` where one is known);
- a missing or invalid value (including a time without a UTC offset, and any bad
  query parameter such as ``per_page=abc``) -> 422 ``validation_error`` naming the
  ``field``;
- unknown query parameters and unknown body members are ignored; an empty query
  parameter counts as absent.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, TypeVar

from flask import Blueprint, Response, jsonify, request
from flask_babel import gettext as _
from pydantic import BaseModel, ConfigDict, PlainValidator, ValidationError, WithJsonSchema
from pydantic_core import PydanticCustomError

from labshare.api import messages
from labshare.errors import BadRequest, NotAllowed, ValidationFailed
from labshare.models import Role, User
from labshare.retry import LOCKS_LATE
from labshare.timeutil import NaiveTime, NonexistentLocalTime, parse_aware

# -- field types shared by the request models ------------------------------------------


def _parse_time(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise PydanticCustomError("naive_time", "naive")
        return value.astimezone(dt.UTC)
    if not isinstance(value, str):
        raise PydanticCustomError("string_type", "Input should be a string")
    try:
        return parse_aware(value)
    except NaiveTime as exc:
        raise PydanticCustomError("naive_time", "naive") from exc
    except (NonexistentLocalTime, ValueError) as exc:
        raise PydanticCustomError("invalid_time", "invalid") from exc


#: An ISO 8601 instant with a UTC offset (``2026-12-01T09:00:00+08:00`` or ``...Z``),
#: returned as aware UTC. A time without an offset is refused.
AwareTime = Annotated[
    dt.datetime,
    PlainValidator(_parse_time),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date-time",
            "description": "ISO 8601 with a UTC offset, e.g. 2026-12-01T09:00:00+08:00",
        }
    ),
]


class QueryModel(BaseModel):
    """Query parameters: strings from the URL, converted (lax); unknown ones ignored."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)
    #: A NUL in any parameter is a 422 on it (PostgreSQL refuses NUL in text).
    refuses_nul: ClassVar[bool] = True


Q = TypeVar("Q", bound="QueryModel")


class BodyModel(BaseModel):
    """A JSON body: JSON types must match exactly (strict); unknown members ignored."""

    model_config = ConfigDict(extra="ignore", strict=True)


class ResponseModel(BaseModel):
    """Documents a response shape (handlers build plain dicts; tests check them
    against these schemas)."""

    model_config = ConfigDict(extra="forbid")


# -- the registry ----------------------------------------------------------------------


@dataclass
class Endpoint:
    path: str  # Flask rule, relative to the blueprint: /bookings/<int:booking_id>
    method: str
    name: str
    summary: str
    description: str
    tag: str
    auth: bool
    roles: tuple[Role, ...]
    query: type[QueryModel] | None
    body: type[BodyModel] | None
    response: type[BaseModel] | None
    status: int
    paginated: bool
    errors: tuple[int, ...]
    content_type: str = "application/json"
    #: The answer is a JSON array of ``response`` (not paginated: a bounded list).
    listed: bool = False
    #: Optional members of the page object besides items/total/page/per_page.
    page_extra: dict[str, Any] = field(default_factory=dict)
    extra_responses: dict[int, str] = field(default_factory=dict)
    #: An OpenAPI requestBody for a body the handler reads itself (a multipart upload).
    raw_body: dict[str, Any] | None = None


ENDPOINTS: list[Endpoint] = []

_TYPE_ERRORS = {"json_invalid", "json_type", "model_type", "model_attributes_type", "dict_type"}


def _is_type_error(kind: str) -> bool:
    return kind in _TYPE_ERRORS or kind.endswith("_type") or kind.endswith("_parsing")


def _field_name(loc: Sequence[Any]) -> str | None:
    parts = [str(p) for p in loc]
    return ".".join(parts) if parts else None


def raise_for(exc: ValidationError, *, json_body: bool = True) -> None:
    """Turn a pydantic ValidationError into the API's 400 or 422. A query string has
    no JSON types, so there every error is a field's invalid value (422)."""
    errors = exc.errors(include_url=False)
    type_errors = [e for e in errors if json_body and _is_type_error(e["type"])]
    chosen = type_errors[0] if type_errors else errors[0]
    name = _field_name(chosen["loc"])
    message = messages.message(chosen["type"], name, chosen.get("ctx"), chosen["msg"])
    if type_errors:
        raise BadRequest(message, field=name)
    raise ValidationFailed(message, field=name)


def parse_query(model: type[Q], args: Mapping[str, str] | None = None) -> Q:
    """The request's query string (or ``args``, its parsed form: the fast path's)
    as ``model``; a blank value counts as absent."""
    given = request.args if args is None else args
    data = {key: value for key, value in given.items() if value.strip() != ""}
    for key, value in data.items():
        if "\x00" in value and model.refuses_nul:
            raise ValidationFailed(
                _("This field contains a NUL character, which is not allowed."), field=key
            )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise_for(exc, json_body=False)
        raise  # unreachable: raise_for always raises


def parse_body(model: type[BodyModel]) -> BodyModel:
    raw = request.get_data(cache=True)
    if not raw.strip():
        raw = b"{}"
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise_for(exc)
        raise


def _openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule)


def endpoint(
    bp: Blueprint,
    path: str,
    method: str,
    *,
    summary: str,
    tag: str,
    description: str = "",
    auth: bool = False,
    roles: Sequence[Role] = (),
    query: type[QueryModel] | None = None,
    body: type[BodyModel] | None = None,
    response: type[BaseModel] | None = None,
    status: int = 200,
    paginated: bool = False,
    listed: bool = False,
    errors: Sequence[int] = (),
    content_type: str = "application/json",
    limit: str | Callable[[], str] | None = None,
    limit_key: Callable[[], str] | None = None,
    raw_body: dict[str, Any] | None = None,
    page_extra: dict[str, Any] | None = None,
    locks_late: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register an API handler (see the module docstring). ``locks_late``: on
    SQLite the handler takes the write lock itself (``begin_write``) before the
    reads its writes depend on; the token is read outside it (labshare/retry.py)."""

    if paginated and listed:
        raise ValueError(f"{method} {path}: an answer is a page or a list, not both")

    def decorator(handler: Callable[..., Any]) -> Callable[..., Any]:
        spec = Endpoint(
            path=path,
            method=method.upper(),
            name=handler.__name__,
            summary=summary,
            description=description,
            tag=tag,
            auth=auth or bool(roles),
            roles=tuple(roles),
            query=query,
            body=body,
            response=response,
            status=status,
            paginated=paginated,
            listed=listed,
            errors=tuple(errors),
            content_type=content_type,
            raw_body=raw_body,
            page_extra=dict(page_extra or {}),
        )
        ENDPOINTS.append(spec)

        def view(**path_args: Any) -> Any:
            from labshare.api.auth import require_user

            kwargs = dict(path_args)
            if spec.auth:
                user: User = require_user()
                if spec.roles and user.role not in spec.roles:
                    raise NotAllowed(_("Your account may not do this."))
                kwargs["user"] = user
            if spec.query is not None:
                kwargs["query"] = parse_query(spec.query)
            if spec.body is not None:
                kwargs["body"] = parse_body(spec.body)
            result = handler(**kwargs)
            if isinstance(result, Response):
                return result
            return jsonify(result), spec.status

        view.__name__ = handler.__name__
        view.__doc__ = handler.__doc__
        if locks_late:  # before the limiter's wrapper, which copies it
            setattr(view, LOCKS_LATE, True)
        if limit is not None:
            from labshare.extensions import limiter

            view = limiter.limit(limit, key_func=limit_key)(view)
            spec.errors = (*spec.errors, 429)
        bp.add_url_rule(path, endpoint=handler.__name__, view_func=view, methods=[spec.method])
        return handler

    return decorator


# -- the OpenAPI document --------------------------------------------------------------

_ERROR_DESCRIPTIONS = {
    400: "bad_request: malformed JSON or a value of the wrong type",
    401: "unauthorized: missing, invalid or expired token",
    403: "forbidden: authenticated, but not allowed",
    404: "not_found: no such object, or one the caller may not see",
    409: "conflict (the slot is taken) or invalid_state (transition not allowed)",
    413: "payload_too_large: the body is over 1 MB",
    422: "validation_error (field names the field) or rule_violation (rule names the rule)",
    429: "rate_limited: too many requests",
}

_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {
                    "type": "string",
                    "enum": [
                        "bad_request",
                        "unauthorized",
                        "forbidden",
                        "not_found",
                        "method_not_allowed",
                        "conflict",
                        "invalid_state",
                        "validation_error",
                        "rule_violation",
                        "payload_too_large",
                        "rate_limited",
                        "internal_error",
                    ],
                },
                "message": {"type": "string"},
                "field": {"type": "string"},
                "rule": {
                    "type": "string",
                    "enum": [
                        "lead_time",
                        "horizon",
                        "min_duration",
                        "max_duration",
                        "granularity",
                        "opening_hours",
                        "holiday",
                        "closure",
                        "calibration_expired",
                        "instrument_unavailable",
                        "company_quota",
                        "cancellation_deadline",
                        "qualification",
                        # waitlist
                        "slot_free",
                        "waitlist_duplicate",
                        "waitlist_limit",
                        "waitlist_disabled",
                    ],
                },
            },
        }
    },
}


def _schema_of(model: type[BaseModel], components: dict[str, Any], mode: str) -> dict[str, Any]:
    schema = model.model_json_schema(
        ref_template="#/components/schemas/{model}",
        mode="serialization" if mode == "serialization" else "validation",
    )
    for name, definition in schema.pop("$defs", {}).items():
        components[name] = definition
    components[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _page_schema(item_ref: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "required": ["items", "total", "page", "per_page"],
        "additionalProperties": False,
        "properties": {
            "items": {"type": "array", "items": item_ref},
            "total": {"type": "integer", "minimum": 0},
            "page": {"type": "integer", "minimum": 1},
            "per_page": {"type": "integer", "minimum": 1, "maximum": 200},
        },
    }
    schema["properties"].update(extra)
    return schema


def _without_null(prop: dict[str, Any]) -> dict[str, Any]:
    """An optional query parameter is absent, never null: drop pydantic's null branch."""
    options = prop.get("anyOf")
    if isinstance(options, list):
        rest = [o for o in options if o != {"type": "null"}]
        if len(rest) == 1:
            prop.pop("anyOf")
            prop = {**rest[0], **prop}
    if prop.get("default", 0) is None:
        prop.pop("default")
    return prop


def _parameters(spec: Endpoint, components: dict[str, Any]) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = []
    for match in re.finditer(r"<(?:([a-z]+):)?([a-z_]+)>", spec.path):
        converter, name = match.groups()
        params.append(
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": {"type": "integer"} if converter == "int" else {"type": "string"},
            }
        )
    if spec.query is not None:
        schema = spec.query.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in schema.pop("$defs", {}).items():
            components[name] = definition
        required = set(schema.get("required", []))
        for name, prop in schema.get("properties", {}).items():
            prop = _without_null(dict(prop))
            description = prop.pop("description", None)
            prop.pop("title", None)
            param: dict[str, Any] = {
                "name": name,
                "in": "query",
                "required": name in required,
                "schema": prop,
            }
            if description:
                param["description"] = description
            params.append(param)
    return params


def openapi_document(extra_paths: dict[str, Any] | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every registered endpoint."""
    components: dict[str, Any] = {"Error": _ERROR_SCHEMA}
    paths: dict[str, Any] = {}
    for spec in ENDPOINTS:
        operation: dict[str, Any] = {
            "operationId": spec.name,
            "summary": spec.summary,
            "tags": [spec.tag],
        }
        if spec.description:
            operation["description"] = spec.description
        params = _parameters(spec, components)
        if params:
            operation["parameters"] = params
        if spec.body is not None:
            body_ref = _schema_of(spec.body, components, "validation")
            operation["requestBody"] = {
                "required": bool(spec.body.model_json_schema().get("required")),
                "content": {"application/json": {"schema": body_ref}},
            }
        elif spec.raw_body is not None:
            operation["requestBody"] = spec.raw_body
        responses: dict[str, Any] = {}
        success: dict[str, Any] = {"description": "OK"}
        if spec.response is not None:
            ref = _schema_of(spec.response, components, "serialization")
            if spec.paginated:
                page_name = f"{spec.response.__name__}Page"
                components[page_name] = _page_schema(ref, spec.page_extra)
                ref = {"$ref": f"#/components/schemas/{page_name}"}
            elif spec.listed:
                ref = {"type": "array", "items": ref}
            success["content"] = {spec.content_type: {"schema": ref}}
        elif spec.content_type != "application/json":
            success["content"] = {spec.content_type: {"schema": {"type": "string"}}}
        responses[str(spec.status)] = success
        codes = set(spec.errors)
        if spec.auth:
            codes.add(401)
        if spec.roles:
            codes.add(403)
        if spec.query is not None or spec.body is not None:
            codes.update((400, 422))
        if spec.body is not None:
            codes.add(413)
        for code in sorted(codes):
            responses[str(code)] = {
                "description": _ERROR_DESCRIPTIONS[code],
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            }
        operation["responses"] = responses
        if spec.auth:
            operation["security"] = [{"bearerAuth": []}]
        else:
            operation["security"] = [{}]
        full = "/api/v1" + _openapi_path(spec.path)
        paths.setdefault(full, {})[spec.method.lower()] = operation
    paths.update(extra_paths or {})
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "LabShare API",
            "version": "1",
            "description": (
                "Book the labs and instruments that metrology institutes share with SMEs. "
                "Times are ISO 8601 with a UTC offset; responses give times in the "
                "resource's time zone. Errors are "
                '{"error": {"code", "message", "field"?, "rule"?}}.'
            ),
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(components.items())),
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "POST /api/v1/auth/token, or a personal token from the web UI",
                }
            },
        },
    }
