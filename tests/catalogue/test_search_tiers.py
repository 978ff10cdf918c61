"""A text search reads its rank tiers one after the other, only as far as the page
needs (labshare/catalogue/search_tiers.py): every page it shows is the page of
the full ranking (``_ranked``, which ranks every match), on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import event, select

from labshare.catalogue import search, search_tiers
from labshare.catalogue.search import COUNT_LIMIT, ResourceFilters, search_resources
from labshare.extensions import db
from labshare.models import ResourceKind, ResourceStatus


@pytest.fixture
def catalogue(db: Any, make_institute: Any, make_lab: Any, make_instrument: Any) -> None:
    """Matches of 压力 in every tier, in both provinces, ids interleaved across tiers,
    and some that are never listed (retired, an inactive institute)."""
    js = make_institute(name="江苏计量院", name_en="Jiangsu", province_code="320000")
    gd = make_institute(
        name="广东压力院", name_en="Guangdong", province_code="440000", province="广东省"
    )
    labs = [make_lab(institute=js, name="力学实验室"), make_lab(institute=gd, name="热学实验室")]
    # Never listed: among the first name matches by id, so that a probe must look
    # past them to fill its page.
    closed = make_institute(name="关闭的压力院", province_code="320000", active=False)
    closed_lab = make_lab(institute=closed, name="压力实验室")
    for _ in range(4):
        make_instrument(lab=closed_lab, name="压力计", model=None, manufacturer=None)
        make_instrument(
            lab=labs[0], name="压力计", model=None, manufacturer=None, status=ResourceStatus.RETIRED
        )
    for n in range(3):
        for lab in labs:
            kw: dict[str, Any] = {"name_en": None, "manufacturer": None, "lab": lab}
            make_instrument(name="压力计", model=f"E-{n}", **kw)  # exact name
            make_instrument(name=f"活塞式压力计{n}", model=None, **kw)  # name
            make_instrument(name=f"校验仪{n}", model=f"YL-{n}", **kw)  # measurand (pressure)
            make_instrument(  # the rest: the maker (in Guangdong: the institute too)
                name=f"万用表{n}",
                model=None,
                measurand="voltage",
                unit="V",
                range_min=0,
                range_max=10,
                range_min_base=0,
                range_max_base=10,
                **{**kw, "manufacturer": "压力仪表厂"},
            )
    make_lab(institute=gd, name="压力实验室")  # a lab: name tier
    db.session.commit()


def _full(f: ResourceFilters) -> list[int]:
    ranked, _keys = search._ranked(f)
    return list(db.session.scalars(select(ranked.subquery().c.id)))


CASES = [
    {"q": "压力"},
    {"q": "压力计"},
    {"q": "yali"},
    {"q": "pressure"},
    {"q": "压"},
    {"q": "计"},
    {"q": "压力", "near_province": "440000"},
    {"q": "压力计", "near_province": "广东省"},
    {"q": "压力", "kind": ResourceKind.INSTRUMENT},
    {"q": "压力", "province": "320000"},
    {"q": "万用表"},
    {"q": "nothing"},
]


def _assert_is_page(result: Any, full: list[int], page: int, per_page: int) -> None:
    """``result`` is page ``page`` of the full ranking ``full`` (ids), counted exactly."""
    start = (page - 1) * per_page
    assert [r.id for r in result.items] == full[start : start + per_page], (per_page, page)
    assert result.total == min(len(full), COUNT_LIMIT)
    assert result.total_exact
    assert set(result.rules) == {r.id for r in result.items}


@pytest.mark.parametrize("case", CASES, ids=[str(c) for c in CASES])
def test_every_page_is_the_full_rankings(catalogue: None, case: dict[str, Any]) -> None:
    f = ResourceFilters(**case)
    full = _full(f)
    for per_page in (1, 2, 3, 5, 7, 50):
        for page in range(1, len(full) // per_page + 3):
            result = search_resources(f, page=page, per_page=per_page)
            _assert_is_page(result, full, page, per_page)


def test_a_page_full_of_name_matches_reads_no_other_tier(catalogue: None) -> None:
    """The name tier fills the first page: the measurand and rest tiers are not
    asked (their probe is the only statement that reads the measurand tokens)."""
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        result = search_resources(ResourceFilters(q="压力"), page=1, per_page=5)
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert len(result.items) == 5
    assert not [s for s in sent if "measurand_tokens" in s]
    sent.clear()
    event.listen(db.engine, "before_cursor_execute", record)
    try:
        search_resources(ResourceFilters(q="压力"), page=3, per_page=10)
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert [s for s in sent if "measurand_tokens" in s]


class _Sent:
    """The statements sent, and how many bound parameters each had."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.parameters: list[int] = []

    def __enter__(self) -> _Sent:
        event.listen(db.engine, "before_cursor_execute", self.record)
        return self

    def __exit__(self, *_exc: Any) -> None:
        event.remove(db.engine, "before_cursor_execute", self.record)

    def record(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, *_a: Any) -> None:
        self.statements.append(statement)
        self.parameters.append(len(parameters or ()))

    def left_out(self) -> list[int]:
        """How many ids each NOT IN list of the statements leaves out."""
        return [
            len(ids.split(","))
            for s in self.statements
            for ids in re.findall(r"NOT IN \(([^()]*)\)", s, re.IGNORECASE)
        ]


@pytest.mark.parametrize("case", CASES, ids=[str(c) for c in CASES])
def test_a_deep_page_is_ranked_in_full(
    catalogue: None, case: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A page whose later tiers would leave out more than TIERED_LIMIT matches by id
    (a parameter each: a deep page of 计 went past PostgreSQL's 65,535 and failed)
    is the full ranking's page too, and no statement sends more parameters than
    the limit allows."""
    limit = 3
    monkeypatch.setattr(search_tiers, "TIERED_LIMIT", limit)
    f = ResourceFilters(**case)
    full = _full(f)
    # What the full ranking and the first page of the tiers send (no id left out).
    with _Sent() as base:
        ranked, keys = search._ranked(f)
        search._page(ranked, keys, search._where(f), 1, 1)
        search._page(ranked, keys, search._where(f), len(full) + 1, 1)
        search_resources(f, page=1, per_page=1)
    for per_page in (1, 2, 5):
        for page in range(1, len(full) // per_page + 3):
            with _Sent() as sent:
                result = search_resources(f, page=page, per_page=per_page)
            _assert_is_page(result, full, page, per_page)
            assert max(sent.left_out(), default=0) <= limit, (per_page, page)
            assert max(sent.parameters) <= max(base.parameters) + limit, (per_page, page)


@pytest.mark.parametrize("case", CASES, ids=[str(c) for c in CASES])
def test_a_text_count_stops_at_its_limit_or_the_next_page(
    catalogue: None, case: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A text search counts its matches only up to TEXT_COUNT_LIMIT, or to the end
    of the page after the one asked when that is further: beyond, ``total`` is that
    lower bound with ``total_exact`` false, so a client paging on is always
    promised its next page; the retired resources and the inactive institute's
    among the matches (the fixture's) are never counted."""
    monkeypatch.setattr(search_tiers, "TEXT_COUNT_LIMIT", 3)
    f = ResourceFilters(**case)
    full = _full(f)
    for per_page in (1, 2, 5):
        for page in range(1, len(full) // per_page + 3):
            result = search_resources(f, page=page, per_page=per_page)
            start = (page - 1) * per_page
            assert [r.id for r in result.items] == full[start : start + per_page]
            limit = max(3, (page + 1) * per_page)
            assert result.total == min(len(full), limit), (per_page, page)
            assert result.total_exact is (len(full) <= limit), (per_page, page)
            if result.items and not result.total_exact:
                assert result.total >= start + per_page + 1  # the next page is promised


def test_a_short_or_empty_text_search_sends_no_tier_probe(catalogue: None) -> None:
    """A page that holds the last of the exact and name tiers' rows, when the
    count says they are all the matches, is one statement; a search that matches
    nothing is two (the page, then the count), not the four probes of the tiers."""
    with _Sent() as sent:
        result = search_resources(ResourceFilters(q="万用表"), page=1, per_page=50)
    assert len(result.items) == 6 and result.total == 6 and result.total_exact
    assert _selects(sent) == 1
    with _Sent() as sent:
        result = search_resources(ResourceFilters(q="nothing"), page=1, per_page=20)
    assert result.items == [] and result.total == 0 and result.total_exact
    assert _selects(sent) == 2


def _selects(sent: _Sent) -> int:
    return sum(s.lstrip().upper().startswith("SELECT") for s in sent.statements)
