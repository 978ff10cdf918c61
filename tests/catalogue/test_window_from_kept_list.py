"""A capability search with a window ranked from the list of matches kept now, without
reading the catalogue's version first (search_free.from_kept_list): the version read
with the candidates' stamps must be the list's, else the usual path answers. With the
answer cache off (the cache reads the version first anyway), on both databases."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from sqlalchemy import text

from labshare.catalogue import capability_index, free_memo, free_time
from labshare.extensions import db as _db
from labshare.timeutil import set_clock
from tests.helpers import NOW, sent_statements

START = dt.datetime(2030, 1, 8, 1, 0, tzinfo=dt.UTC)
ASK = {
    "measurand": "pressure",
    "value": "5",
    "unit": "MPa",
    "available_from": START.isoformat(),
    "available_to": (START + dt.timedelta(hours=3)).isoformat(),
}

pytestmark = pytest.mark.usefixtures("no_answer_cache")


@pytest.fixture
def two(app: Any, make_lab: Any, make_instrument: Any) -> list[int]:
    set_clock(lambda: NOW)
    lab = make_lab()
    ids = [make_instrument(lab=lab).id for _ in range(2)]
    _db.session.commit()
    return ids


def _ids(client: Any, **params: Any) -> list[int]:
    _db.session.remove()
    response = client.get("/api/v1/resources", query_string={**ASK, **params})
    assert response.status_code == 200, response.get_data(as_text=True)
    return [item["id"] for item in json.loads(response.get_data())["items"]]


def _version_reads(sent: list[str]) -> list[str]:
    """Statements that read the catalogue's version alone (not with the stamps)."""
    return [s for s in sent if "catalogue_version" in s and "own_version" not in s]


def test_a_kept_list_answers_with_the_stamps_alone(client: Any, two: list[int]) -> None:
    assert sorted(_ids(client)) == two  # keeps the list, the candidates, their rows
    with sent_statements() as sent:
        assert sorted(_ids(client)) == two
    sent = [s for s in sent if s != "BEGIN"]  # SQLite's
    assert len(sent) == 1, sent
    assert "own_version" in sent[0] and "catalogue_version" in sent[0]


def test_a_catalogue_change_since_the_list_was_kept_is_seen(
    client: Any, two: list[int], make_lab: Any, make_instrument: Any
) -> None:
    """A new match (the list kept is stale) and a renamed one: the version read with
    the stamps is not the list's, so the version is read and the list again."""
    _ids(client)
    added = make_instrument(lab=make_lab()).id
    _db.session.commit()
    with sent_statements() as sent:
        found = _ids(client)
    assert sorted(found) == sorted([*two, added])
    assert _version_reads(sent)  # the usual path, after the kept list was refused


def test_a_list_with_no_candidate_to_read_is_not_trusted(
    app: Any, client: Any, two: list[int]
) -> None:
    """Matches all unavailable in the kept list: no stamps are read, so nothing checks
    the version; the usual path answers (here: the instruments are available again)."""
    _ids(client)
    with _db.engine.begin() as conn:  # the kept list says: unavailable
        conn.execute(text("UPDATE resource SET status = 'maintenance'"))
    _ids(client)  # reads the version, keeps the list of unavailable matches
    with _db.engine.begin() as conn:
        conn.execute(text("UPDATE resource SET status = 'available'"))
    with sent_statements() as sent:
        assert sorted(_ids(client)) == two
    assert _version_reads(sent)


def test_without_the_memo_the_version_is_read_first(
    app: Any, client: Any, two: list[int], monkeypatch: Any
) -> None:
    """And the scan runs once: without the memo no stamps are read, so a scan from
    the kept list could not be trusted and would be run again."""
    app.config["FREE_TIME_MEMO_RESOURCES"] = 0
    app.extensions.pop(free_memo.EXTENSION, None)
    _ids(client)
    scans: list[int] = []
    real = free_time.scan

    def counted(*args: Any, **kwargs: Any) -> Any:
        scans.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(free_time, "scan", counted)
    with sent_statements() as sent:
        assert sorted(_ids(client)) == two
    assert _version_reads(sent)
    assert len(scans) == 1


def test_with_the_answer_cache_on_the_version_read_first_is_used(
    app: Any, client: Any, two: list[int]
) -> None:
    """The answer cache reads the version before looking up the answer: the search
    is ranked from the list of that version, as before."""
    app.config["SEARCH_CACHE_BYTES"] = 1 << 20
    _ids(client)
    window = {"available_to": (START + dt.timedelta(hours=2)).isoformat()}
    reads = capability_index.index_of(app).reads
    with sent_statements() as sent:
        assert sorted(_ids(client, **window)) == two
    assert len(_version_reads(sent)) == 1
    assert capability_index.index_of(app).reads == reads
