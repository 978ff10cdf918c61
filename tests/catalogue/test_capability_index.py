"""Capability matches ranked in memory (labshare/catalogue/capability_index.py): the
same answers as the SQL ranking, page, totals, rules, free window and facets
included, over random catalogues; a list is read once per measurand and catalogue
version, and any catalogue change (by the ORM, by SQL from another connection) is
seen by the next search. On SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from typing import Any

import pytest
from sqlalchemy import text

from labshare.catalogue import capability_index, search_cache
from labshare.catalogue.search import ResourceFilters, search_resources
from labshare.extensions import db as _db
from labshare.models import (
    BookingStatus,
    Field,
    Instrument,
    ResourceKind,
    ResourceStatus,
)
from labshare.timeutil import set_clock
from tests import factories

#: Tuesday 1 January 2030, 08:00 in Shanghai.
NOW = dt.datetime(2030, 1, 1, 0, 0, tzinfo=dt.UTC)
PROVINCES = [("320000", "江苏省"), ("440000", "广东省"), ("110000", "北京市")]


@pytest.fixture
def clock(app: Any) -> Any:
    set_clock(lambda: NOW)
    yield
    set_clock(None)


def _catalogue(rnd: random.Random) -> list[Instrument]:
    institutes = [
        factories.make_institute(province_code=code, province=name) for code, name in PROVINCES
    ]
    institutes.append(factories.make_institute(active=False))
    labs = [
        factories.make_lab(
            institute=institutes[n % len(institutes)],
            hours=factories.weekday_hours("08:00", "18:00", range(5)),
            rules={**factories.OPEN_RULES, "min_minutes": 60} if n == 1 else None,
        )
        for n in range(6)
    ]
    made = []
    for n in range(60):
        # few distinct ranges, so that widths tie and the later keys decide
        low = rnd.choice((-0.1, 0.0, 1.0))
        high = rnd.choice((2.0, 10.0, 60.0))
        unit = rnd.choice(("MPa", "kPa"))
        scale = 1e6 if unit == "MPa" else 1e3
        made.append(
            factories.make_instrument(
                lab=labs[n % len(labs)],
                unit=unit,
                range_min=low,
                range_max=high,
                range_min_base=None if n == 7 else low * scale,
                range_max_base=high * scale,
                field=rnd.choice((Field.MECHANICAL, Field.THERMAL)),
                status=rnd.choice(
                    (ResourceStatus.AVAILABLE,) * 4
                    + (ResourceStatus.MAINTENANCE, ResourceStatus.RETIRED)
                ),
                rules={**factories.OPEN_RULES, "slot_minutes": 60} if n % 9 == 4 else None,
            )
        )
    made.append(
        factories.make_instrument(
            lab=labs[0],
            measurand="temperature",
            unit="°C",
            range_min=-40,
            range_max=200,
            range_min_base=233.15,
            range_max_base=473.15,
        )
    )
    for instrument in made[::3]:
        start = dt.datetime(2030, 1, 8, rnd.randrange(0, 6), tzinfo=dt.UTC)
        factories.make_booking(
            resource=instrument,
            start=start,
            end=start + dt.timedelta(hours=rnd.choice((1, 3))),
            status=BookingStatus.APPROVED,
        )
    _db.session.commit()
    return made


def _answer(app: Any, on: bool, f: ResourceFilters, **kw: Any) -> Any:
    app.config["CAPABILITY_INDEX"] = on
    _db.session.remove()
    result = search_resources(f, **kw)
    return (
        [r.id for r in result.items],
        result.total,
        result.total_exact,
        result.truncated,
        result.rules,
        result.facets,
    )


def test_the_index_answers_as_the_sql_ranking(app: Any, db: Any, clock: Any) -> None:
    rnd = random.Random(7)
    _catalogue(rnd)
    store = capability_index.index_of(app)
    window = {
        "available_from": dt.datetime(2030, 1, 8, 9, tzinfo=dt.timezone(dt.timedelta(hours=8))),
        "available_to": dt.datetime(2030, 1, 8, 12, tzinfo=dt.timezone(dt.timedelta(hours=8))),
    }
    seen_totals = set()
    for n in range(40):
        base = ResourceFilters(
            measurand="pressure",
            value=rnd.choice((0.5, 1.5, 5.0, 2000.0, -50.0, 100.0)),
            unit=rnd.choice(("MPa", "kPa")),
        )
        extra: dict[str, Any] = rnd.choice(
            (
                {},
                {"near_province": rnd.choice(("江苏省", "440000", "上海市"))},
                {"field": rnd.choice((Field.MECHANICAL, Field.THERMAL))},
                {"kind": rnd.choice((ResourceKind.INSTRUMENT, ResourceKind.LAB))},
                {"institute": "nonesuch"},
                window,
                {**window, "duration": 120, "near_province": "广东省"},
            )
        )
        f = dataclasses.replace(base, **extra)
        kw = {
            "page": rnd.choice((1, 1, 2, 9)),
            "per_page": rnd.choice((3, 20)),
            "facets": n % 4 == 0,
        }
        expected = _answer(app, False, f, **kw)
        assert _answer(app, True, f, **kw) == expected, (f, kw)
        seen_totals.add(expected[1])
    assert len(seen_totals) > 4  # the values tell the instruments apart
    assert store.reads == 1  # one measurand, one version: read once


def test_an_institute_filter_and_the_other_measurands(app: Any, db: Any, clock: Any) -> None:
    made = _catalogue(random.Random(3))
    code = made[0].institute.code
    for f in (
        ResourceFilters(measurand="pressure", value=1.5, unit="MPa", institute=code),
        ResourceFilters(measurand="temperature", value=150, unit="°C"),
        ResourceFilters(measurand="temperature", value=150, unit="MPa"),  # 422 both ways
    ):
        answers = []
        for on in (False, True):
            try:
                answers.append(_answer(app, on, f, page=1, per_page=20))
            except Exception as exc:  # the same refusal
                answers.append((type(exc).__name__, getattr(exc, "field", None)))
        assert answers[0] == answers[1], f


def _ids(client: Any, **params: Any) -> list[int]:
    _db.session.remove()  # each request has a session of its own
    response = client.get(
        "/api/v1/resources", query_string={"measurand": "pressure", "value": "5", **params}
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    return [item["id"] for item in response.get_json()["items"]]


@pytest.mark.parametrize(
    "change",
    [
        "UPDATE instrument SET range_max_base = 1000 WHERE id = :id",
        "UPDATE resource SET status = 'retired' WHERE id = :id",
        "UPDATE institute SET active = false WHERE id = :institute",
        "UPDATE instrument SET range_min_base = 0, range_max_base = 6e6 WHERE id = :other",
    ],
)
def test_a_change_by_another_connection_is_seen_at_once(
    app: Any, client: Any, db: Any, no_answer_cache: Any, change: str
) -> None:
    lab = factories.make_lab()
    first = factories.make_instrument(lab=lab)
    other = factories.make_instrument(
        lab=factories.make_lab(), range_min_base=-200000.0, range_max_base=20000000.0
    )
    _db.session.commit()
    ids = {"id": first.id, "other": other.id, "institute": lab.institute_id}
    store = capability_index.index_of(app)
    assert _ids(client, unit="MPa") == [first.id, other.id]
    assert _ids(client, unit="MPa") == [first.id, other.id]
    assert store.reads == 1
    with _db.engine.begin() as conn:
        conn.execute(text(change), {k: v for k, v in ids.items() if f":{k}" in change})
    app.config["CAPABILITY_INDEX"] = False
    expected = _ids(client, unit="MPa")
    app.config["CAPABILITY_INDEX"] = True
    assert _ids(client, unit="MPa") == expected
    assert expected != [first.id, other.id]
    assert store.reads == 2


def test_a_booking_keeps_the_list(app: Any, client: Any, db: Any, no_answer_cache: Any) -> None:
    iid = factories.make_instrument().id
    _db.session.commit()
    store = capability_index.index_of(app)
    assert _ids(client, unit="MPa") == [iid]
    factories.make_booking(
        resource=_db.session.get(Instrument, iid),
        start=dt.datetime(2030, 1, 8, 1, tzinfo=dt.UTC),
        end=dt.datetime(2030, 1, 8, 2, tzinfo=dt.UTC),
        status=BookingStatus.PENDING,
    )
    _db.session.commit()
    assert _ids(client, unit="MPa") == [iid]
    assert store.reads == 1


def test_without_the_version_row_nothing_is_kept(
    app: Any, client: Any, db: Any, no_answer_cache: Any
) -> None:
    instrument = factories.make_instrument()
    iid = instrument.id
    _db.session.commit()
    with _db.engine.begin() as conn:
        conn.execute(text("DELETE FROM catalogue_version"))
    store = capability_index.index_of(app)
    assert _ids(client, unit="MPa") == [iid]
    assert _ids(client, unit="MPa") == [iid]
    assert store.reads == 2 and not store.versions
    with _db.engine.begin() as conn:  # not seen by any trigger: only no caching saves it
        conn.execute(text("DELETE FROM catalogue_version"))
        conn.execute(text("UPDATE instrument SET range_max_base = 1 WHERE id = :id"), {"id": iid})
        conn.execute(text("DELETE FROM catalogue_version"))
    assert _ids(client, unit="MPa") == []


def test_an_older_request_does_not_replace_the_newer_lists(app: Any, db: Any) -> None:
    """Requests read the version at their start: one that began before an edit and
    reads after a newer one keeps its own list, and the newer lists stay. Versions
    are random: the newer may be the smaller number."""
    factories.make_instrument()
    db.session.commit()
    index = capability_index.index_of(app)
    index.clear()
    for newer_version, older_version in ((7, 6), (-5, 9)):
        with search_cache.known_version(newer_version):  # a request after the edit
            newer = index.entries("pressure")
        with search_cache.known_version(older_version):  # one that began before it
            older = index.entries("pressure")
        with search_cache.known_version(newer_version):
            assert index.entries("pressure") is newer
        with search_cache.known_version(older_version):
            assert index.entries("pressure") is older
    assert index.reads == 4
    assert list(index.versions) == [-5, 9]  # the last two read


def test_the_kept_list_is_of_the_version_read_last(app: Any, db: Any) -> None:
    """An older request that keeps its list after a newer one does not leave ``kept``
    on the older version: the next request that reads the newer one moves it back
    (else every search from the kept list would be refused until the next edit)."""
    factories.make_instrument()
    db.session.commit()
    index = capability_index.index_of(app)
    index.clear()
    with search_cache.known_version(2):  # a request after the edit
        newer = index.entries("pressure")
    with search_cache.known_version(1):  # one that began before it, reading later
        index.entries("pressure")
    assert index.kept("pressure") == (index.versions[1]["pressure"], 1)
    with search_cache.known_version(2):  # a hit at the newer version
        assert index.entries("pressure") is newer
    assert index.kept("pressure") == (newer, 2)


def test_an_uncached_api_search_is_one_statement_and_the_sql_rankings_page(
    app: Any, client: Any, db: Any, clock: Any, no_answer_cache: Any
) -> None:
    """Without the answer cache, the API's capability page is ranked from the list
    kept and read with the catalogue's version in one statement; the same page as
    the SQL ranking for random filters; a change seen at once."""
    from tests.helpers import sent_statements

    rnd = random.Random(11)
    made = _catalogue(rnd)
    store = capability_index.index_of(app)

    def get(on: bool, params: dict[str, Any]) -> tuple[list[int], int, list[str]]:
        app.config["CAPABILITY_INDEX"] = on
        _db.session.remove()
        with sent_statements() as sent:
            response = client.get("/api/v1/resources", query_string=params)
        assert response.status_code == 200, response.get_data(as_text=True)
        body = response.get_json()
        selects = [s for s in sent if s.startswith("SELECT")]
        return [item["id"] for item in body["items"]], body["total"], selects

    params = {"measurand": "pressure", "value": "1.5", "unit": "MPa"}
    get(True, params)  # the list is read
    assert store.reads == 1
    ids, _total, selects = get(True, params)
    assert ids and len(selects) == 1, selects
    for _ in range(30):
        params = {
            "measurand": rnd.choice(("pressure", "压强")),
            "value": str(rnd.choice((0.5, 1.5, 5.0, 2000.0, -50.0))),
            "unit": rnd.choice(("MPa", "kPa")),
            "page": str(rnd.choice((1, 2, 5))),
            "per_page": str(rnd.choice((2, 20))),
            **rnd.choice(({}, {"near": "440000"}, {"field": "thermal"}, {"kind": "lab"})),
        }
        assert get(True, params)[:2] == get(False, params)[:2], params
    assert store.reads == 1
    # changed: the first search after finds its rows at another version, and asks again
    with _db.engine.begin() as conn:
        conn.execute(text("UPDATE resource SET status = 'retired' WHERE id = :id"), {"id": ids[0]})
    params = {"measurand": "pressure", "value": "1.5", "unit": "MPa"}
    after, _total, selects = get(True, params)
    assert ids[0] not in after and after == get(False, params)[0]
    # the wasted one, then the version, the list, the rows
    assert store.reads == 2 and len(selects) == 4
    assert get(True, params)[0] == after
    assert len(get(True, params)[2]) == 1
    assert made
