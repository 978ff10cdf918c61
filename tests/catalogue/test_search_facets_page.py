"""A search with facets and no window reads its page and its "free this week"
candidates from one ranked prefix: the page, the total and the week's count are
those of the search without facets and of ``has_free_slot``, also when the prefix
holds too few available matches (the candidates are then ranked further), and
for a page past the end. On SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from labshare.catalogue import search as search_module
from labshare.extensions import db as _db
from labshare.models import ResourceStatus
from labshare.timeutil import set_clock
from tests.factories import weekday_hours

#: Tuesday 1 January 2030, 08:00 in Shanghai.
NOW = dt.datetime(2030, 1, 1, 0, 0, tzinfo=dt.UTC)


@pytest.fixture
def clock(app: Any) -> Any:
    set_clock(lambda: NOW)
    yield
    set_clock(None)


def _get(client: Any, **params: Any) -> Any:
    _db.session.remove()
    response = client.get("/api/v1/resources", query_string={"kind": "instrument", **params})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def _same_page(client: Any, **params: Any) -> list[dict[str, Any]]:
    """The facets' answer, checked against the same search without facets."""
    with_facets = _get(client, facets="true", **params)
    plain = _get(client, **params)
    facets = with_facets.pop("facets")
    assert with_facets == plain
    return list(facets["free_this_week"])


@pytest.mark.parametrize("busy", [0, 40, 66])
def test_the_page_and_the_week_from_one_prefix(
    client: Any, clock: Any, make_lab: Any, make_instrument: Any, busy: int
) -> None:
    lab = make_lab(hours=weekday_hours("08:00", "18:00"))
    # the best-ranked (lowest ids) in maintenance: with 66 of them the prefix
    # (page + twice the week's limit) holds no available match at all
    for n in range(70):
        make_instrument(lab=lab, status=ResourceStatus.MAINTENANCE if n < busy else "available")
    _db.session.commit()
    free = 70 - busy
    week = _same_page(client)
    exact = free <= search_module.FREE_WEEK_LIMIT
    assert week == [
        {
            "value": "true",
            "label": "Free this week",
            "count": min(free, search_module.FREE_WEEK_LIMIT),
            **({} if exact else {"count_exact": False}),
        }
    ]
    assert _same_page(client, page=3, per_page=7) == week
    assert _same_page(client, page=40) == week  # past the end: no items, same total


def test_no_match_and_nothing_free(
    client: Any, clock: Any, make_lab: Any, make_instrument: Any
) -> None:
    assert _same_page(client) == []
    lab = make_lab(hours=weekday_hours("08:00", "18:00", range(5, 7)))  # weekends only
    make_instrument(lab=lab, calibration_valid_until=dt.date(2029, 12, 31))
    _db.session.commit()
    assert _same_page(client) == []
