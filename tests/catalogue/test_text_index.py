"""Text searches answered from the tokens each process keeps in memory
(labshare/catalogue/text_index.py): every page and count the database's ranking
gives, on SQLite and PostgreSQL; never at another catalogue version than the
database's; the database answers whatever the index does not."""

from __future__ import annotations

import dataclasses
import gc
import random
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import delete, select, update

from labshare.catalogue import (
    search,
    search_cache,
    search_index,
    search_pages,
    search_tiers,
    text_index,
    text_snapshot,
)
from labshare.catalogue.search import COUNT_LIMIT, ResourceFilters, search_resources
from labshare.extensions import db
from labshare.models import CatalogueVersion, Institute, Resource, ResourceStatus
from tests.catalogue.test_search_tiers import CASES, catalogue  # noqa: F401 - the fixture
from tests.helpers import sent_statements, threads_started


@pytest.fixture
def index(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Iterator[text_index.TextIndex]:
    monkeypatch.setitem(app.config, "TEXT_INDEX", True)
    store = text_index.index_of(app)
    yield store
    store.clear()


def _ready(store: text_index.TextIndex) -> None:
    store.refresh(wait=True)
    assert store.snapshot is not None


def _full(f: ResourceFilters) -> list[int]:
    ranked, _keys = search._ranked(f)
    return list(db.session.scalars(select(ranked.subquery().c.id)))


def _page(f: ResourceFilters, page: int, per_page: int) -> tuple[list[int], int, bool]:
    result = search_resources(f, page=page, per_page=per_page)
    assert set(result.rules) == {r.id for r in result.items}
    return [r.id for r in result.items], result.total, result.total_exact


def _expected(full: list[int], page: int, per_page: int) -> tuple[list[int], int, bool]:
    """What the database's search answers for ``page`` of the ranking ``full``."""
    limit = min(COUNT_LIMIT, search_tiers.count_limit(page, per_page))
    start = (page - 1) * per_page
    return full[start : start + per_page], min(len(full), limit), len(full) <= limit


@pytest.mark.parametrize("case", CASES, ids=[str(c) for c in CASES])
def test_every_page_is_the_full_rankings(
    catalogue: None,  # noqa: F811
    index: text_index.TextIndex,
    case: dict[str, Any],
) -> None:
    _ready(index)
    f = ResourceFilters(**case)
    simple = search_tiers.simple(f) and not f.near_province
    full = _full(f)
    for per_page in (1, 2, 3, 5, 7, 50):
        for page in range(1, len(full) // per_page + 3):
            served = index.served
            assert _page(f, page, per_page) == _expected(full, page, per_page), (per_page, page)
            # words alone come from memory; any other filter from the database
            assert index.served == served + simple


def test_the_count_stops_where_the_databases_stops(
    db: Any, index: text_index.TextIndex, make_lab: Any, make_instrument: Any
) -> None:
    lab = make_lab(name="力学实验室")
    for n in range(search_tiers.TEXT_COUNT_LIMIT + 5):
        make_instrument(lab=lab, name=f"压力计{n}", name_en=None, model=None)
    db.session.commit()
    _ready(index)
    full = _full(ResourceFilters(q="压力"))
    for page, per_page in ((1, 20), (5, 20), (6, 20), (1, 200), (2, 60)):
        assert _page(ResourceFilters(q="压力"), page, per_page) == _expected(full, page, per_page)
    assert index.served == 5
    # beyond the count's limit, "more than"
    assert _page(ResourceFilters(q="压力"), 1, 20)[1:] == (search_tiers.TEXT_COUNT_LIMIT, False)


#: Words the random catalogue's names are made of: Chinese, English, one with a
#: capital that only Unicode lower-cases (Ω), pinyin-bearing pairs.
_ZH = ["压力", "温度", "计", "校验", "仪", "数字", "恒温", "油槽", "标准", "硬度", "测量", "三坐标"]
_EN = ["pressure", "gauge", "Digital", "ΩMeter", "calibrator", "bath", "Precision", "press"]
_QUERIES = [
    "压", "压力", "计", "校验仪", "数字压力计", "恒温油槽", "三坐标", "yali", "wendu", "szb",
    "pressure", "pres", "press", "gauge", "digital", "Ωmeter", "ωmeter", "ΩMeter", "cal",
    "压力 温度", "压力 gauge", "sanzuobiao", "标准压力计", "温度", "temperature", "huh",
    "江苏", "实验室", "force", "hengwen",
]  # fmt: skip


def test_random_catalogues_rank_as_the_database(
    db: Any,
    app: Flask,
    index: text_index.TextIndex,
    make_institute: Any,
    make_lab: Any,
    make_instrument: Any,
) -> None:
    """Random names, models, measurands, retired resources and a closed institute:
    each query's pages from memory are the database's (the index off)."""
    rng = random.Random(20261205)
    institutes = [
        make_institute(name="江苏计量院", name_en="Jiangsu"),
        make_institute(name="广东院", name_en="Guangdong Ω", city="广州"),
        make_institute(name="关闭的院", active=False),
    ]
    labs = [make_lab(institute=i, name=f"{rng.choice(_ZH)}实验室") for i in institutes]
    measurands = [("pressure", "MPa"), ("temperature", "°C"), ("force", "N"), ("voltage", "V")]

    def words(pool: list[str], n: int) -> str:
        return "".join(rng.choice(pool) for _ in range(n))

    names = [words(_ZH, rng.randint(1, 3)) for _ in range(12)]
    for _ in range(90):
        measurand, unit = rng.choice(measurands)
        name = rng.choice(names) if rng.random() < 0.5 else words(_ZH, rng.randint(1, 3))
        make_instrument(
            lab=rng.choice(labs),
            name=name,
            name_en=rng.choice([None, " ".join(rng.sample(_EN, 2)), rng.choice(_EN)]),
            model=rng.choice([None, "PG-1", "Ω-9", f"{rng.choice(_EN)}-{rng.randint(1, 9)}"]),
            manufacturer=rng.choice([None, "Fluke", "压力仪表厂"]),
            measurand=measurand,
            unit=unit,
            status=ResourceStatus.RETIRED if rng.random() < 0.1 else ResourceStatus.AVAILABLE,
        )
    db.session.commit()
    _ready(index)
    for q in _QUERIES:
        f = ResourceFilters(q=q)
        full = _full(f)
        for per_page in (1, 4, 20):
            for page in range(1, min(len(full) // per_page + 2, 6)):
                served = index.served
                got = _page(f, page, per_page)
                assert index.served == served + 1, q
                assert got == _expected(full, page, per_page), (q, page, per_page)
                app.config["TEXT_INDEX"] = False
                assert _page(f, page, per_page) == got, (q, page, per_page)
                app.config["TEXT_INDEX"] = True


def test_exact_names_compare_as_the_database_lowercases(
    db: Any, index: text_index.TextIndex, make_lab: Any, make_instrument: Any
) -> None:
    """SQLite's lower() leaves Ω as it is, PostgreSQL's may not: the index keeps
    the names as the database lower-cased them, so the exact tier is the database's."""
    lab = make_lab(name="电学实验室")
    make_instrument(lab=lab, name="标准电阻 Ωmeter", name_en=None, model=None)
    make_instrument(lab=lab, name="Ωmeter", name_en=None, model=None)
    make_instrument(lab=lab, name="ωMETER 标准", name_en="ΩMeter", model=None)
    # its name is the query, but its one word is longer than a token may be: no match
    make_instrument(lab=lab, name="m" * 70, name_en=None, model=None, measurand="voltage", unit="V")
    db.session.commit()
    _ready(index)
    for q in ("Ωmeter", "ωmeter", "ΩMETER", "Ωmeter ", "m" * 70):
        f = ResourceFilters(q=q)
        assert _page(f, 1, 20) == _expected(_full(f), 1, 20), q


def test_a_catalogue_change_sends_searches_to_the_database_until_read_again(
    db: Any, index: text_index.TextIndex, make_lab: Any, make_instrument: Any
) -> None:
    lab = make_lab(name="热学实验室")
    kw: dict[str, Any] = {"model": None, "measurand": "temperature", "unit": "°C"}
    first = make_instrument(lab=lab, name="压力计", **kw)
    db.session.commit()
    _ready(index)
    assert _page(ResourceFilters(q="压力"), 1, 20)[0] == [first.id]
    assert index.served == 1
    # in the same transaction as the edit: the version moved with it
    second = make_instrument(lab=lab, name="数字压力计", **kw)
    assert _page(ResourceFilters(q="压力"), 1, 20)[0] == [first.id, second.id]
    assert index.served == 1
    db.session.commit()
    # committed: still the database's answer, while the index is not read again
    # (a read was asked in the background; none is made within REBUILD_SECONDS)
    index.started = float("inf")  # no thread in this test
    first.name = "温度计"
    db.session.commit()
    assert _page(ResourceFilters(q="压力"), 1, 20)[0] == [second.id]
    assert index.served == 1
    _ready(index)
    assert _page(ResourceFilters(q="压力"), 1, 20)[0] == [second.id]
    assert _page(ResourceFilters(q="温度"), 1, 20)[0] == [first.id, second.id]  # name, measurand
    assert index.served == 3
    # retired, or its institute closed: gone from the index read next
    db.session.execute(
        update(Resource).where(Resource.id == second.id).values(status=ResourceStatus.RETIRED)
    )
    db.session.execute(
        update(Institute).where(Institute.id == lab.institute_id).values(active=False)
    )
    db.session.commit()
    _ready(index)
    assert index.snapshot is not None and index.snapshot.resources == 0
    assert _page(ResourceFilters(q="温度"), 1, 20)[0] == []
    assert index.served == 4


def test_a_stale_index_is_read_again_in_a_thread_at_most_every_so_often(
    db: Any, index: text_index.TextIndex, make_lab: Any, make_instrument: Any, monkeypatch: Any
) -> None:
    lab = make_lab(name="力学实验室")
    make_instrument(lab=lab, name="压力计", model=None)
    db.session.commit()
    started = threads_started(monkeypatch)
    assert _page(ResourceFilters(q="压力"), 1, 20)[1] == 1  # the database answers
    assert len(started) == 1 and started[0].name == "labshare-text-index"
    started[0].join(30)
    assert index.snapshot is not None and index.builds == 1
    assert _page(ResourceFilters(q="压力"), 1, 20)[1] == 1
    assert index.served == 1
    # changed again: within REBUILD_SECONDS of the last read no thread starts
    make_instrument(lab=lab, name="数字压力计", model=None)
    db.session.commit()
    assert _page(ResourceFilters(q="压力"), 1, 20)[1] == 2
    assert len(started) == 1 and index.served == 1
    monkeypatch.setattr(text_index, "REBUILD_SECONDS", 0.0)
    assert _page(ResourceFilters(q="压力"), 1, 20)[1] == 2
    assert len(started) == 2
    started[1].join(30)
    assert _page(ResourceFilters(q="压力"), 1, 20)[1] == 2
    assert index.served == 2 and index.builds == 2


def test_what_the_index_does_not_answer_goes_to_the_database(
    db: Any,
    index: text_index.TextIndex,
    make_lab: Any,
    make_instrument: Any,
    monkeypatch: Any,
) -> None:
    lab = make_lab(name="力学实验室")
    for word in ("pressure", "press", "preset", "precise"):
        make_instrument(
            lab=lab, name=f"{word} gauge", name_en=None, model=None, measurand="voltage", unit="V"
        )
    db.session.commit()
    _ready(index)
    f = ResourceFilters(q="pre")
    full = _full(f)
    assert len(full) == 4
    assert _page(f, 1, 20) == _expected(full, 1, 20)
    assert index.served == 1
    # a prefix of more words than MAX_PREFIX_WORDS
    monkeypatch.setattr(text_snapshot, "MAX_PREFIX_WORDS", 2)
    assert _page(f, 1, 20) == _expected(full, 1, 20)
    assert _page(ResourceFilters(q="pres"), 1, 20) == _expected(full[:3], 1, 20)
    assert index.served == 1
    assert _page(ResourceFilters(q="press"), 1, 20) == _expected(full[:2], 1, 20)
    assert index.served == 2
    # a page past TIERED_LIMIT
    monkeypatch.setattr(search_tiers, "TIERED_LIMIT", 3)
    assert _page(ResourceFilters(q="gauge"), 2, 2) == _expected(full, 2, 2)
    assert index.served == 2
    # the searcher's province, or another filter
    assert _page(ResourceFilters(q="gauge", near_province="320000"), 1, 2)[0] == full[:2]
    assert _page(ResourceFilters(q="gauge", kind=lab.kind), 1, 2)[0] == []
    assert index.served == 2


def test_a_failed_read_leaves_the_database_answering(
    db: Any, index: text_index.TextIndex, make_lab: Any, make_instrument: Any, monkeypatch: Any
) -> None:
    make_instrument(lab=make_lab(name="力学实验室"), name="压力计", model=None)
    db.session.commit()

    def broken(_engine: Any) -> None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(text_index, "read", broken)
    index.refresh(wait=True)
    assert index.snapshot is None and not index.building
    assert _page(ResourceFilters(q="压力"), 1, 20)[1] == 1
    assert index.served == 0


def test_without_a_version_row_nothing_is_kept(
    db: Any, index: text_index.TextIndex, make_lab: Any, make_instrument: Any
) -> None:
    make_instrument(lab=make_lab(name="力学实验室"), name="压力计", model=None)
    db.session.commit()
    db.session.execute(delete(CatalogueVersion))
    db.session.commit()
    index.refresh(wait=True)
    assert index.snapshot is None and index.builds == 1
    assert _page(ResourceFilters(q="压力"), 1, 20)[1] == 1
    assert index.served == 0


def test_off_by_configuration(
    db: Any, app: Flask, make_lab: Any, make_instrument: Any, monkeypatch: Any
) -> None:
    make_instrument(lab=make_lab(name="力学实验室"), name="压力计", model=None)
    db.session.commit()
    monkeypatch.setitem(app.config, "TEXT_INDEX", False)
    assert text_index.index() is None
    assert _page(ResourceFilters(q="压力"), 1, 20)[1] == 1
    assert text_index.index_of(app).builds == 0


def test_the_api_answers_from_memory(
    db: Any, client: Any, index: text_index.TextIndex, make_lab: Any, make_instrument: Any
) -> None:
    lab = make_lab(name="力学实验室")
    ids = [make_instrument(lab=lab, name=f"压力计{n}", model=None).id for n in range(3)]
    db.session.commit()
    _ready(index)
    body = client.get("/api/v1/resources", query_string={"q": "yali", "per_page": 2}).get_json()
    assert [r["id"] for r in body["items"]] == ids[:2]
    assert body["total"] == 3 and "total_exact" not in body
    assert index.served == 1


def test_an_uncached_search_reads_its_rows_and_the_version_in_one_statement(
    db: Any,
    client: Any,
    app: Flask,
    index: text_index.TextIndex,
    make_lab: Any,
    make_instrument: Any,
    no_answer_cache: None,
) -> None:
    lab = make_lab(name="力学实验室")
    ids = [make_instrument(lab=lab, name=f"压力计{n}", model=None).id for n in range(3)]
    db.session.commit()
    _ready(index)
    with sent_statements() as sent:
        body = client.get("/api/v1/resources", query_string={"q": "压力"}).get_json()
    assert [r["id"] for r in body["items"]] == ids
    assert index.served == 1
    assert len([s for s in sent if s.startswith("SELECT")]) == 1, sent
    # no match: the version alone
    with sent_statements() as sent:
        assert client.get("/api/v1/resources", query_string={"q": "温"}).get_json()["total"] == 0
    assert index.served == 2
    assert len([s for s in sent if s.startswith("SELECT")]) == 1, sent
    # rows read at another version than the snapshot's: the database answers
    assert index.snapshot is not None
    index.snapshot = dataclasses.replace(index.snapshot, version=index.snapshot.version + 1)
    body = client.get("/api/v1/resources", query_string={"q": "压力", "per_page": 1}).get_json()
    assert [r["id"] for r in body["items"]] == ids[:1] and body["total"] == 3
    assert index.served == 2


def test_a_measurand_matched_by_a_prefix_ranks_before_the_rest(
    db: Any, index: text_index.TextIndex, make_lab: Any, make_instrument: Any
) -> None:
    lab = make_lab(name="电学实验室")
    maker = make_instrument(
        lab=lab, name="万用表", name_en=None, model=None, manufacturer="Pressman",
        measurand="voltage", unit="V",
    )  # fmt: skip
    measurand = make_instrument(lab=lab, name="校验仪", name_en=None, model=None)  # pressure
    db.session.commit()
    _ready(index)
    assert _page(ResourceFilters(q="pres"), 1, 20)[0] == [measurand.id, maker.id]
    assert index.served == 1


def test_a_search_that_would_take_too_long_in_memory_is_left_to_the_database(
    db: Any, index: text_index.TextIndex, make_lab: Any, make_instrument: Any, monkeypatch: Any
) -> None:
    """Prefixes that match much but rarely together: each walked id asks every other
    list; past WORK_LIMIT steps the database answers (one GIN or FTS5 lookup)."""
    lab = make_lab(name="电学实验室")
    kw: dict[str, Any] = {"name_en": None, "model": None, "measurand": "voltage", "unit": "V"}
    for n in range(30):
        make_instrument(lab=lab, name=f"bia{n} gauge", **kw)
        make_instrument(lab=lab, name=f"zz{n} gauge", **kw)
    both = make_instrument(lab=lab, name="bia zz gauge", **kw)
    db.session.commit()
    _ready(index)
    f = ResourceFilters(q="bia-zz")
    assert _page(f, 1, 20)[0] == [both.id]
    assert index.served == 1
    monkeypatch.setattr(text_snapshot, "WORK_LIMIT", 20)
    assert _page(f, 1, 20)[0] == [both.id]
    assert index.served == 1
    # a word repeated is one piece: no more work than once
    monkeypatch.setattr(text_snapshot, "WORK_LIMIT", 200)
    assert _page(ResourceFilters(q="bia-" * 24 + "zz"), 1, 20)[0] == [both.id]
    assert index.served == 2


def test_a_snapshot_found_older_than_the_database_is_not_tried_again(
    db: Any,
    client: Any,
    index: text_index.TextIndex,
    make_lab: Any,
    make_instrument: Any,
    monkeypatch: Any,
    no_answer_cache: None,
) -> None:
    lab = make_lab(name="力学实验室")
    first = make_instrument(lab=lab, name="压力计", model=None)
    db.session.commit()
    _ready(index)
    reads: list[Any] = []
    real = search_pages.load_rows_at
    monkeypatch.setattr(
        search_pages, "load_rows_at", lambda ids, at: reads.append(ids) or real(ids, at)
    )

    def found() -> list[int]:
        body = client.get("/api/v1/resources", query_string={"q": "压力"}).get_json()
        return [r["id"] for r in body["items"]]

    assert found() == [first.id]
    assert len(reads) == 1 and index.served == 1
    index.started = float("inf")  # no new snapshot in this test
    second = make_instrument(lab=lab, name="数字压力计", model=None)
    db.session.commit()
    # the first search after the change finds out (its rows were read at another version)
    assert found() == [first.id, second.id]
    assert len(reads) == 2 and index.stale
    # the next ones go to the database at once: no rows read for nothing
    assert found() == [first.id, second.id]
    assert len(reads) == 2 and index.served == 1
    old = weakref.ref(index.snapshot)  # type: ignore[arg-type]
    _ready(index)
    assert not index.stale
    gc.collect()
    assert old() is None  # the outdated snapshot is not kept
    assert found() == [first.id, second.id]
    assert len(reads) == 3 and index.served == 2


def test_a_request_that_read_an_older_version_leaves_a_newer_snapshot_alone(
    db: Any, app: Flask, index: text_index.TextIndex, make_lab: Any, make_instrument: Any
) -> None:
    """With the answer cache on, the request reads the version at its start: a
    snapshot read since may be newer than that version, and is not outdated."""
    lab = make_lab(name="力学实验室")
    first = make_instrument(lab=lab, name="压力计", model=None)
    db.session.commit()
    before = search_cache.version()
    db.session.rollback()
    second = make_instrument(lab=lab, name="数字压力计", model=None)
    db.session.commit()
    _ready(index)
    with search_cache.known_version(before):  # began before the edit
        assert (
            text_index.text_page(ResourceFilters(q="压力"), search_index.parse("压力"), 1, 20, True)
            is None
        )
    assert not index.stale
    assert _page(ResourceFilters(q="压力"), 1, 20)[0] == [first.id, second.id]
    assert index.served == 1


def test_failed_reads_are_retried_less_often_and_logged_once_in_full(
    db: Any,
    index: text_index.TextIndex,
    monkeypatch: Any,
    caplog: Any,
    make_lab: Any,
) -> None:
    make_lab(name="力学实验室")
    db.session.commit()

    def broken(_engine: Any) -> None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(text_index, "read", broken)
    for expected in (2, 4, 8, 8):
        index.refresh(wait=True)
        assert index.backoff == expected
    assert index.failures == 4
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1
    assert "failed again (4 in a row)" in caplog.text
    monkeypatch.undo()
    monkeypatch.setitem(index.app.config, "TEXT_INDEX", True)
    index.refresh(wait=True)
    assert index.failures == 0 and index.snapshot is not None


def test_snapshots_that_answer_nothing_are_read_less_often(
    db: Any, index: text_index.TextIndex, make_lab: Any, make_instrument: Any
) -> None:
    lab = make_lab(name="力学实验室")
    make_instrument(lab=lab, name="压力计", model=None)
    db.session.commit()
    _ready(index)
    assert index.backoff == 1
    for expected in (2, 4, 8, 8):  # each read while the last had answered nothing
        _ready(index)
        assert index.backoff == expected
    index.started = float("-inf")
    assert _page(ResourceFilters(q="压力"), 1, 20)[1] == 1
    assert index.served == 1
    _ready(index)  # the last one answered: back to REBUILD_SECONDS
    assert index.backoff == 1
    # a stale snapshot within REBUILD_SECONDS x backoff of the last read starts no read
    index.backoff = 8
    index.started = text_index.time.monotonic() - text_index.REBUILD_SECONDS * 2
    index.refresh()
    assert not index.building
    index.backoff = 1
    index.started = text_index.time.monotonic() - text_index.REBUILD_SECONDS * 2
    with index.reading:  # the thread waits here until the test lets it go
        index.refresh()
        assert index.building
    for _ in range(300):
        if not index.building:
            break
        text_index.time.sleep(0.05)
    assert not index.building
