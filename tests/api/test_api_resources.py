"""Resource search, detail and availability over the API."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import pytest

from labshare.catalogue.capability import refresh_base_range
from labshare.catalogue.search import AVAILABILITY_SCAN_LIMIT
from labshare.extensions import db as _db
from labshare.models import BookingStatus, Closure, Field, ResourceStatus, Role
from labshare.timeutil import set_clock
from tests.factories import weekday_hours
from tests.helpers import NOW, check_schema, error_of, listening

RESOURCE_KEYS = {
    "id",
    "kind",
    "name",
    "name_en",
    "institute",
    "lab_id",
    "field",
    "province",
    "capability",
    "calibration_valid_until",
    "requires_qualification",
    "status",
    "fee_per_hour",
    "fee_waiver_percent",
    "timezone",
    "rules",
}
#: The detail adds the instrument's bundle (booking groups; additive).
DETAIL_KEYS = RESOURCE_KEYS | {"bundle"}
DETAIL_KEYS |= {"quotas"}  # the quotas that apply (booking policies; additive)


def _ids(response: Any) -> list[int]:
    assert response.status_code == 200, response.get_json()
    return [item["id"] for item in response.get_json()["items"]]


@contextmanager
def count_queries() -> Iterator[list[str]]:
    statements: list[str] = []

    def _record(*args: Any) -> None:
        statements.append(args[2])

    with listening(_record):
        yield statements


@pytest.fixture
def catalogue(db: Any, make_institute: Any, make_lab: Any, make_instrument: Any) -> dict[str, Any]:
    js = make_institute(code="JSIM", name="江苏省计量科学研究院", province="江苏省")
    gd = make_institute(
        code="GDIM",
        name="广东省计量科学研究院",
        name_en="Guangdong Institute of Metrology",
        province="广东省",
        province_code="440000",
    )
    js_lab = make_lab(institute=js, name="力学开放实验室", name_en="Mechanics lab")
    gd_lab = make_lab(
        institute=gd, name="热学开放实验室", name_en="Thermal lab", field=Field.THERMAL
    )
    cmm = make_instrument(
        lab=js_lab,
        name="三坐标测量机",
        name_en="Coordinate measuring machine",
        model="PRISMO 7",
        manufacturer="Zeiss",
        field=Field.GEOMETRIC,
        measurand="length",
        unit="mm",
        range_min=0,
        range_max=1200,
        rules={
            "slot_minutes": 60,
            "min_minutes": 60,
            "max_minutes": 240,
            "lead_time_hours": 48,
            "horizon_days": 30,
            "requires_approval": False,
            "max_active_per_company": 2,
            "cancel_deadline_hours": 12,
        },
    )
    bath = make_instrument(
        lab=gd_lab,
        name="恒温槽",
        name_en="Thermostatic bath",
        field=Field.THERMAL,
        measurand="temperature",
        unit="°C",
        range_min=-80,
        range_max=95,
    )
    retired = make_instrument(lab=gd_lab, name="旧压力表", status=ResourceStatus.RETIRED)
    for inst in (cmm, bath, retired):
        refresh_base_range(inst)
    db.session.commit()
    return {
        "js": js,
        "gd": gd,
        "js_lab": js_lab,
        "gd_lab": gd_lab,
        "cmm": cmm,
        "bath": bath,
        "retired": retired,
    }


def test_resource_object_is_exactly_as_api_md(client: Any, catalogue: dict[str, Any]) -> None:
    cmm = catalogue["cmm"]
    response = client.get(f"/api/v1/resources/{cmm.id}")
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == DETAIL_KEYS
    check_schema(client, "ResourceOut", body)
    assert body["kind"] == "instrument"
    assert body["institute"] == {
        "id": catalogue["js"].id,
        "code": "JSIM",
        "name": "江苏省计量科学研究院",
    }
    assert body["lab_id"] == catalogue["js_lab"].id
    assert body["province"] == "江苏省"
    assert body["capability"] == {
        "measurand": "length",
        "unit": "mm",
        "range_min": 0,
        "range_max": 1200,
        "accuracy": "±0.02 %FS",
    }
    assert body["calibration_valid_until"] == "2099-12-31"
    assert body["fee_per_hour"] == 150
    assert body["fee_waiver_percent"] == 50
    assert body["timezone"] == "Asia/Shanghai"
    assert body["rules"]["slot_minutes"] == 60
    assert body["rules"]["requires_approval"] is False

    lab = client.get(f"/api/v1/resources/{catalogue['gd_lab'].id}").get_json()
    assert set(lab) == DETAIL_KEYS
    check_schema(client, "ResourceOut", lab)
    assert lab["kind"] == "lab"
    assert lab["capability"] is None and lab["lab_id"] is None
    assert lab["rules"]["slot_minutes"] == 30  # defaults
    # The instrument without rules of its own uses its lab's (here: the defaults).
    assert (
        client.get(f"/api/v1/resources/{catalogue['bath'].id}").get_json()["rules"] == lab["rules"]
    )


def test_unknown_resource_is_404_json(client: Any, catalogue: dict[str, Any]) -> None:
    response = client.get("/api/v1/resources/999999")
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"
    response = client.get("/api/v1/resources/abc")
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


def test_list_shape_and_retired_hidden(client: Any, catalogue: dict[str, Any]) -> None:
    response = client.get("/api/v1/resources")
    body = response.get_json()
    assert set(body) == {"items", "total", "page", "per_page"}
    check_schema(client, "ResourceOutPage", body)
    assert body["page"] == 1 and body["per_page"] == 20
    ids = {item["id"] for item in body["items"]}
    assert catalogue["retired"].id not in ids
    assert body["total"] == len(ids) == 4  # two labs, two instruments


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"q": "三坐标"}, {"cmm"}),
        ({"q": "coordinate"}, {"cmm"}),
        ({"q": "COORDINATE machine"}, {"cmm"}),
        ({"q": "zeiss"}, {"cmm"}),
        ({"q": "PRISMO"}, {"cmm"}),
        ({"q": "temperature"}, {"bath"}),
        ({"q": "广东省计量"}, {"gd_lab", "bath"}),
        ({"q": "Guangdong"}, {"gd_lab", "bath"}),
        ({"q": "100%"}, set()),  # % is matched literally, not as a wildcard
        ({"q": "_"}, set()),
        ({"kind": "lab"}, {"js_lab", "gd_lab"}),
        ({"kind": "instrument", "field": "thermal"}, {"bath"}),
        ({"field": "thermal"}, {"gd_lab", "bath"}),
        ({"province": "江苏"}, {"js_lab", "cmm"}),
        ({"province": "江苏省"}, {"js_lab", "cmm"}),
        ({"province": "440000"}, {"gd_lab", "bath"}),
        ({"institute": "GDIM"}, {"gd_lab", "bath"}),
        ({"institute": "NOPE"}, set()),
        ({"q": "实验室", "province": "广东"}, {"gd_lab"}),
        ({"unknown_param": "ignored", "kind": "lab"}, {"js_lab", "gd_lab"}),
        ({"q": "", "kind": "lab"}, {"js_lab", "gd_lab"}),  # empty counts as absent
    ],
)
def test_filters(
    client: Any, catalogue: dict[str, Any], params: dict[str, str], expected: set[str]
) -> None:
    ids = set(_ids(client.get("/api/v1/resources", query_string=params)))
    assert ids == {catalogue[name].id for name in expected}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"per_page": "500"}, "per_page"),
        ({"per_page": "0"}, "per_page"),
        ({"per_page": "abc"}, "per_page"),
        ({"page": "0"}, "page"),
        ({"kind": "robot"}, "kind"),
        ({"field": "astrology"}, "field"),
        ({"available_from": "2030-01-07T09:00:00"}, "available_from"),
        ({"available_from": "2030-01-07T09:00:00+08:00"}, "available_to"),
        (
            {"available_from": "2030-01-07T09:00:00+08:00", "available_to": "2030-03-07T09:00:00Z"},
            "available_to",
        ),
        ({"q": "x" * 101}, "q"),
    ],
)
def test_bad_query_is_422_naming_field(
    client: Any, catalogue: dict[str, Any], params: dict[str, str], field: str
) -> None:
    response = client.get("/api/v1/resources", query_string=params)
    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "validation_error"
    assert error["field"] == field


def test_per_page_200_is_allowed_and_pages_add_up(
    db: Any, client: Any, make_lab: Any, make_institute: Any
) -> None:
    institute = make_institute()
    for _ in range(7):
        make_lab(institute=institute)
    db.session.commit()
    assert client.get("/api/v1/resources?per_page=200").status_code == 200
    seen: list[int] = []
    for page in (1, 2, 3):
        body = client.get(f"/api/v1/resources?per_page=3&page={page}").get_json()
        assert body["total"] == 7 and body["page"] == page and body["per_page"] == 3
        seen += [item["id"] for item in body["items"]]
    assert len(seen) == len(set(seen)) == 7
    assert client.get("/api/v1/resources?per_page=3&page=9").get_json()["items"] == []


def test_the_deepest_page_of_a_text_search_is_empty(
    db: Any, client: Any, make_lab: Any, make_institute: Any
) -> None:
    """The last page the API allows, past the matches: an empty page with the count
    (the tiers left every match before the page out by id, one bound parameter each:
    past 65,535 PostgreSQL refused the statement, a 500)."""
    institute = make_institute()
    for _ in range(3):
        make_lab(institute=institute, name="压力实验室")
    db.session.commit()
    response = client.get("/api/v1/resources?q=压力&page=1000000&per_page=200")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["items"] == [] and body["total"] == 3 and "total_exact" not in body
    assert body["page"] == 1000000 and body["per_page"] == 200


def test_search_runs_a_fixed_number_of_queries(
    db: Any, client: Any, make_institute: Any, make_lab: Any, make_instrument: Any
) -> None:
    """No N+1: 60 resources across 3 institutes, some with rules of their own."""
    for n in range(3):
        institute = make_institute()
        lab = make_lab(institute=institute, rules={"slot_minutes": 15} if n == 0 else None)
        for m in range(19):
            make_instrument(lab=lab, rules={"slot_minutes": 60} if m % 5 == 0 else None)
    db.session.commit()
    _db.session.expire_all()
    with count_queries() as statements:
        body = client.get("/api/v1/resources?per_page=200").get_json()
    assert body["total"] == 60
    # the catalogue version (search_cache), page, count, rules (+ a BEGIN)
    assert len(statements) <= 5, statements
    slots = {item["rules"]["slot_minutes"] for item in body["items"]}
    assert slots == {15, 30, 60}
    with count_queries() as statements:
        again = client.get("/api/v1/resources?per_page=200").get_json()
    assert again == body
    assert len(statements) <= 2, statements  # served at the same version (+ a BEGIN)


def test_availability_shape_and_zone(
    db: Any, client: Any, make_institute: Any, make_lab: Any, make_booking: Any
) -> None:
    set_clock(lambda: NOW)
    berlin = make_institute(timezone="Europe/Berlin")
    lab = make_lab(institute=berlin, hours=weekday_hours("08:00", "18:00"))
    make_booking(
        resource=lab,
        start=dt.datetime(2030, 1, 7, 9, 0, tzinfo=dt.UTC),  # 10:00 in Berlin
        end=dt.datetime(2030, 1, 7, 10, 0, tzinfo=dt.UTC),
        status=BookingStatus.APPROVED,
    )
    _db.session.add(
        Closure(
            resource_id=lab.id,
            start_at=dt.datetime(2030, 1, 7, 14, 0, tzinfo=dt.UTC),
            end_at=dt.datetime(2030, 1, 7, 15, 0, tzinfo=dt.UTC),
        )
    )
    db.session.commit()
    response = client.get(
        f"/api/v1/resources/{lab.id}/availability",
        query_string={"from": "2030-01-07T00:00:00+01:00", "to": "2030-01-08T00:00:00+01:00"},
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    check_schema(client, "AvailabilityOut", body)
    assert body["resource_id"] == lab.id
    assert body["timezone"] == "Europe/Berlin"
    busy = [(b["start"], b["end"], b["reason"]) for b in body["busy"]]
    assert ("2030-01-07T10:00:00+01:00", "2030-01-07T11:00:00+01:00", "booked") in busy
    assert ("2030-01-07T15:00:00+01:00", "2030-01-07T16:00:00+01:00", "closure") in busy
    assert ("2030-01-07T00:00:00+01:00", "2030-01-07T08:00:00+01:00", "closed") in busy
    assert {"start": "2030-01-07T08:00:00+01:00", "end": "2030-01-07T10:00:00+01:00"} in body[
        "free"
    ]
    for interval in body["busy"] + body["free"]:
        assert interval["start"].endswith("+01:00") and interval["end"].endswith("+01:00")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2030-01-07T00:00:00", "to": "2030-01-08T00:00:00+08:00"}, "from"),
        ({"from": "2030-01-07T00:00:00+08:00", "to": "2030-01-08T00:00:00"}, "to"),
        ({"from": "2030-01-07T00:00:00+08:00"}, "to"),
        ({"from": "yesterday", "to": "2030-01-08T00:00:00+08:00"}, "from"),
        ({"from": "2030-01-07T00:00:00+08:00", "to": "2030-02-08T00:00:00+08:00"}, "to"),
        ({"from": "2030-01-07T00:00:00+08:00", "to": "2030-01-06T00:00:00+08:00"}, "to"),
    ],
)
def test_availability_bad_window(
    client: Any, catalogue: dict[str, Any], params: dict[str, str], field: str
) -> None:
    response = client.get(
        f"/api/v1/resources/{catalogue['cmm'].id}/availability", query_string=params
    )
    assert response.status_code == 422
    assert error_of(response)["field"] == field


def test_availability_of_unknown_resource(client: Any, catalogue: dict[str, Any]) -> None:
    response = client.get(
        "/api/v1/resources/999999/availability",
        query_string={"from": "2030-01-07T00:00:00Z", "to": "2030-01-08T00:00:00Z"},
    )
    assert response.status_code == 404


def test_available_window_filter(
    db: Any,
    client: Any,
    make_institute: Any,
    make_lab: Any,
    make_instrument: Any,
    make_booking: Any,
) -> None:
    set_clock(lambda: NOW)
    institute = make_institute()
    lab = make_lab(institute=institute, hours=weekday_hours("09:00", "11:00"))
    busy = make_instrument(lab=lab, name="busy")
    free = make_instrument(lab=lab, name="free")
    broken = make_instrument(lab=lab, name="broken", status=ResourceStatus.MAINTENANCE)
    expired = make_instrument(lab=lab, name="expired", calibration_valid_until=dt.date(2030, 1, 5))
    # The whole opening of Monday 7 January is booked on "busy".
    make_booking(
        resource=busy,
        start=dt.datetime(2030, 1, 7, 1, 0, tzinfo=dt.UTC),
        end=dt.datetime(2030, 1, 7, 3, 0, tzinfo=dt.UTC),
        status=BookingStatus.APPROVED,
        fee=Decimal("0"),
    )
    db.session.commit()
    window = {
        "available_from": "2030-01-07T00:00:00+08:00",
        "available_to": "2030-01-08T00:00:00+08:00",
        "kind": "instrument",
    }
    assert set(_ids(client.get("/api/v1/resources", query_string=window))) == {free.id}
    # Before the lead time (24 h from NOW) nothing is bookable.
    early = {
        "available_from": "2030-01-01T09:00:00+08:00",
        "available_to": "2030-01-01T12:00:00+08:00",
    }
    assert _ids(client.get("/api/v1/resources", query_string=early)) == []
    two_days = dict(window, available_to="2030-01-09T00:00:00+08:00")
    ids = set(_ids(client.get("/api/v1/resources", query_string=two_days)))
    assert ids == {busy.id, free.id}
    assert broken.id not in ids and expired.id not in ids


def test_available_window_filter_stops_at_the_page(
    db: Any, client: Any, make_institute: Any, make_lab: Any
) -> None:
    set_clock(lambda: NOW)
    institute = make_institute()
    for _ in range(12):
        make_lab(institute=institute)
    db.session.commit()
    window = {
        "available_from": "2030-01-07T00:00:00+08:00",
        "available_to": "2030-01-08T00:00:00+08:00",
        "per_page": 5,
    }
    response = client.get("/api/v1/resources", query_string=window)
    assert response.status_code == 200
    body = response.get_json()
    # Free-ness is checked in rank order until the page and one more are found: the
    # total is then a lower bound that promises a next page.
    assert len(body["items"]) == 5
    assert (body["total"], body["total_exact"]) == (6, False)
    assert "X-Availability-Truncated" not in response.headers
    last = client.get("/api/v1/resources", query_string=window | {"page": 3}).get_json()
    assert len(last["items"]) == 2
    assert last["total"] == 12 and "total_exact" not in last


def test_available_window_filter_is_bounded(
    db: Any, client: Any, make_institute: Any, make_lab: Any
) -> None:
    set_clock(lambda: NOW)
    institute = make_institute()
    for _ in range(AVAILABILITY_SCAN_LIMIT + 1):
        make_lab(institute=institute, hours=weekday_hours("09:00", "17:00", range(5)))
    db.session.commit()
    response = client.get(
        "/api/v1/resources",
        query_string={
            # Saturday: the labs open Monday to Friday, so every candidate is examined
            "available_from": "2030-01-05T00:00:00+08:00",
            "available_to": "2030-01-06T00:00:00+08:00",
            "per_page": 5,
        },
    )
    assert response.status_code == 200
    assert response.get_json()["total"] == 0
    assert response.headers["X-Availability-Truncated"] == "true"


def test_public_search_ignores_the_authorization_header(
    db: Any, client: Any, catalogue: dict[str, Any], make_user: Any
) -> None:
    make_user(Role.STAFF, institute=catalogue["js"])
    db.session.commit()
    anonymous = _ids(client.get("/api/v1/resources"))
    with_header = _ids(client.get("/api/v1/resources", headers={"Authorization": "Bearer x"}))
    assert anonymous == with_header
