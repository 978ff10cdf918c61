"""Text matches ranked in memory, per process, at one catalogue version.

The database's token index (search_index.py: GIN on PostgreSQL, FTS5 on SQLite)
answers a text search in a few milliseconds of the database's CPU: at campaign
scale, 2 to 6 ms a search on PostgreSQL, on the server every worker shares. So each
process also keeps the same tokens in memory, per token the sorted ids of the listed
resources (not retired, institute active) whose tokens (and, apart, whose name
tokens) hold it, with their lower-cased names (as the database lower-cases them)
and their measurand's tokens. A search walks those lists in id order as far as its
page and its count need, in the ranking of ``search._order`` (exact name, name or
model, measurand, the rest, then the id), and reads only the page's rows from the
database. The lists and their walk are text_snapshot.py's; here, reading them and
answering from them.

A snapshot is read in one transaction (its version, then every row), in a thread of
its own so that no search waits for it (for 42,000 resources, 1 to 2 s of one core,
during which the worker's other searches run about half as fast; 35 MB more memory
for good), labelled with the version read before its rows, and an answer from it
is used only when the page's rows were read at that version (``catalogue_version``
read in the same statement as the rows, or before them by the answer cache); the
triggers of migration 0023 change it with every change of resource, institute or
search_doc. So an answer from memory is the database's answer at that version,
never a stale one. A snapshot found older than the database is not tried again:
the database answers until a new one is read (at most one every REBUILD_SECONDS,
less often while snapshots go out of date unused or reads fail). A search with
filters besides its words or with the searcher's province, a page past
``search_tiers.TIERED_LIMIT``, a prefix that stands for too many words, or a search
that would take more than ``text_snapshot.WORK_LIMIT`` steps also goes to the
database (tests/catalogue/test_text_index.py compares the two on the same data).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from flask import Flask, current_app
from sqlalchemy import func, select
from sqlalchemy.engine import Connection, Engine

from labshare.catalogue import search_cache, search_index, search_pages, search_tiers, text_snapshot
from labshare.catalogue.text_snapshot import Snapshot, build
from labshare.extensions import db
from labshare.models import CatalogueVersion, Institute, Resource, ResourceStatus, SearchDoc

if TYPE_CHECKING:
    from labshare.catalogue.search_result import ResourceFilters

log = logging.getLogger(__name__)

EXTENSION = "labshare_text_index"
#: A snapshot is read at most this often (seconds between two reads' starts): while
#: the catalogue changes faster, the database answers in between. After a snapshot
#: that answered nothing before the catalogue moved on (an import committing row
#: after row), the wait doubles, up to MAX_BACKOFF times this.
REBUILD_SECONDS = 30.0
MAX_BACKOFF = 8

_doc = SearchDoc.__table__
_resource = Resource.__table__
_institute = Institute.__table__


def read(engine: Engine) -> Snapshot | None:
    """A snapshot of the listed resources' tokens, labelled with the version read
    before them; None when there is no version row (nothing may be kept)."""
    # The version first, then the rows, in one snapshot of the database (PostgreSQL:
    # REPEATABLE READ; SQLite's transaction is one), streamed in batches rather than
    # held whole by the driver (a second copy of every token).
    with engine.connect() as base:
        conn = base
        if engine.dialect.name == "postgresql":
            conn = base.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
        with conn.begin():
            return _read_on(conn)


def _read_on(conn: Connection) -> Snapshot | None:
    if conn.dialect.name == "postgresql":
        # a read that hangs would leave this process's index unread for good
        conn.exec_driver_sql("SET LOCAL statement_timeout = '120s'")
    version = conn.execute(
        select(CatalogueVersion.version).where(CatalogueVersion.id == 1)
    ).scalar()
    if version is None:
        return None
    rows = conn.execute(
        select(
            _doc.c.resource_id,
            _doc.c.tokens,
            _doc.c.name_tokens,
            _doc.c.measurand_tokens,
            func.lower(_resource.c.name),
            func.lower(_resource.c.name_en),
        )
        .select_from(
            _doc.join(_resource, _resource.c.id == _doc.c.resource_id).join(
                _institute, _institute.c.id == _resource.c.institute_id
            )
        )
        .where(_institute.c.active.is_(True), _resource.c.status != ResourceStatus.RETIRED)
        .order_by(_doc.c.resource_id),
        execution_options={"yield_per": 2000},
    )
    return build(int(version), rows)


class TextIndex:
    """The process's snapshot, and the thread that reads the next one."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.reading = threading.Lock()
        self.snapshot: Snapshot | None = None
        #: the snapshot was found older than the database: no search tries it again
        self.stale = False
        #: reads that failed in a row (each doubles the wait, as an unused snapshot does)
        self.failures = 0
        #: searches the current snapshot answered; REBUILD_SECONDS times this between reads
        self.answered = 0
        self.backoff = 1
        self.building = False
        self.started = float("-inf")
        self.builds = 0  # snapshots read: for tests
        self.served = 0  # searches answered from memory: for tests

    def refresh(self, wait: bool = False) -> None:
        """Read a new snapshot: in a thread of its own (unless one is being read, or
        one was started less than REBUILD_SECONDS ago), or now with ``wait`` (tests,
        the bench; after a read in progress)."""
        if wait:
            self._run(background=False)
            return
        with self.lock:
            now = time.monotonic()
            if self.building or now - self.started < REBUILD_SECONDS * self.backoff:
                return
            self.building = True
            self.started = now
        try:
            threading.Thread(target=self._run, name="labshare-text-index", daemon=True).start()
        except RuntimeError:  # no thread to be had: the database answers
            log.exception("could not start reading the text index")
            with self.lock:
                self.building = False

    def _run(self, background: bool = True) -> None:
        # one read at a time, so that the last installed is the last read
        with self.reading:
            try:
                with self.app.app_context():
                    snap = read(db.engine)
                with self.lock:
                    self.builds += 1
                    self.failures = 0
                    if snap is not None:
                        if self.snapshot is not None and not self.answered:
                            self.backoff = min(self.backoff * 2, MAX_BACKOFF)
                        else:
                            self.backoff = 1
                        self.snapshot, self.answered, self.stale = snap, 0, False
            except Exception:
                with self.lock:
                    self.failures += 1
                    self.backoff = min(self.backoff * 2, MAX_BACKOFF)
                    again = self.failures > 1
                if again:  # the traceback once; then a line per failure
                    log.warning("reading the text index failed again (%s in a row)", self.failures)
                else:
                    log.exception(
                        "reading the text index failed; the database answers text searches"
                    )
            finally:
                if background:
                    with self.lock:
                        self.building = False

    def clear(self) -> None:
        # after a read in progress, which would install its snapshot
        with self.reading, self.lock:
            self.snapshot, self.stale = None, False
            self.started = float("-inf")
            self.builds = self.served = self.answered = self.failures = 0
            self.backoff = 1

    def outdated(self, snap: Snapshot) -> None:
        """``snap`` is older than the database (the version was read after it was
        taken): the database answers until the next snapshot (asked for now)."""
        with self.lock:
            if self.snapshot is snap:  # not one installed since
                self.stale = True
        self.refresh()

    def answer(self) -> None:
        with self.lock:
            self.served += 1
            self.answered += 1


def index_of(app: Flask) -> TextIndex:
    found = app.extensions.get(EXTENSION)
    if not isinstance(found, TextIndex):
        found = app.extensions[EXTENSION] = TextIndex(app)
    return found


def index() -> TextIndex | None:
    """The app's index, None when TEXT_INDEX is off."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if not app.config.get("TEXT_INDEX", True):
        return None
    return index_of(app)


def text_page(
    f: ResourceFilters, query: search_index.Query, page: int, per_page: int, plain: bool
) -> search_tiers.Page | None:
    """The page of the text search ``f`` (words only: ``query``, not empty) as
    ``search_tiers.text_page`` answers it, from memory; None when the index is off,
    not at the catalogue's version, or the search is not one it answers."""
    store = index()
    if store is None or not search_tiers.simple(f) or f.near_province:
        return None
    wanted = page * per_page
    if wanted > search_tiers.TIERED_LIMIT:
        return None
    snap = store.snapshot
    if snap is None or store.stale:
        store.refresh()
        return None
    known = search_cache.known()
    if known is not None and known != snap.version:
        # The request read the version before it took the snapshot: either may be
        # the newer, so the snapshot is not marked; a read is asked for.
        store.refresh()
        return None
    wanted_name = f.q.strip().lower() if f.q else ""
    try:
        ranked, count = snap.ranked(
            query, wanted_name, wanted, search_tiers.count_limit(page, per_page)
        )
    except text_snapshot.TooWide:
        return None
    ids = ranked[(page - 1) * per_page :]
    # The answer is right only at the snapshot's version: read before the page's rows
    # (the request read it already: the answer cache is on), or with them in one
    # statement (an uncached search's one round trip).
    version = known
    found: tuple[list[Any], dict[int, Any], int | None] | None = None
    if version is None and plain and ids:
        found = search_pages.load_rows_at(ids, snap.version)
        version = found[2] if found is not None else None
    if version is None:
        version = search_cache.version()
        found = None
    if version != snap.version:
        store.outdated(snap)
        return None
    store.answer()
    if found is not None:
        return found[0], count, found[1]
    items, rules = search_pages.load_any(ids, plain)
    return items, count, rules


__all__ = [
    "REBUILD_SECONDS",
    "Snapshot",
    "TextIndex",
    "build",
    "index",
    "index_of",
    "read",
    "text_page",
]
