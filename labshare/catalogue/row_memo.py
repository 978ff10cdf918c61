"""The search's page rows kept per process at the catalogue's version, each with its
JSON.

A search ranked in memory (text_index.py, capability_index.py) then reads its page's
rows by id (search_pages.row_select: the resource, its institute, its instrument and
two booking-rules rows), and the answer turns each row into a dictionary and encodes
it. Those rows change only when the catalogue does, yet on every request they cost
five joins on the database, three enum conversions a row and the encoding: most of
an uncached search's time once its ranking came from memory.

Here each row read is kept with the catalogue's version read in the same statement
(``search_pages.load_rows_at``, ``load_rows``: one snapshot), so all rows kept at a
version are the catalogue's state at that version, and a page made of them is one
state, as a page read in one statement is. A page whose rows are all kept at one
version is served from here once the catalogue's version read now (or first, by
the request) is that one: a primary-key read instead of the rows. Triggers change
the version in the transaction of every catalogue change, to random values
(search_cache.py), so equal means unchanged: a kept row is never stale.

An answer's item is the same bytes for the same row and rules (``resource_row_json``
depends on nothing else), so each row's encoded item is kept with it too, found only
for the very row object it was made from (kept here, or by the free-time memo's
candidates), and the answer joins its items' bytes.

At most ``SEARCH_ROW_MEMO`` rows (and as many encoded items) are kept, the least
recently used dropped first; 0 keeps none (every page is read and encoded).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app

from labshare.booking.rules import Rules

EXTENSION = "labshare_row_memo"
DEFAULT_ROWS = 5000


@dataclass(frozen=True, slots=True)
class Kept:
    version: Any
    row: Any
    rules: Rules


class RowMemo:
    """Resource id → its page row at a version; resource id → its encoded item and
    the row and rules it was made from. Both least recently used first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.lock = threading.Lock()
        self.rows: OrderedDict[int, Kept] = OrderedDict()
        self.items: OrderedDict[int, tuple[Any, Rules, bytes]] = OrderedDict()
        self.reads = 0  # rows read (not served from here): for tests

    def page(self, ids: Sequence[int]) -> tuple[Any, list[Kept]] | None:
        """The kept rows of ``ids`` and their version, when every one is kept and all
        at one version; else None."""
        with self.lock:
            found = [self.rows.get(i) for i in ids]
            if not found or any(k is None for k in found):
                return None
            kept: list[Kept] = found  # type: ignore[assignment]
            version = kept[0].version
            if any(k.version != version for k in kept):
                return None
            for i in ids:
                self.rows.move_to_end(i)
        return version, kept

    def missed(self, n: int) -> None:
        """Count ``n`` rows read (not served from here)."""
        with self.lock:
            self.reads += n

    def put(self, version: Any, rows: Sequence[Any], rules: dict[int, Rules]) -> None:
        """Keep ``rows`` (each with its rules in ``rules``) at ``version``."""
        with self.lock:
            for row in rows:
                self.rows[row[0]] = Kept(version, row, rules[row[0]])
                self.rows.move_to_end(row[0])
            while len(self.rows) > self.size:
                self.rows.popitem(last=False)

    def item(self, row: Any, rules: Rules, encode: Callable[[Any, Rules], bytes]) -> bytes:
        """``encode(row, rules)``, kept for this very row and rules objects: an item
        made from another (a row read again) is made again."""
        rid = row[0]
        with self.lock:
            found = self.items.get(rid)
            if found is not None and found[0] is row and found[1] is rules:
                self.items.move_to_end(rid)
                return found[2]
        # a copy of its own size: orjson's bytes keep their whole buffer (8 KB for
        # a 900-byte item), which thousands kept would hold
        encoded = memoryview(encode(row, rules)).tobytes()
        with self.lock:
            self.items[rid] = (row, rules, encoded)
            self.items.move_to_end(rid)
            while len(self.items) > self.size:
                self.items.popitem(last=False)
        return encoded

    def clear(self) -> None:
        with self.lock:
            self.rows.clear()
            self.items.clear()
            self.reads = 0


def memo_of(app: Flask) -> RowMemo:
    found = app.extensions.get(EXTENSION)
    if not isinstance(found, RowMemo):
        found = RowMemo(int(app.config.get("SEARCH_ROW_MEMO", DEFAULT_ROWS)))
        app.extensions[EXTENSION] = found
    return found


def active() -> RowMemo | None:
    """The app's memo, None when it keeps nothing (SEARCH_ROW_MEMO 0)."""
    found = memo_of(current_app._get_current_object())  # type: ignore[attr-defined]
    return found if found.size > 0 else None


__all__ = ["DEFAULT_ROWS", "EXTENSION", "Kept", "RowMemo", "active", "memo_of"]
