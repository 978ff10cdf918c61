"""psycopg's cursor, with ``description`` built only when it is read.

psycopg builds ``cursor.description`` anew on every access: a ``Column`` object
per result column (its name decoded, its type looked up). SQLAlchemy asks for it
after every statement, but once a statement's compiled form has its result
metadata cached (every statement after the first of its shape) it only checks
that the description is not None: the columns themselves go unread. A booking's
creation returns about 80 result columns, and building them cost ~7 % of its
CPU. Here the description is a sequence of the same length whose ``Column``
objects are built by psycopg on first use of an item, from the same result: what
any reader sees is what psycopg's own description holds.

``labshare.database.configure_engine`` makes it the cursor of a PostgreSQL
engine's connections.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, overload

from psycopg import Column, Cursor, pq

_ROWS = frozenset({pq.ExecStatus.TUPLES_OK, pq.ExecStatus.SINGLE_TUPLE, pq.ExecStatus.TUPLES_CHUNK})


class LazyDescription(Sequence[Column]):
    """The columns of one result, built by psycopg on first use of any. It stands
    for the cursor psycopg's ``Column`` reads (its result, encoding and adapters),
    so that a later statement on the cursor cannot change what it describes."""

    __slots__ = ("_columns", "_count", "_pgconn", "adapters", "pgresult")

    def __init__(self, cursor: Cursor[Any], result: pq.abc.PGresult) -> None:
        self.pgresult = result
        self._pgconn = cursor._pgconn
        self.adapters = cursor.adapters
        self._count = result.nfields
        self._columns: list[Column] | None = None

    @property
    def _encoding(self) -> str:  # read only when the columns are built
        return str(self._pgconn._encoding)

    def _built(self) -> list[Column]:
        if self._columns is None:
            self._columns = [Column(self, i) for i in range(self._count)]  # type: ignore[arg-type]
        return self._columns

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> Column: ...

    @overload
    def __getitem__(self, index: slice) -> list[Column]: ...

    def __getitem__(self, index: int | slice) -> Column | list[Column]:
        return self._built()[index]

    def __iter__(self) -> Iterator[Column]:
        return iter(self._built())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LazyDescription):
            other = other._built()
        return self._built() == other

    __hash__ = None  # type: ignore[assignment]  # a list's equality, a list's hash

    def __repr__(self) -> str:
        return repr(self._built())


class LazyDescriptionCursor(Cursor[Any]):
    """psycopg's client cursor; only ``description`` differs (see the module)."""

    @property
    def description(self) -> LazyDescription | None:  # type: ignore[override]
        # psycopg's own rule: columns when the result has fields or says it has rows
        res = self.pgresult
        if res and (res.nfields or res.status in _ROWS):
            return LazyDescription(self, res)
        return None
