"""The search index: relevance, pinyin, measurand synonyms, the index kept in step
in the same transaction, facets, and bad input, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import delete, func, select

from labshare.catalogue import search_index
from labshare.catalogue.search import ResourceFilters, search_resources
from labshare.errors import ValidationFailed
from labshare.models import SearchDoc


def _ranked(q: str, **kw: Any) -> list[int]:
    result = search_resources(ResourceFilters(q=q, **kw), page=1, per_page=200)
    return [r.id for r in result.items]


@pytest.fixture
def catalogue(db: Any, make_institute: Any, make_lab: Any, make_instrument: Any) -> dict[str, Any]:
    jiangsu = make_institute(name="江苏院", name_en="Jiangsu", province_code="320000")
    guangdong = make_institute(
        name="广东院", name_en="Guangdong", province_code="440000", province="广东省", city="广州"
    )
    lab = make_lab(institute=jiangsu, name="力学实验室", name_en="Mechanics lab")
    gd_lab = make_lab(institute=guangdong, name="热学实验室", name_en="Heat lab")

    def instrument(lab: Any = lab, **kw: Any) -> Any:
        kw.setdefault("name_en", None)
        kw.setdefault("model", None)
        kw.setdefault("manufacturer", None)
        return make_instrument(lab=lab, **kw)

    out = {
        "lab": lab,
        "gd_lab": gd_lab,
        # the name is the query
        "exact": instrument(name="压力计", model="PG-1"),
        # the name contains the query
        "in_name": instrument(name="活塞式压力计", model="PX-200"),
        "in_name_gd": instrument(lab=gd_lab, name="数字压力计", model="DPI-620"),
        # only the measurand (pressure) has the word
        "measurand": instrument(name="校验仪", name_en="Calibrator", model="CAL-9"),
        # only the manufacturer has it; measures voltage
        "maker": instrument(
            name="万用表",
            name_en="Multimeter",
            manufacturer="压力计厂",
            measurand="voltage",
            unit="V",
            range_min=0,
            range_max=1000,
            range_min_base=0,
            range_max_base=1000,
        ),
        "cmm": instrument(
            name="三坐标测量机",
            name_en="Coordinate measuring machine",
            model="Global S",
            measurand="length",
            unit="mm",
            range_min=0,
            range_max=1000,
            range_min_base=0,
            range_max_base=1,
        ),
        "hardness": instrument(
            lab=gd_lab,
            name="洛氏硬度计",
            name_en="Rockwell hardness tester",
            model="HR-150",
            measurand="force",
            unit="N",
            range_min=0,
            range_max=1500,
            range_min_base=0,
            range_max_base=1500,
        ),
    }
    db.session.commit()
    return out


#: query → the resources that must come first, in this order.
RELEVANCE: list[tuple[str, list[str]]] = [
    ("压力计", ["exact", "in_name", "in_name_gd", "maker"]),
    ("压力", ["exact", "in_name", "in_name_gd", "measurand"]),
    ("yali", ["exact", "in_name", "in_name_gd", "measurand"]),
    ("pressure", ["exact", "in_name", "in_name_gd", "measurand"]),
    ("压强", ["exact", "in_name", "in_name_gd", "measurand"]),
    ("三坐标", ["cmm"]),
    ("三坐标测量机", ["cmm"]),
    ("sanzuobiao", ["cmm"]),
    ("szbclj", ["cmm"]),
    ("硬度", ["hardness"]),
    ("硬", ["hardness"]),
    ("rockwell", ["hardness"]),
    ("HR-150", ["hardness"]),
    ("hr150", []),
    ("global", ["cmm"]),
    ("coord", ["cmm"]),
    ("广州", ["gd_lab", "in_name_gd", "hardness"]),
    ("PG-1", ["exact"]),
]


@pytest.mark.parametrize(("q", "first"), RELEVANCE, ids=[q for q, _ in RELEVANCE])
def test_relevance(catalogue: dict[str, Any], q: str, first: list[str]) -> None:
    found = _ranked(q)
    assert found[: len(first)] == [catalogue[k].id for k in first], found
    if not first:
        assert found == []


def test_pressure_words_do_not_find_voltage_by_measurand(catalogue: dict[str, Any]) -> None:
    """压强 is a name of pressure only: the multimeter (voltage) is not found by it."""
    assert catalogue["maker"].id not in _ranked("压强")
    assert catalogue["maker"].id in _ranked("压力")  # its maker's name has the word


def test_near_province_breaks_ties(catalogue: dict[str, Any]) -> None:
    """Among name matches, the searcher's province first; the ranking tier stays first."""
    assert _ranked("压力计", near_province="440000")[:3] == [
        catalogue["exact"].id,  # the exact name, wherever it is
        catalogue["in_name_gd"].id,
        catalogue["in_name"].id,
    ]
    assert _ranked("压力", near_province="440000")[:3] == [
        catalogue["in_name_gd"].id,
        catalogue["exact"].id,
        catalogue["in_name"].id,
    ]
    assert _ranked("压力", near_province="广东省")[:3] == [
        catalogue["in_name_gd"].id,
        catalogue["exact"].id,
        catalogue["in_name"].id,
    ]


def test_capability_accepts_any_name_of_the_measurand_and_ranks_the_fit(
    db: Any, catalogue: dict[str, Any], make_instrument: Any
) -> None:
    wide = make_instrument(
        lab=catalogue["lab"], name="宽量程压力计", range_min=0, range_max=100,
        range_min_base=0, range_max_base=1e8,
    )  # fmt: skip
    db.session.commit()
    for name in ("pressure", "压强", "压力", "Pressure"):
        result = search_resources(
            ResourceFilters(measurand=name, value=5, unit="MPa"), page=1, per_page=50
        )
        ids = [r.id for r in result.items]
        assert wide.id in ids and ids[-1] == wide.id, name  # the widest range last
        assert catalogue["maker"].id not in ids


def test_a_catalogue_edit_is_searchable_in_the_same_transaction(
    db: Any, catalogue: dict[str, Any], make_instrument: Any
) -> None:
    new = make_instrument(lab=catalogue["lab"], name="声级计", name_en=None, model="AWA5688")
    db.session.flush()
    assert _ranked("声级") == [new.id]
    assert _ranked("awa5688") == [new.id]
    new.name = "噪声分析仪"
    db.session.flush()
    assert _ranked("声级") == []
    assert _ranked("噪声分析") == [new.id]
    catalogue["lab"].institute.name = "苏州院"
    db.session.flush()
    assert new.id in _ranked("苏州")
    db.session.rollback()
    assert _ranked("噪声分析") == []
    assert catalogue["exact"].id in _ranked("江苏院")


def test_an_unrelated_change_leaves_the_index_alone(db: Any, catalogue: dict[str, Any]) -> None:
    before = db.session.get(SearchDoc, catalogue["exact"].id).tokens
    catalogue["exact"].fee_waiver_percent = 10
    db.session.commit()
    assert db.session.get(SearchDoc, catalogue["exact"].id).tokens == before


def test_rebuild_makes_the_same_index(db: Any, catalogue: dict[str, Any]) -> None:
    rows = {d.resource_id: d.tokens for d in db.session.scalars(select(SearchDoc))}
    db.session.execute(delete(SearchDoc))
    assert _ranked("压力") == []
    assert search_index.rebuild(db.session.connection()) == len(rows)
    db.session.expire_all()
    assert {d.resource_id: d.tokens for d in db.session.scalars(select(SearchDoc))} == rows
    assert catalogue["exact"].id in _ranked("压力")


def test_deleting_a_resource_removes_its_row(db: Any, catalogue: dict[str, Any]) -> None:
    db.session.delete(catalogue["cmm"])
    db.session.commit()
    assert db.session.scalar(select(func.count()).select_from(SearchDoc)) == 8
    assert _ranked("三坐标") == []


def test_api_facets_and_counts(client: Any, catalogue: dict[str, Any]) -> None:
    body = client.get("/api/v1/resources", query_string={"q": "压力", "facets": "true"}).get_json()
    assert body["total"] == 5 and "total_exact" not in body
    facets = body["facets"]
    assert {v["value"]: v["count"] for v in facets["province"]} == {"320000": 4, "440000": 1}
    assert {v["value"]: v["count"] for v in facets["kind"]} == {"instrument": 5}
    assert sum(v["count"] for v in facets["institute"]) == 5
    assert sum(v["count"] for v in facets["field"]) == 5
    plain = client.get("/api/v1/resources", query_string={"q": "压力"}).get_json()
    assert "facets" not in plain and set(plain) >= {"items", "total", "page", "per_page"}


def test_count_stops_at_the_limit(
    db: Any, client: Any, monkeypatch: Any, catalogue: dict[str, Any]
) -> None:
    from labshare.catalogue import search_tiers

    monkeypatch.setattr(search_tiers, "COUNT_LIMIT", 3)
    body = client.get("/api/v1/resources", query_string={"q": "压力", "per_page": 2}).get_json()
    assert body["total"] == 3 and body["total_exact"] is False and len(body["items"]) == 2


def test_catalogue_page_shows_facets(client: Any, catalogue: dict[str, Any]) -> None:
    page = client.get("/catalogue", query_string={"q": "压力"}).get_data(as_text=True)
    assert 'class="facets"' in page and "440000" in page


BAD = ['"', '""', '"压力', "*", "%", "_", "-", "NEAR", "OR", "AND", "NOT", "NEAR(a b)",
       "压力 OR", "a:b", "'", "\\", "^", "(", ")", "!@#$%^&*()", "…。，", "x" * 60]  # fmt: skip


@pytest.mark.parametrize("q", BAD)
def test_operators_and_punctuation_are_words_or_nothing(
    client: Any, catalogue: dict[str, Any], q: str
) -> None:
    response = client.get("/api/v1/resources", query_string={"q": q})
    assert response.status_code == 200, response.get_data(as_text=True)
    if not any(c.isalnum() for c in q):
        assert response.get_json()["total"] == 0
    page = client.get("/catalogue", query_string={"q": q})
    assert page.status_code == 200


def test_a_very_long_query_is_refused(client: Any, catalogue: dict[str, Any]) -> None:
    response = client.get("/api/v1/resources", query_string={"q": "压" * 10_000})
    assert response.status_code == 422
    assert response.get_json()["error"]["field"] == "q"
    page = client.get("/catalogue", query_string={"q": "压" * 10_000})
    assert page.status_code == 200
    with pytest.raises(ValidationFailed) as caught:
        search_resources(ResourceFilters(q="压" * 10_000), page=1, per_page=10)
    assert caught.value.field == "q"


def test_tokens_are_safe_for_both_databases() -> None:
    tokens = search_index.document_tokens("压力计 PX-200 ＵＶ Ünïcödé", "NEAR OR")
    assert all(t.isascii() and t.isalnum() for t in tokens)
    assert "uv" in tokens and "near" in tokens and "yali" in tokens and "ylj" in tokens
    assert search_index.resolve_measurand(" 压强 ") == "pressure"
    assert search_index.resolve_measurand("Sound pressure level") == "sound_pressure_level"


def test_search_reindex_command(app: Any, db: Any, catalogue: dict[str, Any]) -> None:
    db.session.execute(delete(SearchDoc))
    db.session.commit()
    result = app.test_cli_runner().invoke(args=["search-reindex"])
    assert result.exit_code == 0 and "Indexed 9 resources" in result.output
    assert catalogue["exact"].id in _ranked("压力")


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("q=a%00b", "q"),
        ("q=%00", "q"),
        ("institute=%00", "institute"),
        ("province=%00", "province"),
        ("measurand=pressure&value=1&unit=k%00Pa", "unit"),
        ("near=%00", "near"),
    ],
)
def test_a_nul_in_a_search_field_is_refused_on_that_field(
    client: Any, query: str, field: str
) -> None:
    """PostgreSQL refuses a NUL in any text it is sent: without the check this was a 500."""
    r = client.get(f"/api/v1/resources?{query}", headers={"Accept-Language": "en"})
    assert r.status_code == 422, r.get_data(as_text=True)[:300]
    assert r.get_json()["error"]["field"] == field
    assert "NUL" in r.get_json()["error"]["message"]
    r = client.get(f"/api/v1/resources?{query}", headers={"Accept-Language": "zh-CN"})
    assert r.get_json()["error"]["message"] == "此字段含有不允许的 NUL 字符。"
