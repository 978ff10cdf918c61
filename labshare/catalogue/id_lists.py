"""A list of ids as ONE bound parameter, so that a statement over "these ids" has the
same SQL text however many there are.

``column IN (:a, :b, …)`` is a new statement for every length of the list: SQLAlchemy
renders and caches it again, psycopg parses its placeholders and PostgreSQL plans it
every time (never prepared), and each expanded value gets its own bind cast. On the
bench's window search those costs were most of its CPU (2-3 ms a statement for 33
ids, against 0.5 ms for the same rows read with one parameter). Here the list is one
value: an array literal cast to ``integer[]`` and compared with ``= ANY(…)`` on
PostgreSQL, a JSON array read by ``json_each`` on SQLite (both use the column's
index, one probe per id).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Integer,
    String,
    any_,
    bindparam,
    cast,
    func,
    literal_column,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from labshare.extensions import db

T = TypeVar("T")


class IdList(TypeDecorator[list[int]]):
    """A list of ints bound as one text value: PostgreSQL's array literal
    (``{1,2,3}``, cast to ``integer[]`` by the statement), JSON elsewhere (what
    ``json_each`` reads). Text on PostgreSQL too: psycopg dumps a Python list
    element by element in Python (0.1 ms for 34 ids, a quarter of a window search's
    statement), a joined string at once."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: Sequence[int] | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "postgresql":
            return "{" + ",".join(str(int(v)) for v in value) + "}"
        return json.dumps([int(v) for v in value])


def among(column: Any, name: str, dialect: str) -> ColumnElement[bool]:
    """``column`` is one of the ids bound as ``name`` (an ``IdList``)."""
    param = bindparam(name, type_=IdList())
    if dialect == "postgresql":
        return column == any_(cast(param, ARRAY(Integer)))
    each: Any = select(literal_column("value")).select_from(func.json_each(param))
    return column.in_(each)


def sql_among(column: str, name: str, dialect: str) -> str:
    """``among`` as text, for a ``text()`` statement (bind ``name`` with
    ``IdList()``)."""
    if dialect == "postgresql":
        return f"{column} = ANY(CAST(:{name} AS integer[]))"
    # a constant column name; the values are bound
    return f"{column} IN (SELECT value FROM json_each(:{name}))"  # noqa: S608


def per_dialect(build: Callable[[str], T]) -> Callable[[], T]:
    """``build(dialect name)`` once per dialect: statements built ahead with fixed
    text, so that executing them costs no rendering (SQLAlchemy's cache key of a
    ready statement is cheap) and PostgreSQL may prepare them."""
    built: dict[str, T] = {}

    def get() -> T:
        name = db.engine.dialect.name
        found = built.get(name)
        if found is None:
            found = built[name] = build(name)
        return found

    return get
