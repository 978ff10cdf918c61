"""Statements over "these ids" bind the list as one parameter: the same SQL text for
3 ids as for 300 (PostgreSQL prepares it, SQLAlchemy renders it once), and the same
rows as ``IN (…)``. On SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import event, select

from labshare.catalogue import free_busy, free_candidates, id_lists, search_pages
from labshare.extensions import db
from labshare.models import Resource
from tests import factories


def _statements(run: Any) -> list[str]:
    seen: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", before)
    try:
        run()
    finally:
        event.remove(db.engine, "before_cursor_execute", before)
    return seen


def test_the_id_statements_have_one_text_whatever_the_number_of_ids(app: Any, db: Any) -> None:
    lab = factories.make_lab(hours=factories.weekday_hours("08:00", "18:00", range(5)))
    made = [factories.make_instrument(lab=lab) for _ in range(4)]
    db.session.commit()
    ids = [r.id for r in made]
    start = dt.datetime(2030, 1, 7, tzinfo=dt.UTC)
    end = start + dt.timedelta(days=1)
    texts = []
    for some in (ids[:1], ids, [*ids, *range(10**6, 10**6 + 300)]):
        texts.append(
            _statements(
                lambda some=some: (
                    free_busy.busy_rows(
                        [c.subject for c in free_candidates.of_ids(some)], start, end, [lab.id]
                    ),
                    search_pages.load_rows(some),
                )
            )
        )
    assert len(texts[0]) == 3 and texts[0] == texts[1] == texts[2]
    # the rows are IN's: unknown ids are no rows, the order is the asked one
    assert [c.subject.id for c in free_candidates.of_ids([ids[2], 10**6, ids[0]])] == [
        ids[2],
        ids[0],
    ]
    assert [row[0] for row in search_pages.load_rows(ids[::-1])[0]] == ids[::-1]
    among = id_lists.among(Resource.id, "ids", db.engine.dialect.name)
    found = db.session.scalars(select(Resource.id).where(among), {"ids": ids[1:3]}).all()
    assert sorted(found) == ids[1:3]
    assert db.session.scalars(select(Resource.id).where(among), {"ids": []}).all() == []
