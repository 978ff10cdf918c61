"""The matches of a plain capability search, counted and cut without testing every
instrument of the measurand.

A capability search asks which instruments' base ranges reach a value: ``low <=
range_max_base`` and ``range_min_base <= high`` (the value with its tolerance).
Filtering the measurand's list in Python to count them cost about a millisecond
for 6,000 frequency instruments, on every uncached search. Without a filter
besides the value, the count needs no walk: every instrument whose range is in
order (min <= max) and lies wholly below the value has its minimum below it too,
so

    matches = #{min <= high} - #{max < low}

two bisections of the sorted bounds. Instruments whose range is out of order (or
not a number) are few, and tested one by one. The page is then found by walking
the list in rank order only until it is full (``Matches``: a lazy sequence, walked
further only when more of it is read).

Which entries reach [low, high] depends only on how many lows are at most ``high``
and how many highs are below ``low`` (two bisections of every bound): values alike
in that have the same matches. So each listing keeps its walks by those two counts
(``Listing.walked``): the indices found so far and where the walk stopped, gone on
with when a search reads further. A value asked again, or another between the same
bounds, tests nothing: the walk over thousands of entries to fill a page of
narrow-range matches was a tenth of a window search's CPU.
"""

from __future__ import annotations

import math
import threading
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Sequence
from itertools import islice
from typing import TYPE_CHECKING, Any, overload

from labshare.models import ResourceStatus

if TYPE_CHECKING:
    from labshare.catalogue.capability_index import Entry


class Listing(list["Entry"]):
    """A measurand's entries in rank order, with their bounds in lists of their own
    and sorted (built once per list, at its read), and the walks made over it."""

    #: walks kept per listing (then all are dropped: the values asked are few), and
    #: the indices each keeps at most (a window's scan reads up to 201; a deep page
    #: walks further without keeping what lies beyond)
    WALKS = 64
    KEPT = 256

    def __init__(self, entries: Sequence[Entry]) -> None:
        super().__init__(entries)
        self.lows = [e.low for e in entries]
        self.highs = [e.high for e in entries]
        self.available = [e.status == ResourceStatus.AVAILABLE for e in entries]
        regular = [e for e in entries if e.low <= e.high]  # False for a NaN too
        self.sorted_lows = sorted(e.low for e in regular)
        self.sorted_highs = sorted(e.high for e in regular)
        self.odd = [e for e in entries if not e.low <= e.high]
        # every bound but NaN (which reaches nothing), for the walks' keys
        self.all_lows = sorted(x for x in self.lows if not math.isnan(x))
        self.all_highs = sorted(x for x in self.highs if not math.isnan(x))
        self.lock = threading.Lock()
        self.walks: dict[tuple[int, int, bool], _Walked] = {}

    def reaching(self, low: float, high: float) -> int:
        """How many entries reach [low, high] (finite, low <= high)."""
        n = bisect_right(self.sorted_lows, high) - bisect_left(self.sorted_highs, low)
        return n + sum(1 for e in self.odd if e.low <= high and e.high >= low)

    def walked(self, low: float, high: float, available_only: bool) -> _Walked | None:
        """The walk of the entries reaching [low, high] (only the available ones with
        ``available_only``), shared by every value with the same entries: which
        reach it depends only on how many lows are at most ``high`` and how many
        highs are below ``low``. None for a NaN bound (nothing is compared alike)."""
        if math.isnan(low) or math.isnan(high):
            return None
        key = (bisect_right(self.all_lows, high), bisect_left(self.all_highs, low), available_only)
        with self.lock:
            found = self.walks.get(key)
            if found is None:
                if len(self.walks) >= self.WALKS:
                    self.walks.clear()
                found = self.walks[key] = _Walked(self, low, high, available_only)
            return found


class _Walked:
    """The indices of a listing's entries that reach [low, high] (and are available,
    with ``available_only``), in rank order, as far as they have been asked for (at
    most ``Listing.KEPT`` of them kept)."""

    __slots__ = ("available_only", "done", "found", "high", "listing", "low", "next")

    def __init__(self, listing: Listing, low: float, high: float, available_only: bool) -> None:
        self.listing, self.low, self.high = listing, low, high
        self.available_only = available_only
        self.found = array("i")
        self.next = 0  # the next index of the listing to test
        self.done = False

    def upto(self, wanted: int) -> list[int]:
        """The first ``wanted`` indices (fewer when there are no more), walking the
        listing further only when they were not found yet; beyond what is kept, the
        rest walked for this call alone (outside the lock)."""
        with self.listing.lock:
            if not self.done and len(self.found) < min(wanted, Listing.KEPT):
                self.next = self._walk(self.found, self.next, min(wanted, Listing.KEPT))
                self.done = self.next >= len(self.listing)
            found, start, done = self.found[:wanted].tolist(), self.next, self.done
        if len(found) < wanted and not done:
            self._walk(found, start, wanted)
        return found

    def _walk(self, found: Any, i: int, wanted: int) -> int:
        """Append to ``found`` the indices reaching from ``i`` on until it holds
        ``wanted``; the next index to test."""
        listing = self.listing
        lows, highs, available = listing.lows, listing.highs, listing.available
        low, high, only, end = self.low, self.high, self.available_only, len(listing)
        while i < end and len(found) < wanted:
            if lows[i] <= high and highs[i] >= low and (available[i] or not only):
                found.append(i)
            i += 1
        return i


class Matches(Sequence["Entry"]):
    """The entries of ``listing`` that reach [low, high], in its order; its length
    known at once, its items found as far as they are read."""

    def __init__(self, listing: Listing, low: float, high: float) -> None:
        self._listing = listing
        self._total = listing.reaching(low, high)
        walked = listing.walked(low, high, available_only=False)
        assert walked is not None  # finite bounds
        self._walked = walked
        self._found: list[Entry] = []

    def _fill(self, wanted: int) -> None:
        wanted = min(wanted, self._total)
        if len(self._found) < wanted:
            listing = self._listing
            self._found = [listing[i] for i in self._walked.upto(wanted)]

    def __len__(self) -> int:
        return self._total

    @overload
    def __getitem__(self, k: int) -> Entry: ...

    @overload
    def __getitem__(self, k: slice) -> list[Entry]: ...

    def __getitem__(self, k: int | slice) -> Entry | list[Entry]:
        if isinstance(k, slice):
            start, stop, step = k.indices(self._total)
            self._fill(stop if step > 0 and start >= 0 else self._total)
            return self._found[start:stop:step]
        index = k + self._total if k < 0 else k
        if not 0 <= index < self._total:
            raise IndexError(k)
        self._fill(index + 1)
        return self._found[index]

    def __iter__(self) -> Iterator[Entry]:
        self._fill(self._total)
        return iter(self._found)


class Walk(Sequence["Entry"]):
    """The first ``limit`` (all when None) of ``found`` (an iterator, in rank order),
    taken from it only as far as they are read: a window search's scan reads a few
    dozen of its candidates, and walking the measurand's list to the scan limit cost
    more than the rest of its ranking."""

    def __init__(self, found: Iterator[Entry], limit: int | None) -> None:
        self._source: Iterator[Entry] | None = found if limit is None else islice(found, limit)
        self._found: list[Entry] = []

    def _fill(self, wanted: int | None) -> None:
        source, found = self._source, self._found
        if source is None or (wanted is not None and len(found) >= wanted):
            return
        found.extend(source if wanted is None else islice(source, wanted - len(found)))
        if wanted is None or len(found) < wanted:
            self._source = None  # exhausted

    def __len__(self) -> int:
        self._fill(None)
        return len(self._found)

    @overload
    def __getitem__(self, k: int) -> Entry: ...

    @overload
    def __getitem__(self, k: slice) -> list[Entry]: ...

    def __getitem__(self, k: int | slice) -> Entry | list[Entry]:
        if isinstance(k, slice):
            plain_stop = k.step in (None, 1) and (k.start or 0) >= 0 and k.stop is not None
            self._fill(k.stop if plain_stop and k.stop >= 0 else None)
            return self._found[k]
        self._fill(k + 1 if k >= 0 else None)
        return self._found[k]

    def __iter__(self) -> Iterator[Entry]:
        self._fill(None)
        return iter(self._found)


def plain(
    entries: Sequence[Entry],
    low: float,
    high: float,
    *,
    available_only: bool = False,
    limit: int | None = None,
    **filters: Any,
) -> Sequence[Entry] | None:
    """When ``entries`` is a ``Listing`` and no filter but the value, the status and
    a limit applies (every one of ``filters`` false): the lazy matches, counted by
    bisection without the other two, else walked over the listing's own bound lists
    (a window search's candidates: comparing floats in lists costs a third of
    reading each entry's fields). None otherwise (the caller filters)."""
    if not isinstance(entries, Listing) or any(filters.values()):
        return None
    if available_only or limit is not None:
        return Walk(_reaching(entries, low, high, available_only), limit)
    if not (math.isfinite(low) and math.isfinite(high) and low <= high):
        return None
    return Matches(entries, low, high)


def _reaching(listing: Listing, low: float, high: float, available_only: bool) -> Iterator[Entry]:
    """The entries of ``listing`` that reach [low, high] (and are available), in
    order: from the listing's walk of them, a few more at a time."""
    walked = listing.walked(low, high, available_only)
    if walked is None:  # a NaN bound: nothing reaches it
        return
    k, step = 0, 16
    while True:
        indices = walked.upto(k + step)
        for i in indices[k:]:
            yield listing[i]
        if len(indices) < k + step:
            return
        k, step = len(indices), step * 2


__all__ = ["Listing", "Matches", "Walk", "plain"]
