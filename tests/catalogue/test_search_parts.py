"""A search with facets is computed every time (its "free this week" count starts
now), but its catalogue part, the ranked prefix and the facet counts, is kept per
catalogue version (``search_cache.remembered``): served again while the catalogue
stands, the week's count still live (a booking changes it at once), any catalogue
change seen at once; the API's answer and the web catalogue's page are what an empty
cache computes. On SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from labshare.catalogue import search_cache
from labshare.extensions import db as _db
from labshare.models import BookingStatus, Instrument
from labshare.timeutil import set_clock
from tests.factories import weekday_hours

NOW = dt.datetime(2030, 1, 1, 0, 0, tzinfo=dt.UTC)  # Tuesday, 08:00 in Shanghai
WEEK_END = dt.datetime(2030, 1, 6, 16, 0, tzinfo=dt.UTC)  # Monday 00:00 in Shanghai


@pytest.fixture
def store(app: Any) -> Any:
    set_clock(lambda: NOW)
    found = search_cache.cache_of(app)
    found.clear()
    return found


@pytest.fixture
def three(make_lab: Any, make_instrument: Any) -> list[int]:
    lab = make_lab(hours=weekday_hours("08:00", "18:00"))
    made = [make_instrument(lab=lab, name=f"压力表{n}") for n in range(3)]
    _db.session.commit()
    return [i.id for i in made]


def _api(client: Any, **params: Any) -> Any:
    _db.session.remove()
    response = client.get(
        "/api/v1/resources", query_string={"q": "压力", "facets": "true", **params}
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def _week(body: dict[str, Any]) -> int:
    found = body["facets"]["free_this_week"]
    return int(found[0]["count"]) if found else 0


def _book_the_week(resource_id: int, make_booking: Any, make_user: Any) -> None:
    """An approved booking of ``resource_id`` from now to the end of the week."""
    _db.session.remove()
    resource = _db.session.get_one(Instrument, resource_id)
    make_booking(
        resource=resource, user=make_user(), start=NOW, end=WEEK_END, status=BookingStatus.APPROVED
    )
    _db.session.commit()


def _fresh_api(client: Any, store: Any) -> Any:
    store.clear()
    return _api(client)


def test_the_catalogue_part_is_kept_and_the_answer_unchanged(
    client: Any, store: Any, three: list[int]
) -> None:
    first = _api(client)
    assert first["total"] == 3 and _week(first) == 3
    hits = store.parts.hits
    assert _api(client) == first
    assert store.parts.hits == hits + 1
    assert not store.entries  # the answer itself is never kept


def test_the_week_stays_live(
    client: Any, store: Any, three: list[int], make_booking: Any, make_user: Any
) -> None:
    _api(client)
    _book_the_week(three[0], make_booking, make_user)
    hits = store.parts.hits
    now = _api(client)
    assert store.parts.hits == hits + 1  # the catalogue did not change
    assert _week(now) == 2
    assert now == _fresh_api(client, store)


def test_a_catalogue_change_is_seen_at_once(
    client: Any, store: Any, three: list[int], make_instrument: Any
) -> None:
    before = _api(client)
    _db.session.remove()
    make_instrument(name="压力控制器", field="thermal")
    _db.session.commit()
    after = _api(client)
    assert after["total"] == before["total"] + 1
    assert {v["value"] for v in after["facets"]["field"]} == {"mechanical", "thermal"}
    assert after == _fresh_api(client, store)


def test_the_web_catalogue_keeps_its_part_and_shows_the_week(
    client: Any, store: Any, three: list[int], make_booking: Any, make_user: Any
) -> None:
    def page() -> str:
        _db.session.remove()
        response = client.get("/catalogue", query_string={"q": "压力"})
        assert response.status_code == 200
        return str(response.get_data(as_text=True))

    first = page()
    hits = store.parts.hits
    assert page() == first
    assert store.parts.hits > hits
    _book_the_week(three[0], make_booking, make_user)
    booked = page()
    store.clear()
    assert booked == page()  # what an empty cache renders
    assert booked != first  # the week's count went from 3 to 2


def test_with_the_cache_off_nothing_is_kept(
    app: Any, client: Any, store: Any, three: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "budget", 0)
    _api(client)
    _api(client)
    assert not store.parts.entries
    assert store.parts.hits == 0


def test_the_searcher_s_province_ranks_each_page_as_fresh(
    client: Any, store: Any, make_institute: Any, make_lab: Any, make_instrument: Any
) -> None:
    """``near`` (the searcher's province, for the web catalogue their company's) is part
    of what the kept ranking is for: two provinces, two orders, each as computed."""
    for code, name in (("310000", "上海市"), ("320000", "江苏省")):
        lab = make_lab(institute=make_institute(province_code=code, province=name))
        for _ in range(2):
            make_instrument(lab=lab, name="压力表")
    _db.session.commit()
    firsts = {}
    for near in ("310000", "320000", "310000", "320000"):
        body = _api(client, near=near)
        firsts.setdefault(near, body["items"][0]["province"])
        assert body == _api(client, near=near)  # kept
        store.parts.clear()
        assert body == _api(client, near=near)  # fresh
    assert firsts == {"310000": "上海市", "320000": "江苏省"}


def test_a_kept_part_is_not_changed_by_its_users(client: Any, store: Any, three: list[int]) -> None:
    _api(client)
    _api(client)
    for _version, (_prefix, _total, counts), _size in store.parts.entries.values():
        assert "free_this_week" not in counts  # each request adds it to a copy


def test_the_parts_stay_within_their_budget(
    client: Any, store: Any, make_lab: Any, make_instrument: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Page after page of a long list: each part is counted, the oldest go, and one
    over an eighth of the budget (a deep page's long prefix) is not kept."""
    lab = make_lab()
    for n in range(60):
        make_instrument(lab=lab, name=f"压力表{n}")
    _db.session.commit()
    _api(client, per_page=1)
    first = store.parts.used  # a prefix of 43; later pages' grow to 60
    assert first > 0
    store.parts.clear()
    monkeypatch.setattr(store.parts, "budget", 11 * first)
    for page in range(1, 30):
        _api(client, per_page=1, page=page)
        assert store.parts.used <= store.parts.budget
        assert store.parts.used == sum(size for _v, _p, size in store.parts.entries.values())
    assert 0 < len(store.parts.entries) < 29
    store.parts.clear()
    monkeypatch.setattr(store.parts, "budget", 8 * first - 8)
    _api(client, per_page=1)
    assert not store.parts.entries
