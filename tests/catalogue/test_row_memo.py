"""The search's page rows and their JSON kept per process at the catalogue's version
(labshare/catalogue/row_memo.py), on both databases: a page kept costs the version's
read alone, with or without the answer cache; every catalogue change (a name, a
status, the lab's booking rules, the institute) is in the next answer, which is
byte for byte what a process that keeps nothing computes; the memo's bounds."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import text

from labshare.api import search_answer
from labshare.api.schemas import ResourceQuery
from labshare.api.serialize import page_json, resource_row_json
from labshare.booking.rules import DEFAULT
from labshare.catalogue import row_memo, search_cache, text_index
from labshare.catalogue.search_result import SearchResult
from labshare.extensions import db as _db
from tests.helpers import sent_statements

PATH = "/api/v1/resources"
CAPABILITY = {"measurand": "pressure", "value": "5", "unit": "MPa"}
TEXT = {"q": "压力"}


@pytest.fixture
def memo(app: Flask) -> row_memo.RowMemo:
    app.extensions.pop(row_memo.EXTENSION, None)
    found = row_memo.memo_of(app)
    assert found.size == row_memo.DEFAULT_ROWS  # on, as configured by default
    return found


@pytest.fixture
def catalogue(db: Any, make_lab: Any, make_instrument: Any) -> list[int]:
    lab = make_lab(rules={"slot_minutes": 30})
    made = [
        make_instrument(lab=lab, name=f"压力校验仪{n}", name_en=f"Pressure calibrator {n}")
        for n in range(3)
    ]
    db.session.commit()
    return [i.id for i in made]


@pytest.fixture
def texts(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Iterator[text_index.TextIndex]:
    """Text searches ranked from the snapshot in memory (``ready`` builds it)."""
    monkeypatch.setitem(app.config, "TEXT_INDEX", True)
    store = text_index.index_of(app)
    yield store
    store.clear()


def ready(store: text_index.TextIndex) -> None:
    """The text snapshot of the catalogue now."""
    store.refresh(wait=True)
    assert store.snapshot is not None and not store.stale


def _get(client: Any, **params: Any) -> bytes:
    _db.session.remove()  # a server's request has a session of its own
    response = client.get(PATH, query_string=params)
    assert response.status_code == 200, response.get_data(as_text=True)
    return bytes(response.get_data())


def _fresh(app: Flask, client: Any, **params: Any) -> bytes:
    """What a process that keeps no row (and no answer) computes now."""
    kept = app.extensions.pop(row_memo.EXTENSION)
    cache = app.extensions.pop(search_cache.EXTENSION, None)
    size, budget = app.config.get("SEARCH_ROW_MEMO"), app.config.get("SEARCH_CACHE_BYTES")
    app.config["SEARCH_ROW_MEMO"], app.config["SEARCH_CACHE_BYTES"] = 0, 0
    try:
        return _get(client, **params)
    finally:
        app.config["SEARCH_ROW_MEMO"], app.config["SEARCH_CACHE_BYTES"] = size, budget
        app.extensions[row_memo.EXTENSION] = kept
        app.extensions.pop(search_cache.EXTENSION, None)
        if cache is not None:
            app.extensions[search_cache.EXTENSION] = cache


def _selects(client: Any, **params: Any) -> tuple[bytes, list[str]]:
    with sent_statements() as sent:
        body = _get(client, **params)
    return body, [s for s in sent if s.startswith("SELECT")]


def _names(body: bytes) -> list[str]:
    return [item["name"] for item in json.loads(body)["items"]]


@pytest.mark.parametrize("params", [CAPABILITY, TEXT], ids=["capability", "text"])
def test_a_kept_page_costs_the_versions_read_alone(
    app: Flask,
    client: Any,
    memo: Any,
    catalogue: list[int],
    answer_cache: bool,
    params: Any,
    texts: text_index.TextIndex,
) -> None:
    ready(texts)
    _get(client, **params)  # the capability index's list
    _get(client, **params, per_page=19)  # the page's rows, read and kept
    body, selects = _selects(client, **params, per_page=18)
    assert len(selects) == 1 and selects[0].startswith("SELECT catalogue_version.version")
    assert sorted(json.loads(body)["items"][n]["id"] for n in range(3)) == catalogue
    assert body == _fresh(app, client, **params, per_page=18)


@pytest.mark.parametrize(
    "change, seen",
    [
        ("UPDATE resource SET name = '压力校验仪新' WHERE id = :id", ("name", "压力校验仪新")),
        ("UPDATE resource SET status = 'maintenance' WHERE id = :id", ("status", "maintenance")),
        (
            "UPDATE booking_rules SET slot_minutes = 45 WHERE resource_id ="
            " (SELECT lab_id FROM instrument WHERE id = :id)",
            ("rules", 45),
        ),
        (
            "UPDATE institute SET name = '新计量院' WHERE id ="
            " (SELECT institute_id FROM resource WHERE id = :id)",
            ("institute", "新计量院"),
        ),
    ],
    ids=["name", "status", "lab rules", "institute"],
)
@pytest.mark.parametrize("params", [CAPABILITY, TEXT], ids=["capability", "text"])
def test_a_catalogue_change_is_in_the_next_answer(
    app: Flask,
    client: Any,
    memo: Any,
    catalogue: list[int],
    answer_cache: bool,
    params: Any,
    change: str,
    seen: tuple[str, Any],
    texts: text_index.TextIndex,
) -> None:
    ready(texts)
    for per_page in (20, 19, 18):  # kept
        _get(client, **params, per_page=per_page)
    with _db.engine.begin() as conn:  # another process's change
        conn.execute(text(change), {"id": catalogue[0]})
    body = _get(client, **params, per_page=17)
    item = next(i for i in json.loads(body)["items"] if i["id"] == catalogue[0])
    key, value = seen
    got = {
        "name": item["name"],
        "status": item["status"],
        "rules": item["rules"]["slot_minutes"],
        "institute": item["institute"]["name"],
    }[key]
    assert got == value
    assert body == _fresh(app, client, **params, per_page=17)
    # and kept again at the new version (the text snapshot taken again): the
    # version's read alone
    ready(texts)
    assert _get(client, **params, per_page=16) == _fresh(app, client, **params, per_page=16)
    body, selects = _selects(client, **params, per_page=15)
    assert len(selects) == 1 and body == _fresh(app, client, **params, per_page=15)


def test_a_version_moved_on_reads_no_row_for_nothing(
    app: Flask, client: Any, memo: Any, catalogue: list[int], no_answer_cache: None
) -> None:
    """A page kept at the list's version, and the version moved on: the list is out
    of date too, so the first statement (the version) ends that path; the usual one
    reads the version, the list and the rows."""
    _get(client, **CAPABILITY)
    _get(client, **CAPABILITY, per_page=19)
    with _db.engine.begin() as conn:
        conn.execute(text("UPDATE resource SET name = '改名' WHERE id = :id"), {"id": catalogue[1]})
    body, selects = _selects(client, **CAPABILITY, per_page=19)
    assert "改名" in _names(body)
    assert len(selects) == 4, selects
    assert selects[0].startswith("SELECT catalogue_version.version")


def test_off_it_keeps_nothing(
    app: Flask, client: Any, catalogue: list[int], no_answer_cache: None
) -> None:
    app.config["SEARCH_ROW_MEMO"] = 0
    app.extensions.pop(row_memo.EXTENSION, None)
    for _ in range(3):
        _get(client, **CAPABILITY)
    _body, selects = _selects(client, **CAPABILITY)
    assert len(selects) == 1 and selects[0].startswith("SELECT resource.id"), selects
    assert not row_memo.memo_of(app).rows and not row_memo.memo_of(app).items


def test_a_missing_version_row_keeps_nothing(
    app: Flask, client: Any, memo: Any, catalogue: list[int], no_answer_cache: None
) -> None:
    """Rows read with no version (the row deleted by hand) are not kept, and rows kept
    before are not served: the version read (none) is not theirs."""
    _get(client, **CAPABILITY)
    _get(client, **CAPABILITY, per_page=19)
    before = dict(memo.rows)
    assert before
    with _db.engine.begin() as conn:
        conn.execute(
            text("UPDATE resource SET name = '无版本' WHERE id = :id"), {"id": catalogue[2]}
        )
        conn.execute(text("DELETE FROM catalogue_version"))  # after: a change writes it
    for per_page in (19, 18):
        body = _get(client, **CAPABILITY, per_page=per_page)
        assert "无版本" in _names(body)
    assert dict(memo.rows) == before and all(memo.rows[i] is k for i, k in before.items())


def test_rows_read_without_a_version_are_not_kept(
    app: Flask, memo: Any, catalogue: list[int]
) -> None:
    from labshare.catalogue import search_pages

    _db.session.execute(text("DELETE FROM catalogue_version"))
    found = search_pages.load_rows_at(catalogue, 1)
    assert found is not None and [r[0] for r in found[0]] == catalogue and found[2] is None
    assert not memo.rows and memo.reads == 3


def test_rows_read_after_a_change_are_not_kept_under_the_version_before_it(
    app: Flask, memo: Any, catalogue: list[int]
) -> None:
    """A request that read the version before a change and its rows after it: the rows
    are the later state, so they are not kept under the earlier version (a page of
    them and of rows kept before the change would mix two states)."""
    from labshare.catalogue import search_pages

    before = search_cache.version()
    _db.session.remove()  # the rows in a statement of their own, after the change
    with _db.engine.begin() as conn:
        conn.execute(text("UPDATE resource SET name = '改后' WHERE id = :id"), {"id": catalogue[0]})
    with search_cache.known_version(before):
        rows, _rules = search_pages.load_rows(catalogue)
    assert rows[0][2] == "改后" and not memo.rows
    _db.session.remove()
    after = search_cache.version()
    assert after != before
    with search_cache.known_version(after):
        search_pages.load_rows(catalogue)
    assert sorted(memo.rows) == catalogue and {k.version for k in memo.rows.values()} == {after}


def test_a_page_with_a_row_missing_or_at_two_versions_is_not_kept() -> None:
    memo = row_memo.RowMemo(10)
    memo.put(1, [(1, "a"), (2, "b")], {1: DEFAULT, 2: DEFAULT})
    memo.put(2, [(3, "c")], {3: DEFAULT})
    assert memo.page([1, 2]) == (1, [memo.rows[1], memo.rows[2]])
    assert memo.page([1, 2, 4]) is None  # 4 not kept
    assert memo.page([1, 3]) is None  # two versions
    assert memo.page([]) is None


def test_it_keeps_at_most_its_size_least_recently_used_dropped() -> None:
    memo = row_memo.RowMemo(3)
    memo.put(1, [(1,), (2,), (3,)], {1: DEFAULT, 2: DEFAULT, 3: DEFAULT})
    assert memo.page([1]) is not None  # used: 2 is the least recently used now
    memo.put(1, [(4,)], {4: DEFAULT})
    assert sorted(memo.rows) == [1, 3, 4]
    for n in range(5, 9):
        memo.item((n,), DEFAULT, lambda row, _rules: str(row[0]).encode())
    assert sorted(memo.items) == [6, 7, 8]


def test_an_item_is_made_again_for_another_row_object() -> None:
    """Kept for the very row and rules it was made from: an equal row read again (a
    value may print otherwise: 1.0 and 1 are equal) or other rules make it again."""
    memo = row_memo.RowMemo(10)
    made: list[Any] = []

    def encode(row: Any, rules: Any) -> bytes:
        made.append(row)
        return repr(row).encode()

    row = (1, 1.0)
    assert memo.item(row, DEFAULT, encode) == b"(1, 1.0)"
    assert memo.item(row, DEFAULT, encode) == b"(1, 1.0)"
    assert len(made) == 1
    assert memo.item((1, 1), DEFAULT, encode) == b"(1, 1)"
    other = DEFAULT.__class__(**{**DEFAULT.__dict__, "slot_minutes": 45})
    memo.item((1, 1), other, encode)
    assert len(made) == 3


def test_an_item_kept_holds_its_own_size(app: Flask) -> None:
    """orjson's bytes keep the whole buffer they were written in (8 KB for a 2 KB
    item): a kept item is a copy of its own size."""
    memo = row_memo.RowMemo(500)
    encode = app.json.encode  # type: ignore[attr-defined]
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for n in range(200):
            memo.item((n,), DEFAULT, lambda row, _r: encode({"name": "压力" * 300, "id": row[0]}))
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    held = sum(s.size_diff for s in after.compare_to(before, "filename"))
    assert 200 * 1800 < held < 200 * 3000, held


@pytest.mark.parametrize("exact", [True, False])
def test_an_answer_joined_from_kept_items_is_the_documents_encoding(
    app: Flask, memo: Any, catalogue: list[int], exact: bool
) -> None:
    """The items' bytes joined, with the rest of the page, are the bytes of the whole
    document encoded (its keys sorted; ``total_exact`` only when the count is not);
    an indented (debug) answer is the whole document's."""
    from labshare.catalogue import search_pages

    rows, rules = search_pages.load_rows(catalogue)
    result = SearchResult(rows, total=41, rules=rules, total_exact=exact)
    query = ResourceQuery.model_validate({"page": "2", "per_page": "3"})
    joined = search_answer._body(result, query)
    assert len(memo.items) == 3
    doc = page_json([resource_row_json(r, rules[r[0]]) for r in rows], 41, 2, 3)
    if not exact:
        doc["total_exact"] = False
    assert joined == app.json.body(doc)  # type: ignore[attr-defined]
    assert search_answer._body(result, query) == joined  # from the items kept
    app.json.compact = False  # type: ignore[attr-defined]
    try:
        memo.size = 10
        indented = search_answer._body(result, query)
    finally:
        app.json.compact = None  # type: ignore[attr-defined]
    assert b"\n  " in indented and json.loads(indented) == doc
