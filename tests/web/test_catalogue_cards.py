"""The catalogue page's result cards are kept per resource, language, catalogue
version and day (labshare/web/catalogue/cards.py): the page is what an empty map
renders, in both languages; a catalogue change and a new day show at once; with
the answer cache off nothing is kept."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from labshare.catalogue import search_cache
from labshare.extensions import db as _db
from labshare.models import Resource, ResourceStatus
from labshare.timeutil import set_clock
from labshare.web.catalogue import cards

NOW = dt.datetime(2030, 1, 1, 4, 0, tzinfo=dt.UTC)  # noon in Shanghai


@pytest.fixture
def kept(app: Any) -> Any:
    found = cards.cards_of(app)
    found.clear()
    return found.kept


@pytest.fixture
def catalogue(make_lab: Any, make_instrument: Any, kept: Any) -> list[int]:
    set_clock(lambda: NOW)
    lab = make_lab(name="压力实验室", name_en="Pressure lab")
    made = [
        make_instrument(lab=lab, name="压力表甲", calibration_valid_until=dt.date(2030, 1, 20)),
        make_instrument(lab=lab, name="压力表乙", name_en=None, calibration_valid_until=None),
        make_instrument(lab=lab, name="压力表丙", status=ResourceStatus.MAINTENANCE),
    ]
    _db.session.commit()
    return [lab.id, *(i.id for i in made)]


def _page(client: Any, lang: str = "zh-CN") -> str:
    _db.session.remove()
    response = client.get(
        "/catalogue", query_string={"q": "压力"}, headers={"Accept-Language": lang}
    )
    assert response.status_code == 200
    return str(response.get_data(as_text=True))


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_the_page_is_what_an_empty_map_renders(
    client: Any, catalogue: list[int], kept: Any, lang: str
) -> None:
    first = _page(client, lang)
    assert len(kept) == 4
    assert _page(client, lang) == first
    kept.clear()
    assert _page(client, lang) == first
    assert first.count('class="result card"') == 4


def test_both_languages_are_kept_apart(client: Any, catalogue: list[int]) -> None:
    zh, en = _page(client, "zh-CN"), _page(client, "en")
    assert ">Pressure lab</a></h2>" in en and ">压力实验室</a></h2>" in zh
    assert _page(client, "zh-CN") == zh
    assert _page(client, "en") == en


def test_a_catalogue_change_shows_at_once(client: Any, catalogue: list[int]) -> None:
    _page(client)
    _db.session.remove()
    _db.session.get_one(Resource, catalogue[1]).name = "压力表丁"
    _db.session.commit()
    page = _page(client)
    assert "压力表丁" in page and "压力表甲" not in page


def test_a_new_day_shows_at_once(client: Any, catalogue: list[int]) -> None:
    """The calibration badge is judged against the day: 19 days left, then expired."""
    before = _page(client, "en")
    assert "Calibration expires soon: 2030-01-20" in before
    set_clock(lambda: NOW + dt.timedelta(days=25))
    after = _page(client, "en")
    assert "Calibration expired on 2030-01-20" in after


def test_with_the_answer_cache_off_no_card_is_kept(
    app: Any, client: Any, catalogue: list[int], kept: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search_cache.cache_of(app), "budget", 0)
    _page(client)
    assert not kept


def test_names_are_escaped_as_in_a_fresh_render(
    client: Any, catalogue: list[int], kept: Any
) -> None:
    _db.session.get_one(Resource, catalogue[1]).name = "压力 <b>&\"'表"
    _db.session.commit()
    first = _page(client)
    assert "压力 &lt;b&gt;&amp;&#34;&#39;表" in first and "<b>&" not in first
    kept.clear()
    assert _page(client) == first


def test_the_script_root_is_part_of_what_is_kept(
    client: Any, catalogue: list[int], kept: Any
) -> None:
    """The same site mounted under a prefix links under it."""
    plain = _page(client)
    _db.session.remove()
    mounted = client.get(
        "/catalogue",
        query_string={"q": "压力"},
        headers={"Accept-Language": "zh-CN"},  # as _page: only the root differs
        base_url="http://localhost/labshare",
    ).get_data(as_text=True)
    assert f'href="/resources/{catalogue[1]}"' in plain
    assert f'href="/labshare/resources/{catalogue[1]}"' in mounted
    assert mounted.count('href="/labshare/resources/') == plain.count('href="/resources/') == 4
