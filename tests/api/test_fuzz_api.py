"""Fuzzing: schemathesis drives every operation of /api/v1/openapi.json in-process
(WSGI, no server) with an SME's bearer token and a bounded number of examples per
operation; no answer may be a 5xx and every answer must match the document.
Hypothesis checks the web form parsers."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import checks

from labshare.models import Role, User
from labshare.timeutil import set_clock
from tests.helpers import NOW, bearer


@pytest.fixture
def api_schema(app: Flask, db: Any, make_instrument: Any, make_user: Any, monkeypatch: Any) -> Any:
    set_clock(lambda: NOW)
    make_instrument()
    monkeypatch.setattr(User, "set_password", lambda self, _p: setattr(self, "password_hash", "!"))
    sme = make_user(Role.SME)
    headers = bearer(sme)
    db.session.commit()
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    schema.config.headers = headers  # type: ignore[attr-defined]
    return schema


CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]

schema = schemathesis.pytest.from_fixture("api_schema")


FUZZ = settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))


def _conforms(case: Any) -> None:
    # No 5xx, and every status, content type, header and body as documented. Not
    # checked: schemathesis' guesses of which inputs must be refused (an empty query
    # parameter counts as absent, unknown members are ignored: API.md says so).
    case.call_and_validate(checks=CHECKS)


# Two classes, so that pytest-xdist's --dist loadscope (a scope per class) gives each
# half to a worker of its own: on one worker the whole fuzz was the suite's long pole.
@pytest.mark.slow  # a minute on two databases: make test runs it, make test-fast does not
class TestCreations:
    @schema.include(method="POST").parametrize()
    @FUZZ
    def test_api_conforms_and_never_fails(self, case: Any) -> None:
        _conforms(case)


@pytest.mark.slow
class TestReadsChangesAndRemovals:
    @schema.exclude(method="POST").parametrize()
    @FUZZ
    def test_api_conforms_and_never_fails(self, case: Any) -> None:
        _conforms(case)


# -- the web form parsers ----------------------------------------------------------------

ZONES = st.sampled_from(["Asia/Shanghai", "Europe/Berlin", "America/New_York", "UTC"])


@given(st.text(max_size=40))
def test_parse_week_never_raises_and_returns_a_monday(text: str) -> None:
    from labshare.web.bookings.calendar import parse_week

    monday = parse_week(text)
    assert monday is None or (monday.isoweekday() == 1 and 2000 <= monday.year <= 2101)


@given(st.integers(2000, 2100), st.integers(1, 53))
def test_parse_week_round_trips(year: int, week: int) -> None:

    from labshare.web.bookings.calendar import parse_week

    monday = parse_week(f"{year}-W{week:02d}")
    if monday is not None:
        assert monday.isocalendar()[:2] == (year, week)
    else:
        with pytest.raises(ValueError):
            dt.date.fromisocalendar(year, week, 1)


@given(st.text(max_size=40))
def test_parse_local_arg_never_raises(text: str) -> None:
    from labshare.web.bookings.helpers import parse_local_arg

    value = parse_local_arg(text)
    assert value is None or value.tzinfo is None


@given(st.datetimes(min_value=dt.datetime(2001, 1, 1), max_value=dt.datetime(2099, 12, 31)), ZONES)
def test_parse_local_arg_round_trips_and_aware_is_utc(value: Any, tz: str) -> None:

    from labshare.errors import ValidationFailed
    from labshare.web.bookings.helpers import aware, local_input, parse_local_arg

    value = value.replace(second=0, microsecond=0)
    parsed = parse_local_arg(value.strftime("%Y-%m-%dT%H:%M"))
    assert parsed == value
    try:
        instant = aware(parsed, tz, "start")
    except ValidationFailed as exc:  # the spring-forward gap, refused by name
        assert exc.field == "start"
        return
    assert instant.tzinfo is dt.UTC
    # Back to the wall clock: the same time (an ambiguous autumn hour picks one).
    assert local_input(instant, tz) in (parsed, parsed - dt.timedelta(hours=1))
