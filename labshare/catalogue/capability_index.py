"""Capability matches ranked in memory, kept per catalogue version.

Which instruments can measure a value, and in which order, depends only on the
catalogue (their measurand, range in base units, status, field, institute), never
on bookings or the clock. Found by SQL, a capability search reads every instrument
of the measurand whose range reaches the value, with its resource and institute,
to count and sort them: a scan of the resource table on PostgreSQL (20 ms for
2,000 matches of 37,000 instruments), and again for every value asked.

So each process keeps, per measurand, the instruments that may match any value
(not retired, institute active, range known) as plain tuples sorted by the
ranking's keys (range width, then id), read in one statement the first time the
measurand is asked at a catalogue version. A search filters that list by the
value (two float comparisons each, as the SQL compared them) and cuts its page;
only the page's rows are then read from the database. ``catalogue_version`` is
read first in the request's transaction, as the answer cache does
(labshare/catalogue/search_cache.py): a list is served only at exactly the
version it was read at, never newer than its data, so never stale.

Only searches whose every filter can be checked here come this way (a value
without words and without a province prefix); the others rank in SQL.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask import Flask, current_app
from sqlalchemy import select

from labshare.catalogue import capability, search_cache, search_index, search_pages
from labshare.catalogue.capability_matches import Listing, Walk, plain
from labshare.extensions import db
from labshare.models import Institute, Instrument, Resource, ResourceKind, ResourceStatus

if TYPE_CHECKING:
    from labshare.catalogue.search import ResourceFilters

EXTENSION = "labshare_capability_index"

_instrument = Instrument.__table__
_resource = Resource.__table__
_institute = Institute.__table__


@dataclass(frozen=True)
class Entry:
    id: int
    low: float
    high: float
    width: float
    status: ResourceStatus
    field: Any
    institute: str
    province_code: str | None
    province: str | None


class CapabilityIndex:
    """Per measurand, its instruments' entries sorted by (width, id), kept per
    catalogue version for the last KEPT_VERSIONS versions read (versions are random:
    which of two is newer cannot be told, so a request that read the version before
    an edit and one that read it after each find their own lists)."""

    KEPT_VERSIONS = 2

    def __init__(self) -> None:
        self.lock = threading.Lock()
        #: version → measurand → list, the version last read last
        self.versions: OrderedDict[int, dict[str, Listing]] = OrderedDict()
        self.reads = 0  # statements that (re)read a measurand: for tests

    def entries(self, measurand: str) -> Listing:
        version = search_cache.version()  # first: a list is never newer than its label
        with self.lock:
            found = self.versions.get(version, {}).get(measurand) if version is not None else None
            if found is not None:
                # the version read last is last: ``kept`` answers from it
                self.versions.move_to_end(version)  # type: ignore[arg-type]
                return found
        found = _read(measurand)
        self.reads += 1
        if version is None:
            return found  # no version row: nothing may be kept
        with self.lock:
            lists = self.versions.pop(version, {})
            lists[measurand] = found
            self.versions[version] = lists
            while len(self.versions) > self.KEPT_VERSIONS:
                self.versions.popitem(last=False)
        return found

    def kept(self, measurand: str) -> tuple[Listing, int] | None:
        """The list of ``measurand`` of the version read last, and that version,
        without reading the version: right only if the rows read next are at it."""
        with self.lock:
            if not self.versions:
                return None
            version = next(reversed(self.versions))
            found = self.versions[version].get(measurand)
            return (found, version) if found is not None else None

    def clear(self) -> None:
        with self.lock:
            self.versions, self.reads = OrderedDict(), 0


def _read(measurand: str) -> Listing:
    rows = db.session.execute(
        select(
            _instrument.c.id,
            _instrument.c.range_min_base,
            _instrument.c.range_max_base,
            _resource.c.status,
            _resource.c.field,
            _institute.c.code,
            _institute.c.province_code,
            _institute.c.province,
        )
        .select_from(
            _instrument.join(_resource, _resource.c.id == _instrument.c.id).join(
                _institute, _institute.c.id == _resource.c.institute_id
            )
        )
        .where(
            _instrument.c.measurand == measurand,
            _instrument.c.range_min_base.is_not(None),
            _instrument.c.range_max_base.is_not(None),
            _resource.c.status != ResourceStatus.RETIRED,
            _institute.c.active.is_(True),
        )
    )
    out = [
        Entry(
            id=int(i),
            low=float(low),
            high=float(high),
            # the SQL ranking's key, computed as the database computes it (doubles)
            width=float(high) - float(low),
            status=ResourceStatus(status),
            field=field,
            institute=code,
            province_code=province_code,
            province=province,
        )
        for i, low, high, status, field, code, province_code, province in rows
    ]
    out.sort(key=lambda e: (e.width, e.id))
    return Listing(out)


def index_of(app: Flask) -> CapabilityIndex:
    found = app.extensions.get(EXTENSION)
    if not isinstance(found, CapabilityIndex):
        found = app.extensions[EXTENSION] = CapabilityIndex()
    return found


def index() -> CapabilityIndex | None:
    """The app's index, None when CAPABILITY_INDEX is off."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if not app.config.get("CAPABILITY_INDEX", True):
        return None
    return index_of(app)


def _answers(f: ResourceFilters) -> bool:
    """Whether the index ranks ``f`` (every filter checked here), when it is on."""
    return (
        f.measurand is not None
        and f.value is not None
        and f.unit is not None
        and f.q is None
        and not f.province
    )


def validated(f: ResourceFilters, facets: bool) -> bool:
    """True when the index will answer ``f`` without facets, after refusing what
    ``search._where`` would refuse of it (its measurand, its unit): the search then
    builds none of its SQL filters, which only the SQL ranking and the facets use."""
    if facets or not _answers(f) or index() is None:
        return False
    assert f.measurand is not None and f.value is not None and f.unit is not None
    name = capability.get_measurand(search_index.resolve_measurand(f.measurand)).name
    capability.search_bounds(f.value, f.unit, name)
    return True


def search_matches(
    f: ResourceFilters, *, available_only: bool = False, limit: int | None = None
) -> Sequence[Entry] | None:
    """The matches of a capability search ``f`` (already validated), ranked from the
    index as ``ranked`` cuts them; None when the search has a filter the index cannot
    check (words, a province prefix) or the index is off."""
    found = _matches(f, lambda store, name: (store.entries(name), None), available_only, limit)
    return None if found is None else found[0]


def kept_matches(
    f: ResourceFilters, *, available_only: bool = False, limit: int | None = None
) -> tuple[Sequence[Entry], int] | None:
    """``search_matches`` from the list kept now, without reading the catalogue's
    version, and the version it was read at: right only if the rows read next are at
    it (the caller checks). None also when no list of the measurand is kept."""
    found = _matches(f, lambda store, name: store.kept(name), available_only, limit)
    return None if found is None or found[1] is None else (found[0], found[1])


def _matches(
    f: ResourceFilters,
    listing: Callable[[CapabilityIndex, str], tuple[Listing, int | None] | None],
    available_only: bool,
    limit: int | None,
) -> tuple[Sequence[Entry], int | None] | None:
    store = index() if _answers(f) else None
    if store is None:
        return None
    assert f.measurand is not None and f.value is not None and f.unit is not None
    if f.kind is not None and f.kind != ResourceKind.INSTRUMENT:
        return [], None
    name = capability.get_measurand(search_index.resolve_measurand(f.measurand)).name
    low, high = capability.search_bounds(f.value, f.unit, name)
    found = listing(store, name)
    if found is None:
        return None
    entries = ranked(
        found[0],
        low,
        high,
        field=f.field,
        institute=f.institute or None,
        near=f.near_province or None,
        available_only=available_only,
        limit=limit,
    )
    return entries, found[1]


def plain_page(f: ResourceFilters, page: int, per_page: int) -> tuple[list[Any], Any, int] | None:
    """The API's page of a capability search without window or facets (already
    validated) as plain rows, with its rules and count, in ONE statement: ranked from
    the list kept now, its rows read with the catalogue's version, and given only if
    that is the list's version. None when the request has read the version already
    (the answer cache is on: the usual path costs nothing more), when no list is kept,
    the page is empty, or the version moved on (the usual path then reads it first)."""
    if search_cache.known() is not None:
        return None
    kept = kept_matches(f)
    if kept is None:
        return None
    matches, version = kept
    offset = (page - 1) * per_page
    ids = [e.id for e in matches[offset : offset + per_page]]
    found = search_pages.load_rows_at(ids, version) if ids else None
    if found is None or found[2] != version:
        return None
    return found[0], found[1], len(matches)


def ranked(
    entries: Sequence[Entry],
    low: float,
    high: float,
    *,
    field: Any = None,
    institute: str | None = None,
    near: str | None = None,
    available_only: bool = False,
    limit: int | None = None,
) -> Sequence[Entry]:
    """The entries whose range reaches [low, high] (``range_min_base <= high AND
    range_max_base >= low``), in the SQL ranking's order: narrowest range first,
    then (with ``near``) the searcher's province, then the id; with
    ``available_only`` only the available ones, and at most ``limit`` (without
    ``near`` the list is in order already, so it stops there)."""
    fast = plain(
        entries,
        low,
        high,
        field=field is not None,
        institute=institute is not None,
        near=near,
        available_only=available_only,
        limit=limit,
    )
    if fast is not None:  # counted by bisection, walked only as far as it is read
        return fast
    found: Iterator[Entry] = (
        e
        for e in entries
        if e.low <= high
        and e.high >= low
        and (field is None or e.field == field)
        and (institute is None or e.institute == institute)
    )
    if near:
        # stable: ties of (width, nearness) keep their id order
        def key(e: Entry) -> tuple[float, int]:
            return (e.width, 0 if near in (e.province_code, e.province) else 1)

        found = iter(sorted(found, key=key))
    if available_only:
        found = (e for e in found if e.status == ResourceStatus.AVAILABLE)
    return Walk(found, limit)


__all__ = [
    "CapabilityIndex",
    "Entry",
    "Listing",
    "index",
    "index_of",
    "plain_page",
    "ranked",
    "search_matches",
    "validated",
]
