"""The API's search answer, read as plain rows (search_resources(plain=True) and
resource_row_json), is byte for byte the answer built from ORM instances
(resource_json), for labs and instruments with and without own rules, lab rules,
calibration date, fee and waiver, in both locales, on every search path."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from flask import jsonify

from labshare.api.serialize import page_json, resource_json
from labshare.catalogue.search import ResourceFilters, search_resources
from labshare.extensions import db as _db
from labshare.models import Field, ResourceKind, ResourceStatus
from labshare.timeutil import set_clock
from tests.factories import weekday_hours
from tests.helpers import NOW

TZ = dt.timezone(dt.timedelta(hours=8))
WINDOW = {
    "available_from": dt.datetime(2030, 1, 8, 9, tzinfo=TZ),
    "available_to": dt.datetime(2030, 1, 8, 12, tzinfo=TZ),
}
RULES = {"slot_minutes": 15, "min_minutes": 60, "requires_approval": False}
LAB_RULES = {"max_minutes": 240, "no_show_approval_threshold": 2, "checkin_required": True}

#: (query string, the same search as filters, page, per_page, facets).
CASES: list[tuple[dict[str, Any], dict[str, Any], int, int, bool]] = [
    ({"q": "校准"}, {"q": "校准"}, 1, 20, False),  # the name tier fills the page
    ({"q": "校准", "per_page": 3}, {"q": "校准"}, 1, 3, False),
    ({"q": "校准", "page": 2, "per_page": 3}, {"q": "校准"}, 2, 3, False),
    ({"q": "pressure"}, {"q": "pressure"}, 1, 20, False),  # the later tiers
    (
        {"q": "校准", "kind": "lab", "per_page": 2},
        {"q": "校准", "kind": ResourceKind.LAB},
        1,
        2,
        False,
    ),
    ({"q": "校准", "facets": "true"}, {"q": "校准"}, 1, 20, True),
    (  # in memory
        {"measurand": "pressure", "value": 5, "unit": "MPa"},
        {"measurand": "pressure", "value": 5.0, "unit": "MPa"},
        1,
        20,
        False,
    ),
    ({"measurand": "pressure"}, {"measurand": "pressure"}, 1, 20, False),  # ranked in SQL
    (
        {"measurand": "pressure", "value": 5, "unit": "MPa", "facets": "true"},
        {"measurand": "pressure", "value": 5.0, "unit": "MPa"},
        1,
        20,
        True,
    ),
    (  # the free-time scan
        {"q": "校准", **{k: v.isoformat() for k, v in WINDOW.items()}},
        {"q": "校准", **WINDOW},
        1,
        20,
        False,
    ),
]


@pytest.fixture
def catalogue(make_institute: Any, make_lab: Any, make_instrument: Any) -> None:
    west = make_institute(timezone="Asia/Urumqi", province="新疆维吾尔自治区")
    plain_lab = make_lab(name="校准实验室甲", name_en=None, hours=weekday_hours())
    ruled_lab = make_lab(
        name="校准实验室乙",
        institute=west,
        rules=LAB_RULES,
        fee_per_hour=Decimal("12.50"),
        fee_waiver_percent=30,
        requires_qualification=True,
        hours=weekday_hours(),
    )
    make_lab(name="校准实验室丙", rules=RULES, status=ResourceStatus.MAINTENANCE)
    make_instrument(name="校准压力表一", lab=plain_lab)  # no rules at all
    make_instrument(name="校准压力表二", lab=ruled_lab)  # its lab's rules
    make_instrument(name="校准压力表三", lab=ruled_lab, rules=RULES)  # its own
    make_instrument(
        name="校准压力表四",
        name_en=None,
        lab=plain_lab,
        rules=RULES,
        calibration_valid_until=None,
        accuracy=None,
        fee_per_hour=Decimal("0"),
        fee_waiver_percent=0,
        range_min=0.0,
        range_max=6.0,
        field=Field.THERMAL,
    )
    make_instrument(
        name="校准压力表五",
        lab=ruled_lab,
        fee_per_hour=Decimal("99.99"),
        range_min=-1.5,
        range_max=1e7,
        calibration_valid_until=dt.date(2031, 2, 3),
    )
    _db.session.commit()


def _orm_answer(
    app: Any, lang: str, filters: dict[str, Any], page: int, per_page: int, facets: bool
) -> bytes:
    """The answer as the route built it from ORM instances."""
    with app.test_request_context("/api/v1/resources", headers={"Accept-Language": lang}):
        result = search_resources(
            ResourceFilters(**filters), page=page, per_page=per_page, facets=facets
        )
        assert not result.items or not isinstance(result.items[0], tuple)
        items = [resource_json(r, result.rules[r.id]) for r in result.items]
        body = page_json(items, result.total, page, per_page)
        if not result.total_exact:
            body["total_exact"] = False
        if result.facets is not None:
            body["facets"] = result.facets
        data: bytes = jsonify(body).get_data()
    _db.session.remove()
    return data


@pytest.mark.usefixtures("no_answer_cache")
@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_the_api_answer_is_the_orm_answer(
    app: Any, client: Any, catalogue: None, lang: str
) -> None:
    set_clock(lambda: NOW)
    seen = 0
    for query, filters, page, per_page, facets in CASES:
        response = client.get(
            "/api/v1/resources", query_string=query, headers={"Accept-Language": lang}
        )
        assert response.status_code == 200, response.get_json()
        expected = _orm_answer(app, lang, filters, page, per_page, facets)
        assert response.get_data() == expected, query
        seen += len(response.get_json()["items"])
    assert seen > 30


def test_every_kind_of_resource_is_compared(app: Any, client: Any, catalogue: None) -> None:
    """The cases above cover labs and instruments with and without rules, lab rules,
    calibration date, fee and waiver."""
    items = client.get("/api/v1/resources", query_string={"q": "校准"}).get_json()["items"]
    labs = [i for i in items if i["kind"] == "lab"]
    instruments = [i for i in items if i["kind"] == "instrument"]
    assert len(labs) == 3 and len(instruments) == 5
    assert {i["rules"]["slot_minutes"] for i in items} == {15, 30}
    assert any(i["rules"]["no_show_approval_threshold"] == 2 for i in instruments)
    assert any(i["calibration_valid_until"] is None for i in instruments)
    assert any(i["calibration_valid_until"] == "2031-02-03" for i in instruments)
    assert {i["fee_per_hour"] for i in items} >= {12.5, 0.0, 99.99, 150.0}
    assert any(i["fee_waiver_percent"] == 30 for i in labs)
    assert any(i["timezone"] == "Asia/Urumqi" for i in items)
    assert any(i["name_en"] is None for i in labs)
