"""Answers of the search, kept per process and served again while the catalogue has
not changed.

A search without a time window and without facets depends only on the catalogue
(resources, labs, instruments, institutes, booking rules, search tokens) and its
own parameters, not on bookings or the clock. ``catalogue_version.version`` is
changed by database triggers (migration 0023) in the same transaction as any change
to those tables, on both databases. Each request reads it first (one primary-key
read) and serves an entry only when it was computed at exactly that version; the
version is read before the search's own statements, so an entry is never labelled
newer than its data: never stale, across processes. A missing version row (a table
emptied by hand) turns the cache off until the next change writes it again.

A search with a window depends on bookings and the clock too: its entry carries a
``window_cache.Guard`` (the calendars it examined, and until when the clock leaves
it alone), checked before it is served. Searches with facets (the "free this week"
count) are always computed.
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from flask import Flask, current_app
from sqlalchemy import select
from sqlalchemy.engine import Connection

from labshare.catalogue.window_cache import Guard
from labshare.extensions import db
from labshare.models import CatalogueVersion

T = TypeVar("T")

EXTENSION = "labshare_search_cache"
#: Bytes of answers kept per process (SEARCH_CACHE_BYTES; 0 turns the cache off).
DEFAULT_BYTES = 16 * 1024 * 1024
#: Larger answers (per_page=200 pages) are not kept.
MAX_ENTRY = 256 * 1024
#: Bytes an entry costs besides its body and guard (its key of parameters, the
#: map's slot, the entry itself), counted against the budget: many tiny answers
#: (``per_page=1``) must not hold far more than it says.
ENTRY_OVERHEAD = 512
#: Query strings remembered for the fast path (labshare/fastpath.py), and the
#: longest one remembered.
MAX_ALIASES = 4096
MAX_ALIAS_QUERY = 1024

_VERSION = select(CatalogueVersion.version).where(CatalogueVersion.id == 1)


@dataclass(frozen=True)
class Entry:
    version: int
    body: bytes
    truncated: bool
    #: a window search's: what else it must still match (window_cache.py)
    guard: Guard | None = None

    @property
    def size(self) -> int:
        """Bytes it holds, as the budget counts them: the body, the guard's ids and
        what each entry costs besides (its key, the map's slot)."""
        return len(self.body) + ENTRY_OVERHEAD + (self.guard.size if self.guard else 0)


class SearchCache:
    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.used = 0
        self.entries: OrderedDict[Hashable, Entry] = OrderedDict()
        self.lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        #: The raw query string of a request Flask accepted → its key: the fast
        #: path answers only a query string Flask has already read, as Flask read it.
        self.aliases: dict[str, Hashable] = {}
        #: catalogue-only parts of answers computed every time (``remembered``),
        #: within a quarter more of the budget
        self.parts = PartCache(budget // 4)

    def get(
        self, key: Hashable, version: int, holds: Callable[[Guard], bool] | None = None
    ) -> Entry | None:
        """The entry of ``key`` computed at ``version``; a window search's only when
        ``holds(its guard)`` (a statement: asked outside the lock)."""
        with self.lock:
            entry = self.entries.get(key)
            if entry is None or entry.version != version:
                self.misses += 1
                return None
        if entry.guard is not None and (holds is None or not holds(entry.guard)):
            with self.lock:
                self.misses += 1
                # gone for good (its calendars or the clock moved on): not checked
                # again by every request until a new answer replaces it
                if self.entries.get(key) is entry:
                    del self.entries[key]
                    self.used -= entry.size
            return None
        with self.lock:
            if key in self.entries:
                self.entries.move_to_end(key)
            self.hits += 1
        return entry

    def put(self, key: Hashable, entry: Entry) -> None:
        size = entry.size
        if len(entry.body) > MAX_ENTRY or size > self.budget:
            return
        with self.lock:
            old = self.entries.pop(key, None)
            if old is not None:
                self.used -= old.size
            self.entries[key] = entry
            self.used += size
            while self.used > self.budget:
                _, dropped = self.entries.popitem(last=False)
                self.used -= dropped.size

    def alias(self, query_string: str, key: Hashable) -> None:
        """Remember that Flask read ``query_string`` as ``key`` (bounded: the map is
        emptied when full, and an alias whose entry is gone only sends its request
        to Flask)."""
        if len(query_string) > MAX_ALIAS_QUERY:
            return
        with self.lock:
            if len(self.aliases) >= MAX_ALIASES and query_string not in self.aliases:
                self.aliases.clear()
            self.aliases[query_string] = key

    def key_of(self, query_string: str) -> Hashable | None:
        return self.aliases.get(query_string)

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()
            self.aliases.clear()
            self.used = self.hits = self.misses = 0
        self.parts.clear()


class PartCache:
    """Parts of answers that depend on the catalogue alone, inside answers that are
    computed every time: the ranked prefix and facet counts of a search with facets
    (its "free this week" count starts now, so the answer is never kept whole; the
    web catalogue asks for it on every page). Kept per key and catalogue version,
    as the answers are (the version read first), within ``budget`` bytes as their
    callers estimate them (an entry over an eighth of it is not kept: a deep page's
    prefix of thousands of matches). The values are shared: callers copy what they
    change."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.used = 0
        self.entries: OrderedDict[Hashable, tuple[int, Any, int]] = OrderedDict()
        self.lock = threading.Lock()
        self.hits = 0

    def get(self, key: Hashable, version: int) -> Any | None:
        with self.lock:
            found = self.entries.get(key)
            if found is None or found[0] != version:
                return None
            self.entries.move_to_end(key)
            self.hits += 1
            return found[1]

    def put(self, key: Hashable, version: int, value: Any, size: int) -> None:
        if size > self.budget // 8:
            return
        with self.lock:
            old = self.entries.pop(key, None)
            if old is not None:
                self.used -= old[2]
            self.entries[key] = (version, value, size)
            self.used += size
            while self.used > self.budget:
                _, (_v, _value, dropped) = self.entries.popitem(last=False)
                self.used -= dropped

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()
            self.used = self.hits = 0


def remembered(key: Hashable, compute: Callable[[], T], size: Callable[[T], int]) -> T:
    """``compute()``, or what it gave at this catalogue version (``PartCache``; off
    with the answer cache, SEARCH_CACHE_BYTES=0); ``size(value)``: its bytes,
    roughly. The version is read before it is computed: a value is never labelled
    newer than the data it was computed from."""
    store = cache()
    current = version() if store is not None else None
    if store is None or current is None:
        return compute()
    found = store.parts.get(key, current)
    if found is None:
        found = compute()
        store.parts.put(key, current, found, size(found))
    return cast(T, found)


def cache_of(app: Flask) -> SearchCache:
    found = app.extensions.get(EXTENSION)
    if not isinstance(found, SearchCache):
        found = SearchCache(int(app.config.get("SEARCH_CACHE_BYTES", DEFAULT_BYTES)))
        app.extensions[EXTENSION] = found
    return found


def cache() -> SearchCache | None:
    """The app's cache, None when SEARCH_CACHE_BYTES is 0."""
    found = cache_of(current_app._get_current_object())  # type: ignore[attr-defined]
    return found if found.budget > 0 else None


#: The version a search's request has read already (``known_version``).
_KNOWN: ContextVar[int | None] = ContextVar("labshare_catalogue_version", default=None)


def version() -> int | None:
    """The catalogue's version now, read first in the request's transaction (on
    its connection, without the ORM's execution: a plain column); inside
    ``known_version``, the version given there."""
    known = _KNOWN.get()
    if known is not None:
        return known
    return db.session.connection().execute(_VERSION).scalar()


def known() -> int | None:
    """The version this request has read already (``known_version``), else None."""
    return _KNOWN.get()


def kept_version() -> int | None:
    """The catalogue's version when the cache is on (what kept answers and parts are
    kept at; read first, before a search's own reads), else None."""
    return version() if cache() is not None else None


@contextlib.contextmanager
def known_version(value: int | None) -> Iterator[None]:
    """Within, ``version()`` answers ``value`` (the version a request read before
    its search's reads, which only read: the capability index reuses it instead of
    reading it again). None changes nothing."""
    token = _KNOWN.set(value)
    try:
        yield
    finally:
        _KNOWN.reset(token)


def version_on(conn: Connection) -> int | None:
    """The catalogue's version read on ``conn`` (the fast path: outside any session)."""
    return conn.execute(_VERSION).scalar()


__all__ = [
    "Entry",
    "PartCache",
    "SearchCache",
    "cache",
    "cache_of",
    "kept_version",
    "known",
    "known_version",
    "remembered",
    "version",
    "version_on",
]
