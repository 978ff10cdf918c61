"""A capability search with a window cuts its page from the rows read with the
free-time candidates (catalogue/free_page.py), not from a read of its own: the API's
answer is still byte for byte the one built from ORM instances, on every page, and
the page costs no statement beyond the candidates' and their calendars' (none of
either when they are kept, catalogue/free_memo.py)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event

from labshare.catalogue import free_memo
from labshare.extensions import db as _db
from labshare.timeutil import set_clock
from tests.api.test_search_rows import (
    WINDOW,
    _orm_answer,
    catalogue,  # noqa: F401 - a fixture
)
from tests.helpers import NOW

FIT = {"measurand": "pressure", "value": 5.0, "unit": "MPa"}


@pytest.mark.usefixtures("catalogue", "no_answer_cache")
@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_the_window_page_from_the_candidates_is_the_orm_answer(
    app: Any,
    client: Any,
    lang: str,
) -> None:
    set_clock(lambda: NOW)
    seen = 0
    for page, per_page in ((1, 20), (1, 2), (2, 2), (3, 2)):
        query = {
            **FIT,
            **{k: v.isoformat() for k, v in WINDOW.items()},
            "page": page,
            "per_page": per_page,
        }
        response = client.get(
            "/api/v1/resources", query_string=query, headers={"Accept-Language": lang}
        )
        assert response.status_code == 200, response.get_json()
        expected = _orm_answer(app, lang, {**FIT, **WINDOW}, page, per_page, False)
        assert response.get_data() == expected, query
        seen += len(response.get_json()["items"])
    assert seen >= 6


@pytest.mark.usefixtures("catalogue", "no_answer_cache")
@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_a_facet_page_from_the_week_candidates_is_the_orm_answer(
    app: Any, client: Any, lang: str
) -> None:
    """With facets, the "free this week" candidates are the page's available matches
    read with their rows: a page of available matches is cut from them."""
    set_clock(lambda: NOW)
    for q, page, per_page in (("压力表", 1, 20), ("压力表", 2, 2), ("校准", 1, 20)):
        query = {"q": q, "facets": "true", "page": page, "per_page": per_page}
        response = client.get(
            "/api/v1/resources", query_string=query, headers={"Accept-Language": lang}
        )
        assert response.status_code == 200, response.get_json()
        expected = _orm_answer(app, lang, {"q": q}, page, per_page, True)
        assert response.get_data() == expected, query


@pytest.mark.usefixtures("catalogue", "no_answer_cache")
def test_the_window_page_needs_no_read_of_its_own(
    app: Any,
    client: Any,
) -> None:
    set_clock(lambda: NOW)
    statements: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    query = {**FIT, **{k: v.isoformat() for k, v in WINDOW.items()}}
    client.get("/api/v1/resources", query_string=query)  # builds the capability index
    with app.app_context():
        engine = _db.engine

    def counted() -> list[str]:
        statements.clear()
        event.listen(engine, "before_cursor_execute", before)
        try:
            response = client.get("/api/v1/resources", query_string=query)
        finally:
            event.remove(engine, "before_cursor_execute", before)
        assert len(response.get_json()["items"]) >= 3
        return [s for s in statements if s != "BEGIN"]

    # nothing kept: the candidates' stamps (with the catalogue's version: the list
    # of matches is the one kept), the candidates with their rows, their calendars
    free_memo.memo_of(app).clear()
    assert len(counted()) == 3, statements
    # the candidates and their calendars kept (free_memo.py): the stamps alone
    assert len(counted()) == 1, statements
