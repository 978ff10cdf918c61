"""What an uncached search sends, counting every statement the driver is sent, on
both databases: a capability search answered from the in-memory index sends the
catalogue's version and the page's rows, nothing more (the version once, with the
answer cache on too; SQLite: after its BEGIN); on PostgreSQL no search opens a
transaction (the driver's autocommit: no BEGIN/ROLLBACK round trips), and the
connection goes back to the pool as it came (a later request writes in a
transaction)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from labshare.catalogue import capability_index
from labshare.extensions import db as _db
from tests.helpers import listening

PATH = "/api/v1/resources"
CAPABILITY = {"measurand": "pressure", "value": "5", "unit": "MPa"}


@pytest.fixture
def catalogue(db: Any, make_instrument: Any) -> list[int]:
    made = [
        make_instrument(name="压力校验仪", name_en="Pressure calibrator"),
        make_instrument(name="数字压力计", name_en="Digital manometer"),
    ]
    db.session.commit()
    return [i.id for i in made]


@contextlib.contextmanager
def every_statement() -> Iterator[list[tuple[str, bool]]]:
    """Each statement sent (SQLite's BEGIN left out), with whether its connection
    was outside any transaction (PostgreSQL: the driver in autocommit; SQLite:
    always true)."""
    sent: list[tuple[str, bool]] = []

    def listener(conn: Any, _cur: Any, statement: str, *_a: Any) -> None:
        if conn.dialect.name == "postgresql":
            alone = bool(conn.connection.dbapi_connection.autocommit)
        elif statement.strip().upper() == "BEGIN":
            return
        else:
            alone = True
        sent.append((" ".join(statement.split())[:60], alone))

    with listening(listener):
        yield sent


def search(client: FlaskClient, **params: Any) -> Any:
    _db.session.remove()  # a request starts with nothing loaded, as in a server
    response = client.get(PATH, query_string=params)
    assert response.status_code == 200, response.get_data(as_text=True)
    _db.session.remove()
    return response.get_json()


def test_a_capability_search_sends_the_version_and_the_page(
    app: Flask, client: FlaskClient, catalogue: list[int], answer_cache: bool
) -> None:
    capability_index.index_of(app).clear()
    with every_statement() as first:
        assert [i["id"] for i in search(client, **CAPABILITY)["items"]] == catalogue
    # the measurand's list is read once per catalogue version
    assert len(first) == 3, first
    with every_statement() as sent:
        body = search(client, **{**CAPABILITY, "value": "5000", "unit": "kPa"})
    assert [i["id"] for i in body["items"]] == catalogue
    if answer_cache:
        # the version (for the cache) alone: the first search's page rows were kept
        # at it (row_memo.py)
        assert len(sent) == 1 and sent[0][0].startswith("SELECT catalogue_version.version")
    else:
        # the page's rows with the version, in one statement (capability_index.plain_page)
        assert len(sent) == 1 and sent[0][0].startswith("SELECT resource.id"), sent
    assert all(alone for _s, alone in first + sent), first + sent


def test_a_text_search_opens_no_transaction_on_postgresql(
    app: Flask, client: FlaskClient, catalogue: list[int], answer_cache: bool
) -> None:
    with every_statement() as sent:
        assert {i["id"] for i in search(client, q="压力")["items"]} == set(catalogue)
    assert sent and all(alone for _s, alone in sent), sent
    # the version once at most (its tiers' statements are the text search's own)
    assert sum(s.startswith("SELECT catalogue_version") for s, _a in sent) <= 1, sent


def test_the_connection_goes_back_as_it_came(
    app: Flask, client: FlaskClient, catalogue: list[int]
) -> None:
    search(client, **CAPABILITY)
    # Every pooled connection (the search's among them) begins transactions again:
    # a write and its rollback leave nothing behind.
    with _db.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            assert conn.connection.dbapi_connection.autocommit is False
        conn.execute(text("UPDATE resource SET name = 'x' WHERE id = :id"), {"id": catalogue[0]})
        conn.rollback()
    _db.session.remove()
    assert next(i["name"] for i in search(client, q="压力校验仪")["items"]) == "压力校验仪"
