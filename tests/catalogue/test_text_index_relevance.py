"""The relevance cases of the search (tests/catalogue/test_search_index.py), answered
from the text index each process keeps in memory (labshare/catalogue/text_index.py)."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from labshare.catalogue import text_index
from tests.catalogue.test_search_index import RELEVANCE, _ranked, catalogue  # noqa: F401


@pytest.mark.parametrize(("q", "first"), RELEVANCE, ids=[q for q, _ in RELEVANCE])
def test_relevance_from_memory(
    app: Flask,
    catalogue: dict[str, Any],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    q: str,
    first: list[str],
) -> None:
    monkeypatch.setitem(app.config, "TEXT_INDEX", True)
    store = text_index.index_of(app)
    store.refresh(wait=True)
    found = _ranked(q)
    assert store.served == 1
    assert found[: len(first)] == [catalogue[k].id for k in first], found
    if not first:
        assert found == []
