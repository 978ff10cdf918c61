"""The calendar fast path (labshare/fastpath.py): what it answers, it answers exactly
as Flask would; everything else reaches Flask unchanged.

Each case sends the same request twice through the test client (which calls the
app's WSGI stack, fast path included): once with the fast path on, once with it
off, and compares status, body and every header. ``answered`` counts the fast
path's own answers, so each case also shows which path answered it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.exc import OperationalError

from config import TestingConfig
from labshare import create_app
from labshare.booking import calendar_cache
from labshare.extensions import db as _db
from labshare.fastpath import EXTENSION, CalendarFastPath
from labshare.models import BookingStatus, ResourceStatus, Role
from labshare.timeutil import set_clock
from tests.factories import weekday_hours

SH = ZoneInfo("Asia/Shanghai")
NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
MONDAY = dt.datetime(2030, 1, 7, tzinfo=SH)
FROM = MONDAY.isoformat()
TO = (MONDAY + dt.timedelta(days=7)).isoformat()
WEEK = {"from": FROM, "to": TO}
GENERATED_ID = re.compile(r"[0-9a-f]{12}")


@pytest.fixture
def fast(app: Flask) -> Iterator[CalendarFastPath]:
    found = app.extensions[EXTENSION]
    assert isinstance(found, CalendarFastPath)
    assert found.enabled, "the testing configuration runs with the fast path"
    yield found
    found.enabled = True


@pytest.fixture
def env(db: Any, make_lab: Any, make_instrument: Any, make_institute: Any) -> SimpleNamespace:
    set_clock(lambda: NOW)
    lab = make_lab(hours=weekday_hours("08:00", "18:00", range(5)), capacity=2)
    inst = make_instrument(lab=lab)
    maintenance = make_instrument(lab=lab, status=ResourceStatus.MAINTENANCE)
    expiring = make_instrument(lab=lab, calibration_valid_until=dt.date(2030, 1, 9))
    berlin = make_instrument(institute=make_institute(timezone="Europe/Berlin"))
    db.session.commit()
    return SimpleNamespace(
        lab=lab.id,
        inst=inst.id,
        maintenance=maintenance.id,
        expiring=expiring.id,
        berlin=berlin.id,
    )


def url(rid: int | str) -> str:
    return f"/api/v1/resources/{rid}/availability"


def send(client: FlaskClient, method: str, path: str, **kw: Any) -> Any:
    response = client.open(path, method=method, **kw)
    _db.session.rollback()  # as a server ends each request's session
    return response


def both(
    client: FlaskClient, fast: CalendarFastPath, path: str, method: str = "GET", **kw: Any
) -> tuple[Any, Any, int]:
    """(response with the fast path, response through Flask alone, fast answers)."""
    before = fast.answered
    with_fast = send(client, method, path, **kw)
    answered = fast.answered - before
    fast.enabled = False
    try:
        through_flask = send(client, method, path, **kw)
    finally:
        fast.enabled = True
    return with_fast, through_flask, answered


def headers(response: Any) -> list[tuple[str, str]]:
    return sorted((k.lower(), v) for k, v in response.headers if k.lower() != "x-request-id")


def assert_same(a: Any, b: Any, request_id: str | None = None) -> None:
    assert a.status_code == b.status_code
    assert a.get_data() == b.get_data()
    assert headers(a) == headers(b)
    for response in (a, b):
        if request_id is None:
            assert GENERATED_ID.fullmatch(response.headers["X-Request-Id"])
        else:
            assert response.headers["X-Request-Id"] == request_id


# -- answered by the fast path, exactly as Flask answers -------------------------------


@pytest.mark.parametrize("which", ["inst", "lab", "maintenance", "expiring", "berlin"])
def test_a_plain_request_is_answered_as_flask_answers_it(
    client: FlaskClient, fast: CalendarFastPath, env: SimpleNamespace, which: str
) -> None:
    rid = getattr(env, which)
    miss, flask_hit, answered = both(client, fast, url(rid), query_string=WEEK)
    assert answered == 1  # the first request rendered the document in the fast path
    assert miss.status_code == 200
    assert_same(miss, flask_hit)
    hit, _flask, answered = both(client, fast, url(rid), query_string=WEEK)
    assert answered == 1
    assert_same(hit, miss)
    assert hit.get_json()["resource_id"] == rid
    assert hit.headers["Cache-Control"] == "no-cache"
    assert hit.headers["Content-Security-Policy"].startswith("default-src 'self'")


def test_the_body_is_what_the_engine_computes(
    client: FlaskClient, fast: CalendarFastPath, env: SimpleNamespace, make_booking: Any, db: Any
) -> None:
    from labshare.models import Instrument

    inst = db.session.get(Instrument, env.inst)
    start = (MONDAY + dt.timedelta(hours=9)).astimezone(dt.UTC)
    make_booking(
        resource=inst, start=start, end=start + dt.timedelta(hours=2), status=BookingStatus.APPROVED
    )
    db.session.commit()
    response, flask_response, answered = both(client, fast, url(env.inst), query_string=WEEK)
    assert answered == 1
    assert_same(response, flask_response)
    booked = [
        (b["start"], b["end"]) for b in response.get_json()["busy"] if b["reason"] == "booked"
    ]
    assert booked == [("2030-01-07T09:00:00+08:00", "2030-01-07T11:00:00+08:00")]
    # the expiring instrument is busy from the day after its calibration ends
    body = send(client, "GET", url(env.expiring), query_string=WEEK).get_json()
    assert ("2030-01-10T00:00:00+08:00", "2030-01-14T00:00:00+08:00") in [
        (b["start"], b["end"]) for b in body["busy"] if b["reason"] == "calibration_expired"
    ]


@pytest.mark.parametrize(
    "if_none_match, status",
    [
        ("{etag}", 304),
        ('"stale", {etag}', 304),
        ("*", 304),
        ("W/{etag}", 200),  # a weak tag does not match (as in Flask: a strong comparison)
        ('"stale"', 200),
    ],
)
def test_if_none_match_as_in_flask(
    client: FlaskClient,
    fast: CalendarFastPath,
    env: SimpleNamespace,
    if_none_match: str,
    status: int,
) -> None:
    etag = send(client, "GET", url(env.inst), query_string=WEEK).headers["ETag"]
    header = {"If-None-Match": if_none_match.format(etag=etag)}
    response, flask_response, answered = both(
        client, fast, url(env.inst), query_string=WEEK, headers=header
    )
    assert answered == 1
    assert response.status_code == status
    assert_same(response, flask_response)
    if status == 304:
        assert response.get_data() == b""
        assert response.headers["ETag"] == etag


@pytest.mark.parametrize(
    "sent, echoed",
    [("abc-123", "abc-123"), ("r" * 100, "r" * 64)],
)
def test_the_request_id_is_echoed_as_in_flask(
    client: FlaskClient, fast: CalendarFastPath, env: SimpleNamespace, sent: str, echoed: str
) -> None:
    response, flask_response, answered = both(
        client, fast, url(env.inst), query_string=WEEK, headers={"X-Request-Id": sent}
    )
    assert answered == 1
    assert_same(response, flask_response, request_id=echoed)


@pytest.mark.parametrize(
    "query, request_headers",
    [
        (f"to={TO}&from={FROM}", {}),  # either order
        ("from=2030-01-07T00:00:00Z&to=2030-01-08T00:00:00Z", {}),
        (WEEK, {"Accept-Language": "zh-CN"}),  # the document has no words in it
        (WEEK, {"Authorization": "Bearer not-a-token"}),  # a public endpoint: ignored
        ({"from": f" {FROM}", "to": f"{TO} "}, {}),  # blanks around a value: stripped
    ],
)
def test_other_plain_forms(
    client: FlaskClient,
    fast: CalendarFastPath,
    env: SimpleNamespace,
    query: Any,
    request_headers: dict[str, str],
) -> None:
    if isinstance(query, str):
        query = query.replace("+", "%2B")
    response, flask_response, answered = both(
        client, fast, url(env.inst), query_string=query, headers=request_headers
    )
    assert answered == 1
    assert response.status_code == 200
    assert_same(response, flask_response)


# -- passed on to Flask, unchanged ----------------------------------------------------


def _cases(env: SimpleNamespace) -> list[tuple[str, str, Any, dict[str, str], int]]:
    """(method, path, query, headers, the status Flask gives)."""
    plain = url(env.inst)
    return [
        ("GET", url(999_999), WEEK, {}, 404),
        ("GET", url(999_999), WEEK, {"Accept-Language": "zh-CN"}, 404),
        ("GET", plain, {"from": "2030-01-07T00:00:00", "to": TO}, {}, 422),
        ("GET", plain, {"from": FROM, "to": (MONDAY + dt.timedelta(days=40)).isoformat()}, {}, 422),
        ("GET", plain, {"from": TO, "to": FROM}, {"Accept-Language": "zh-CN"}, 422),
        ("GET", plain, {"from": FROM}, {}, 422),
        ("GET", plain, {"from": FROM, "to": ""}, {}, 422),
        ("GET", plain, {"from": "yesterday", "to": TO}, {}, 422),
        ("GET", plain, {**WEEK, "page": "2"}, {}, 200),  # another parameter
        ("GET", plain, [("from", FROM), ("from", FROM), ("to", TO)], {}, 200),  # twice
        ("GET", plain, "from=2030-01-07T00:00:00%E2%80%8B&to=x", {}, 422),  # not ASCII
        ("GET", plain, "from=2030-01-07T00:00:00＋08:00&to=x", {}, 422),
        ("HEAD", plain, WEEK, {}, 200),
        ("POST", plain, WEEK, {}, 405),
        ("GET", url(0), WEEK, {}, 404),
        ("GET", url(2**31), WEEK, {}, 404),  # beyond the id columns: no route
        ("GET", url(f"0{env.inst}"), WEEK, {}, 200),  # Flask reads 0042 as 42
        ("GET", plain + "/", WEEK, {}, 404),
        ("GET", f"/api/v1/resources/{env.inst}", WEEK, {}, 200),
    ]


def test_everything_else_reaches_flask(
    client: FlaskClient, fast: CalendarFastPath, env: SimpleNamespace
) -> None:
    for method, path, query, request_headers, status in _cases(env):
        response, flask_response, answered = both(
            client, fast, path, method, query_string=query, headers=request_headers
        )
        case = (method, path, query, request_headers)
        assert answered == 0, case
        assert response.status_code == status, (case, response.get_data(as_text=True))
        assert response.status_code == flask_response.status_code, case
        if status >= 400:
            assert response.get_data() == flask_response.get_data(), case


def test_a_request_with_a_cookie_reaches_flask(
    client: FlaskClient, fast: CalendarFastPath, env: SimpleNamespace
) -> None:
    client.set_cookie("unrelated", "1")
    response, flask_response, answered = both(client, fast, url(env.inst), query_string=WEEK)
    assert answered == 0
    assert response.status_code == 200
    assert_same(response, flask_response)


def test_errors_stay_translated(
    client: FlaskClient, fast: CalendarFastPath, env: SimpleNamespace
) -> None:
    naive = {"from": "2030-01-07T00:00:00", "to": TO}
    zh = send(client, "GET", url(env.inst), query_string=naive, headers={"Accept-Language": "zh"})
    en = send(client, "GET", url(env.inst), query_string=naive, headers={"Accept-Language": "en"})
    assert zh.get_json()["error"]["field"] == en.get_json()["error"]["field"] == "from"
    assert zh.get_json()["error"]["message"] != en.get_json()["error"]["message"]
    assert re.search(r"[\u4e00-\u9fff]", zh.get_json()["error"]["message"])


def test_a_database_error_is_left_to_flask(
    client: FlaskClient,
    fast: CalendarFastPath,
    env: SimpleNamespace,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise OperationalError("SELECT 1", {}, Exception("server closed the connection"))

    monkeypatch.setattr(calendar_cache, "plain_reader", broken)
    before = fast.answered
    response = send(client, "GET", url(env.inst), query_string=WEEK)
    assert fast.answered == before
    assert response.status_code == 200  # Flask's own path still works
    assert response.get_json()["resource_id"] == env.inst


def test_a_change_is_seen_at_once(
    client: FlaskClient, fast: CalendarFastPath, env: SimpleNamespace, make_booking: Any, db: Any
) -> None:
    from labshare.models import Instrument

    first = send(client, "GET", url(env.inst), query_string=WEEK)
    inst = db.session.get(Instrument, env.inst)
    start = (MONDAY + dt.timedelta(hours=13)).astimezone(dt.UTC)
    make_booking(
        resource=inst, start=start, end=start + dt.timedelta(hours=1), status=BookingStatus.PENDING
    )
    db.session.commit()
    before = fast.answered
    second = send(client, "GET", url(env.inst), query_string=WEEK)
    assert fast.answered == before + 1
    assert second.headers["ETag"] != first.headers["ETag"]
    assert "booked" in {b["reason"] for b in second.get_json()["busy"]}
    stale = send(
        client,
        "GET",
        url(env.inst),
        query_string=WEEK,
        headers={"If-None-Match": first.headers["ETag"]},
    )
    assert stale.status_code == 200


# -- when the configuration turns it off ----------------------------------------------


@pytest.mark.parametrize(
    "setting",
    [
        {"CALENDAR_FAST_PATH": False},
        {"SERVER_NAME": "labshare.example.org"},
        {"TRUSTED_HOSTS": ["labshare.example.org"]},
        {"RATELIMIT_DEFAULT": "100/minute"},
        {"RATELIMIT_APPLICATION": "1000/minute"},
    ],
)
def test_settings_that_change_what_flask_does_turn_it_off(
    setting: dict[str, Any], tmp_path: Any
) -> None:
    app = create_app(TestingConfig, INSTANCE_DIR=str(tmp_path), **setting)
    assert app.extensions[EXTENSION].enabled is False
    if "CALENDAR_FAST_PATH" not in setting:  # the search's fast path too
        assert app.extensions[EXTENSION].search_enabled is False
    plain = create_app(TestingConfig, INSTANCE_DIR=str(tmp_path))
    assert plain.extensions[EXTENSION].enabled is True
    assert plain.extensions[EXTENSION].search_enabled is True


def test_a_meta_rate_limit_turns_it_off() -> None:
    # Flask applies a meta limit (429 on every route for a client that broke another
    # limit). Not through create_app: the limiter is process-wide and would keep the
    # meta limit for every later test.
    app = Flask(__name__)
    app.config["RATELIMIT_META"] = "10/hour"
    fast = CalendarFastPath(app, app.wsgi_app)
    assert fast.enabled is False and fast.search_enabled is False
    app.config["RATELIMIT_META"] = None
    fast = CalendarFastPath(app, app.wsgi_app)
    assert fast.enabled is True and fast.search_enabled is True


def test_a_signed_in_browser_gets_the_same_document(
    client: FlaskClient,
    fast: CalendarFastPath,
    env: SimpleNamespace,
    make_user: Any,
    login: Any,
    db: Any,
) -> None:
    """A signed-in browser sends a cookie, so Flask answers it; the body is the same."""
    user = make_user(Role.SME)
    db.session.commit()
    anonymous = send(client, "GET", url(env.inst), query_string=WEEK)
    login(user)
    before = fast.answered
    signed_in = send(client, "GET", url(env.inst), query_string=WEEK)
    assert fast.answered == before
    assert signed_in.get_data() == anonymous.get_data()
