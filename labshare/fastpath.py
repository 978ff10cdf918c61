"""The calendar fast path: ``GET /api/v1/resources/<id>/availability`` answered
before Flask.

A calendar is rendered once per process and version (booking/calendar_cache.py),
after which serving it costs one indexed query. Serving it through Flask costs
far more than that: the request and app contexts, routing, the session, the
locale and login machinery, the query model and the response object, about 1,100
Python calls. This WSGI middleware recognises the plain form of the request and
answers it with the same ``document_of`` call that Flask's handler makes (a cache
hit, or a miss rendered and stored), and with the same status, body and headers
as Flask would give: ``tests/perf/test_fastpath.py`` compares the two, response by
response.

The same middleware answers ``GET /api/v1/resources`` (the search) without a
cookie. A query string it or Flask has answered and cached in this process
(labshare/catalogue/search_cache.py) whose answer is still current is sent from
the cache after one read: the catalogue's version (a primary-key read) and, for a
window search, the versions of the calendars it examined (window_cache.py). Any
other search is computed by ``search_answer.answer``, the function Flask's handler
calls, in an application context but without a request's: its query read by the
same model from werkzeug's parse of the query string. Flask's request machinery
(the session, login, locale, the routing and the hooks) was half of an uncached
search's CPU. Flask answers a search whose query it would refuse (its message is
in the user's language), one with facets (the free-this-week label is), and one
that fails on the database. ``SEARCH_FAST_PATH`` off sends every search to Flask.

Everything else goes to Flask unchanged, to be answered, refused or translated
there as before:
- any method but GET, another path, an id out of the id columns' range;
- a request carrying a cookie (a browser session: Flask would open it and might
  refresh it), or a query that is not exactly one ``from`` and one ``to``;
- a bad or naive time, a window Flask would refuse (those answers are
  translated error documents), an unknown resource, a database error;
- every request, when the configuration changes what Flask would do with it: a
  host restriction (``SERVER_NAME``, ``TRUSTED_HOSTS``) or a default,
  application-wide or meta rate limit (neither endpoint has one of its own),
  or ``CALENDAR_FAST_PATH`` off.
"""

from __future__ import annotations

import functools
import logging
import re
import uuid
from collections.abc import Hashable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from flask import Flask, current_app, has_app_context
from werkzeug.http import parse_etags, quote_etag
from werkzeug.wrappers import Request

from labshare.api import search_answer
from labshare.api.registry import parse_query
from labshare.api.schemas import ResourceQuery
from labshare.booking import calendar_cache
from labshare.booking.availability import _check_window
from labshare.catalogue import search_cache, window_cache
from labshare.catalogue.search_reads import kept_session
from labshare.errors import ValidationFailed
from labshare.timeutil import parse_aware
from labshare.web import ID_MAX, SECURITY_HEADERS

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment
    from sqlalchemy import Engine

log = logging.getLogger(__name__)

EXTENSION = "labshare_fastpath"
_PATH = re.compile(r"/api/v1/resources/([1-9][0-9]{0,9})/availability")
_SEARCH = "/api/v1/resources"


@functools.lru_cache(maxsize=4096)
def _window(query: str) -> tuple[Any, Any] | None:
    """The checked window of a query that is exactly ``from=...&to=...`` (in either
    order), or None when Flask should look at the query. Kept per query string: it
    depends on nothing else, and a popular calendar's query recurs."""
    if not query.isascii():
        return None
    pairs = parse_qsl(query, keep_blank_values=True)
    if len(pairs) != 2:
        return None
    values = dict(pairs)
    if values.keys() != {"from", "to"}:
        return None
    try:  # parse_aware strips blanks, as the query model does
        return _check_window(parse_aware(values["from"]), parse_aware(values["to"]))
    except (ValueError, ValidationFailed):
        return None


#: The longest search query string whose model is kept (a longer one is read each time).
_KEPT_QUERY = 1024


def _read_query(query_string: str) -> ResourceQuery | None:
    query = parse_query(ResourceQuery, Request({"QUERY_STRING": query_string}).args)
    return None if query.facets else query


#: The search's model per query string: it depends on nothing else (a refusal is
#: raised, never kept), and a popular search recurs. The model is frozen: shared.
_kept_query = functools.lru_cache(maxsize=4096)(_read_query)


class CalendarFastPath:
    """WSGI middleware in front of ``app.wsgi_app`` (see the module docstring)."""

    def __init__(self, app: Flask, wsgi_app: WSGIApplication) -> None:
        self.app = app
        self.wsgi_app = wsgi_app
        config = app.config
        plain = bool(
            not config.get("SERVER_NAME")
            and not config.get("TRUSTED_HOSTS")
            and not config.get("RATELIMIT_DEFAULT")
            and not config.get("RATELIMIT_APPLICATION")
            and not config.get("RATELIMIT_META")
        )
        self.enabled = plain and bool(config.get("CALENDAR_FAST_PATH", True))
        self.search_enabled = plain and bool(config.get("SEARCH_FAST_PATH", True))
        self.answered = 0  # fast answers (tests read it)
        self.searches = 0  # fast search answers (tests read it)
        self._engine: Engine | None = None

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") == "GET" and "HTTP_COOKIE" not in environ:
            path = environ.get("PATH_INFO", "")
            if path == _SEARCH:
                if self.search_enabled:
                    found = self._search(environ)
                    if found is not None:
                        start_response("200 OK", self._headers(environ, found))
                        self.searches += 1
                        return [found.body]
            elif self.enabled:
                match = _PATH.fullmatch(path)
                if match is not None:
                    answer = self._answer(environ, int(match.group(1)))
                    if answer is not None:
                        status, headers, body = answer
                        start_response(status, headers)
                        self.answered += 1
                        return [body]
        return self.wsgi_app(environ, start_response)

    def _search(self, environ: WSGIEnvironment) -> search_answer.Answer | None:
        """The answer to this search, as Flask's handler gives it; None when Flask
        should answer: a query string Flask would refuse or would answer in the
        user's language (facets), or any other error (logged as a warning; Flask
        runs the search again)."""
        query_string = environ.get("QUERY_STRING", "")
        store = search_cache.cache_of(self.app)
        key = store.key_of(query_string) if store.budget > 0 else None
        try:
            if key is not None:
                kept = self._kept(store, key)
                if kept is not None:
                    return kept
            query = self._query(environ)
            if query is None:
                return None
            if has_app_context() and current_app._get_current_object() is self.app:  # type: ignore[attr-defined]
                # Flask's request would run in this context too (a test's, the warm-up's)
                return search_answer.answer(query, query_string)
            with self.app.app_context(), kept_session():
                return search_answer.answer(query, query_string)
        except ValidationFailed:  # Flask refuses it, in the user's language
            return None
        except Exception:  # the database, or a fault of this path: Flask tries it again
            log.warning("search fast path failed; Flask answers", exc_info=True)
            return None

    def _kept(self, store: search_cache.SearchCache, key: Hashable) -> search_answer.Answer | None:
        """The kept answer of a query string Flask or this path has answered, if the
        catalogue (and a window search's calendars) are as they were: one read."""
        engine = self._engine_of_app()
        with calendar_cache.plain_reader(calendar_cache.cache_of(self.app), engine) as conn:
            version = search_cache.version_on(conn)
            if version is None:
                return None
            entry = store.get(key, version, lambda guard: window_cache.holds(guard, conn))
        return None if entry is None else search_answer.Answer(entry.body, entry.truncated)

    @staticmethod
    def _query(environ: WSGIEnvironment) -> ResourceQuery | None:
        """The search's query as Flask's handler reads it (werkzeug's parse of the
        query string, then the same model), or None for Flask to answer: facets
        carry a label in the user's language, which Flask's locale selection picks."""
        query_string = environ.get("QUERY_STRING", "")
        if len(query_string) > _KEPT_QUERY:
            return _read_query(query_string)
        return _kept_query(query_string)

    @staticmethod
    def _headers(environ: WSGIEnvironment, found: search_answer.Answer) -> list[tuple[str, str]]:
        request_id = environ.get("HTTP_X_REQUEST_ID", "")[:64] or uuid.uuid4().hex[:12]
        return [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(found.body))),
            *([("X-Availability-Truncated", "true")] if found.truncated else []),
            *SECURITY_HEADERS,
            ("X-Request-Id", request_id),
            ("Vary", "Cookie"),
        ]

    def _engine_of_app(self) -> Engine:
        if self._engine is None:
            from labshare.extensions import db

            with self.app.app_context():
                self._engine = db.engine
        return self._engine

    def _answer(
        self, environ: WSGIEnvironment, resource_id: int
    ) -> tuple[str, list[tuple[str, str]], bytes] | None:
        if resource_id > ID_MAX:  # no route in Flask (Int32Converter)
            return None
        window = _window(environ.get("QUERY_STRING", ""))
        if window is None:
            return None
        store = calendar_cache.cache_of(self.app)
        try:
            engine = self._engine_of_app()
            with calendar_cache.plain_reader(store, engine) as reader:
                doc = calendar_cache.document_of(
                    store, reader, resource_id, *window, self.app.json.dumps
                )
        except Exception:  # the database: Flask answers (and reports) it
            log.debug("calendar fast path: passing on to Flask", exc_info=True)
            return None
        if doc is None:
            return None
        request_id = environ.get("HTTP_X_REQUEST_ID", "")[:64] or uuid.uuid4().hex[:12]
        etag = quote_etag(doc.etag)
        if parse_etags(environ.get("HTTP_IF_NONE_MATCH")).contains(doc.etag):
            status, body = "304 NOT MODIFIED", b""
            head = [("ETag", etag), ("Cache-Control", "no-cache")]
        else:
            status, body = "200 OK", doc.body
            head = [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
                ("ETag", etag),
                ("Cache-Control", "no-cache"),
            ]
        # Flask's order; Vary: Flask-Login's after-request hook looks into the session
        tail = [*SECURITY_HEADERS, ("X-Request-Id", request_id), ("Vary", "Cookie")]
        return status, [*head, *tail], body


def install(app: Flask) -> None:
    """Put the fast path in front of the app (``create_app`` calls it)."""
    fast = CalendarFastPath(app, app.wsgi_app)
    app.extensions[EXTENSION] = fast
    app.wsgi_app = fast  # type: ignore[method-assign]
