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
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Sequence
from itertools import islice
from typing import TYPE_CHECKING, Any, overload

from labshare.models import ResourceStatus

if TYPE_CHECKING:
    from labshare.catalogue.capability_index import Entry


class Listing(list["Entry"]):
    """A measurand's entries in rank order, with their bounds in lists of their own
    and sorted (built once per list, at its read)."""

    def __init__(self, entries: Sequence[Entry]) -> None:
        super().__init__(entries)
        self.lows = [e.low for e in entries]
        self.highs = [e.high for e in entries]
        self.available = [e.status == ResourceStatus.AVAILABLE for e in entries]
        regular = [e for e in entries if e.low <= e.high]  # False for a NaN too
        self.sorted_lows = sorted(e.low for e in regular)
        self.sorted_highs = sorted(e.high for e in regular)
        self.odd = [e for e in entries if not e.low <= e.high]

    def reaching(self, low: float, high: float) -> int:
        """How many entries reach [low, high] (finite, low <= high)."""
        n = bisect_right(self.sorted_lows, high) - bisect_left(self.sorted_highs, low)
        return n + sum(1 for e in self.odd if e.low <= high and e.high >= low)


class Matches(Sequence["Entry"]):
    """The entries of ``listing`` that reach [low, high], in its order; its length
    known at once, its items found as far as they are read."""

    def __init__(self, listing: Listing, low: float, high: float) -> None:
        self._listing, self._low, self._high = listing, low, high
        self._total = listing.reaching(low, high)
        self._found: list[Entry] = []
        self._next = 0  # the next index of the listing to test

    def _fill(self, wanted: int) -> None:
        found, listing = self._found, self._listing
        if len(found) >= min(wanted, self._total):
            return
        lows, highs, low, high = listing.lows, listing.highs, self._low, self._high
        i = self._next
        for i in range(self._next, len(listing)):
            if lows[i] <= high and highs[i] >= low:
                found.append(listing[i])
                if len(found) >= wanted:
                    break
        self._next = i + 1

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
    """The entries of ``listing`` that reach [low, high] (and are available), in order."""
    lows, highs, available = listing.lows, listing.highs, listing.available
    for i in range(len(listing)):
        if lows[i] <= high and highs[i] >= low and (available[i] or not available_only):
            yield listing[i]


__all__ = ["Listing", "Matches", "Walk", "plain"]
