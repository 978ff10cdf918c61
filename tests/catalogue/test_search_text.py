"""Text search: every searched column, short and long terms, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from labshare.catalogue.search import ResourceFilters, search_resources


def _ids(q: str) -> set[int]:
    result = search_resources(ResourceFilters(q=q), page=1, per_page=200)
    assert result.total == len(result.items)
    return {r.id for r in result.items}


@pytest.fixture
def catalogue(db: Any, make_institute: Any, make_lab: Any, make_instrument: Any) -> dict[str, Any]:
    plain = make_institute(name="普通院", name_en="Plain Institute")
    nim = make_institute(name="中国计量科学研究院", name_en="National Institute of Metrology")
    lab = make_lab(institute=plain, name="几何实验室", name_en="Geometry lab")
    out = {
        "lab": lab,
        "nim_lab": make_lab(institute=nim, name="实验室", name_en="Lab"),
        "cmm": make_instrument(
            lab=lab,
            name="三坐标测量机",
            name_en="Coordinate measuring machine",
            model="Global S",
            manufacturer="海克斯康",
            measurand="length",
            unit="mm",
        ),
        "gauge": make_instrument(
            lab=lab,
            name="数字压力计",
            name_en="Digital manometer",
            model="UV-7",
            manufacturer="Fluke",
        ),
        "odd": make_instrument(
            lab=lab,
            name="量块 100%_x",
            name_en="Gauge block",
            model="K-1",
            manufacturer="Mitutoyo",
            measurand="length",
            unit="mm",
        ),
    }
    db.session.commit()
    return out


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("三坐标", {"cmm"}),  # name, 3 characters: trigram branches
        ("压力", {"gauge"}),  # name, 2 characters: the one-pass fallback
        ("manometer", {"gauge"}),  # name_en
        ("MANOMETER", {"gauge"}),  # ASCII case is ignored
        ("global", {"cmm"}),  # model
        ("UV", {"gauge"}),  # model, short
        ("uv-7", {"gauge"}),  # cased: ILIKE on PostgreSQL
        ("-7", {"gauge"}),  # no cased letter: LIKE on PostgreSQL
        ("GLOBAL S", {"cmm"}),
        ("fluke", {"gauge"}),  # manufacturer
        ("海克", {"cmm"}),  # manufacturer, short
        ("pressure", {"gauge"}),  # measurand
        ("leng", {"cmm", "odd"}),  # measurand, a word's prefix
        ("计量科学", {"nim_lab"}),  # institute name
        ("Metrology", {"nim_lab"}),  # institute name_en
        ("普通", {"lab", "cmm", "gauge", "odd"}),  # institute name, short
        ("geometry", {"lab"}),
        ("100%", {"odd"}),  # % only separates words
        ("%", set()),  # punctuation alone: no word to look for
        ("%_x", {"odd"}),  # so does _
        ("0_", set()),
        ("Global 三坐标", {"cmm"}),  # terms are ANDed
        ("Global 压力", set()),
        ("压力 fluke uv", {"gauge"}),  # short and long terms together
        ("nothing-like-this", set()),
    ],
)
def test_text_matches_every_column(catalogue: dict[str, Any], q: str, expected: set[str]) -> None:
    assert _ids(q) == {catalogue[k].id for k in expected}


def test_count_and_pages_agree_with_text(
    db: Any, make_lab: Any, make_instrument: Any, client: Any
) -> None:
    lab = make_lab(name="实验室", name_en="Room")
    for n in range(7):
        make_instrument(lab=lab, name=f"压力表{n}", model=f"PX-{n}")
    make_instrument(
        lab=lab,
        name="温度计",
        name_en="Thermometer",
        model="T-1",
        measurand="temperature",
        unit="K",
    )
    db.session.commit()
    seen: list[int] = []
    for page in (1, 2, 3):
        body = client.get(f"/api/v1/resources?q=压力&per_page=3&page={page}").get_json()
        assert body["total"] == 7
        seen += [item["id"] for item in body["items"]]
    assert len(seen) == len(set(seen)) == 7 and seen == sorted(seen)
    assert client.get("/api/v1/resources?q=PX-").get_json()["total"] == 7


def test_pages_follow_the_ranking_and_a_page_past_the_end_keeps_the_total(
    db: Any, make_lab: Any, make_instrument: Any, client: Any
) -> None:
    """The ranking statement cuts the page and counts the matches at once; the page
    past the end has no row to carry the count and is counted apart."""
    lab = make_lab(name="实验室", name_en="Room")
    # Created so that the rank order is not the id order: measurand matches first
    # in id, then name matches, then the exact name.
    for n in range(3):
        make_instrument(lab=lab, name=f"校验仪{n}", model=f"C-{n}", measurand="pressure")
    for n in range(3):
        make_instrument(lab=lab, name=f"压力表{n}", model=f"PX-{n}", measurand="voltage")
    exact = make_instrument(lab=lab, name="压力", model="E-1", measurand="voltage")
    db.session.commit()
    whole = client.get("/api/v1/resources?q=压力&per_page=200").get_json()
    ranked = [item["id"] for item in whole["items"]]
    assert whole["total"] == len(ranked) == 7 and ranked[0] == exact.id
    assert ranked != sorted(ranked)
    seen: list[int] = []
    for page in (1, 2, 3, 4):
        body = client.get(f"/api/v1/resources?q=压力&per_page=2&page={page}").get_json()
        assert body["total"] == 7
        seen += [item["id"] for item in body["items"]]
    assert seen == ranked
    past = client.get("/api/v1/resources?q=压力&per_page=2&page=9").get_json()
    assert past["items"] == [] and past["total"] == 7 and "total_exact" not in past
    none = client.get("/api/v1/resources?q=不存在的词").get_json()
    assert none["items"] == [] and none["total"] == 0


def test_a_page_past_the_end_of_a_long_list_says_the_count_stopped(
    db: Any, make_lab: Any, make_instrument: Any, client: Any, monkeypatch: Any
) -> None:
    from labshare.catalogue import search_tiers

    monkeypatch.setattr(search_tiers, "COUNT_LIMIT", 3)
    lab = make_lab(name="实验室", name_en="Room")
    for n in range(5):
        make_instrument(lab=lab, name=f"压力表{n}", model=f"PX-{n}")
    db.session.commit()
    first = client.get("/api/v1/resources?q=压力&per_page=2").get_json()
    assert first["total"] == 3 and first["total_exact"] is False
    past = client.get("/api/v1/resources?q=压力&per_page=2&page=9").get_json()
    assert past["items"] == [] and past["total"] == 3 and past["total_exact"] is False


def test_the_page_carries_each_resource_s_effective_rules(
    db: Any, make_lab: Any, make_instrument: Any, client: Any
) -> None:
    """The page statement brings the own and the lab's booking rules with the rows:
    the same rules as effective_rules (own, else the lab's, else the defaults)."""
    from labshare.booking.rules import DEFAULT, effective_rules

    ruled = make_lab(name="规则实验室", name_en="Ruled lab", rules={"min_minutes": 90})
    bare = make_lab(name="普通实验室", name_en="Bare lab")
    own = make_instrument(lab=ruled, name="校准台甲", rules={"min_minutes": 45})
    inherits = make_instrument(lab=ruled, name="校准台乙")
    default = make_instrument(lab=bare, name="校准台丙")
    db.session.commit()
    for q in ("校准台", "实验室"):
        result = search_resources(ResourceFilters(q=q), page=1, per_page=50)
        assert result.items
        for resource in result.items:
            assert result.rules[resource.id] == effective_rules(resource), resource.name
    rules = search_resources(ResourceFilters(q="校准台"), page=1, per_page=50).rules
    assert rules[own.id].min_minutes == 45
    assert rules[inherits.id].min_minutes == 90
    assert rules[default.id] == DEFAULT
    body = client.get("/api/v1/resources", query_string={"q": "校准台甲"}).get_json()
    assert body["items"][0]["rules"]["min_minutes"] == 45
