"""The text index's snapshot (text_index.py): per token the sorted ids of the listed
resources holding it, and the walk of those lists that ranks a text search as the
database does (``search._order``: exact name, name tokens, measurand tokens, the
rest, then the id), as far as a page and its count need, within WORK_LIMIT steps."""

from __future__ import annotations

import heapq
from array import array
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from labshare.catalogue import search_index

#: A prefix (``pre`` of pressure, precision…) standing for more words than this is
#: looked up by the database (one merged walk per word).
MAX_PREFIX_WORDS = 64
#: Steps (ids walked, lists asked) a search may take in memory before it is left to
#: the database: a few milliseconds. A page and its count take a few hundred; a
#: query of many prefixes that match much but rarely together (``bia-bia-…z73``)
#: would take millions, holding the worker's interpreter all the while.
WORK_LIMIT = 20_000


class _Budget:
    def __init__(self, steps: int) -> None:
        self.left = steps

    def spend(self, steps: int) -> None:
        self.left -= steps
        if self.left < 0:
            raise TooWide


class _Node:
    """A set of ids: walked in ascending order (``ids``) or asked (``has``, which
    asks ``width`` lists at most)."""

    size: int
    width = 1

    def ids(self) -> Iterator[int]:
        raise NotImplementedError

    def has(self, i: int) -> bool:
        raise NotImplementedError


class _List(_Node):
    def __init__(self, ids: array[int]) -> None:
        self.list = ids
        self.size = len(ids)

    def ids(self) -> Iterator[int]:
        return iter(self.list)

    def has(self, i: int) -> bool:
        k = bisect_left(self.list, i)
        return k < self.size and self.list[k] == i


class _Any(_Node):
    def __init__(self, kids: list[_Node], budget: _Budget) -> None:
        self.kids = kids
        self.budget = budget
        self.size = sum(k.size for k in kids)
        self.width = sum(k.width for k in kids)

    def ids(self) -> Iterator[int]:
        last = -1
        spend = self.budget.spend
        for i in heapq.merge(*(k.ids() for k in self.kids)):
            spend(1)
            if i != last:
                yield i
                last = i

    def has(self, i: int) -> bool:
        return any(k.has(i) for k in self.kids)


class _All(_Node):
    def __init__(self, kids: list[_Node], budget: _Budget) -> None:
        self.kids = sorted(kids, key=lambda k: k.size)  # walk the shortest, ask the others
        self.budget = budget
        self.size = self.kids[0].size
        self.width = sum(k.width for k in kids)

    def ids(self) -> Iterator[int]:
        first, rest = self.kids[0], self.kids[1:]
        cost = 1 + sum(k.width for k in rest)
        spend = self.budget.spend
        for i in first.ids():
            spend(cost)
            if all(k.has(i) for k in rest):
                yield i

    def has(self, i: int) -> bool:
        return all(k.has(i) for k in self.kids)


_NOTHING = _List(array("i"))


def _any(kids: list[_Node], budget: _Budget) -> _Node:
    kids = [k for k in kids if k.size]
    if not kids:
        return _NOTHING
    return kids[0] if len(kids) == 1 else _Any(kids, budget)


def _all(kids: list[_Node], budget: _Budget) -> _Node:
    if any(not k.size for k in kids):
        return _NOTHING
    return kids[0] if len(kids) == 1 else _All(kids, budget)


def _distinct(query: search_index.Query) -> search_index.Query:
    """``query`` without repeated pieces, alternatives or tokens (``bia-bia-bia``:
    one piece), which change nothing of what it matches."""
    pieces = dict.fromkeys(
        tuple(dict.fromkeys(tuple(dict.fromkeys(alt)) for alt in piece)) for piece in query.pieces
    )
    return search_index.Query([list(piece) for piece in pieces])


class TooWide(Exception):
    """The search is the database's to answer: a prefix stands for more than
    MAX_PREFIX_WORDS words, or the walk would take more than WORK_LIMIT steps."""


@dataclass(frozen=True)
class _Tokens:
    """Token → the sorted ids holding it, and the tokens sorted (for prefixes)."""

    lists: dict[str, array[int]]
    sorted: list[str]

    def node(self, query: search_index.Query, budget: _Budget) -> _Node:
        """The ids whose tokens satisfy ``query`` (as ``search_index._has`` and the
        database's MATCH / @@ test them)."""
        return _all(
            [
                _any(
                    [
                        _all([self._token(t, budget) for t in alternative], budget)
                        for alternative in piece
                    ],
                    budget,
                )
                for piece in query.pieces
            ],
            budget,
        )

    def _token(self, t: search_index.Token, budget: _Budget) -> _Node:
        if not t.prefix:
            found = self.lists.get(t.text)
            return _List(found) if found is not None else _NOTHING
        # tokens are [a-z0-9]+: every word with the prefix sorts before prefix + "~"
        lo = bisect_left(self.sorted, t.text)
        hi = bisect_left(self.sorted, t.text + "~", lo)
        if hi - lo > MAX_PREFIX_WORDS:
            raise TooWide
        return _any([_List(self.lists[w]) for w in self.sorted[lo:hi]], budget)


@dataclass(frozen=True)
class _Measurand:
    """The resources whose measurand tokens are ``tokens`` (one per measurand)."""

    tokens: frozenset[str]
    sorted: tuple[str, ...]
    ids: array[int]

    def satisfies(self, query: search_index.Query) -> bool:
        def has(t: search_index.Token) -> bool:
            if not t.prefix:
                return t.text in self.tokens
            k = bisect_left(self.sorted, t.text)
            return k < len(self.sorted) and self.sorted[k].startswith(t.text)

        return all(
            any(all(has(t) for t in alternative) for alternative in piece) for piece in query.pieces
        )


@dataclass(frozen=True)
class Snapshot:
    version: int
    every: _Tokens
    names: _Tokens
    #: lower(name) and lower(name_en), as the database lower-cases them → sorted ids
    exact: dict[str, array[int]]
    measurands: tuple[_Measurand, ...]
    resources: int

    def ranked(
        self, query: search_index.Query, wanted_name: str, wanted: int, count_to: int
    ) -> tuple[list[int], int]:
        """The first ``wanted`` matches of ``query`` in the ranking of
        ``search._order`` without a province (exact name 0, name tokens 1, measurand
        tokens 2, the rest 3; then the id), and the matches counted up to
        ``count_to`` + 1. Raises TooWide for a prefix of too many words."""
        query = _distinct(query)
        budget = _Budget(WORK_LIMIT)
        spend = budget.spend
        node = self.every.node(query, budget)
        every = _Replay(node)
        out: list[int] = []
        seen: set[int] = set()

        def take(ids: Iterable[int], cost: int, check: bool) -> bool:
            """Rank the ids not ranked yet (that match, with ``check``) until the
            page is full; True when ``ids`` ran out first (the next tier is asked)."""
            for i in ids:
                spend(cost)
                if i not in seen and (not check or every.has(i)):
                    out.append(i)
                    seen.add(i)
                    if len(out) >= wanted:
                        return False
            return True

        # Each tier's ids are checked against the whole document's tokens, as the
        # database's lookup does: name and measurand tokens are among them when
        # search_index wrote the row, but need not be in one written by hand.
        ask = 1 + node.width
        if (
            take(self.exact.get(wanted_name, ()), ask, True)
            and take(self.names.node(query, budget).ids(), ask, True)
            and take(
                _merged([m.ids for m in self.measurands if m.satisfies(query)], budget), ask, True
            )
        ):
            take(every.ids(), 1, False)
        count = 0
        for _ in every.ids():
            spend(1)
            count += 1
            if count > count_to:
                break
        return out[:wanted], count


class _Replay:
    """A node's ids walked once and replayed: the rest tier and then the count walk
    the same matches (an intersection of long lists costs a bisection per id). The
    walks come one after the other, each from the start."""

    def __init__(self, node: _Node) -> None:
        self.node = node
        self.walked: list[int] = []
        self.source: Iterator[int] | None = None

    def has(self, i: int) -> bool:
        return self.node.has(i)

    def ids(self) -> Iterator[int]:
        yield from self.walked
        if self.source is None:
            self.source = self.node.ids()
        for i in self.source:
            self.walked.append(i)
            yield i


def _merged(lists: list[array[int]], budget: _Budget) -> Iterable[int]:
    if len(lists) == 1:
        return lists[0]
    return _Any([_List(x) for x in lists], budget).ids()


def build(version: int, rows: Iterable[Any]) -> Snapshot:
    """A snapshot from rows of (id, tokens, name tokens, measurand tokens, lower(name),
    lower(name_en)) in ascending id order."""

    def lists() -> defaultdict[str, array[int]]:
        # arrays from the start (4 bytes an id): lists of the same ids, converted
        # afterwards, left the process 50 MB larger for good
        return defaultdict(lambda: array("i"))

    every, names, exact, measurands = lists(), lists(), lists(), lists()
    n = 0
    for rid, tokens, name_tokens, measurand_tokens, name, name_en in rows:
        n += 1
        # each token once per document (document_tokens writes it so; by hand, maybe not)
        for t in set((tokens or "").split()):
            every[t].append(rid)
        for t in set((name_tokens or "").split()):
            names[t].append(rid)
        if measurand_tokens:
            measurands[measurand_tokens].append(rid)
        if name is not None:
            exact[name].append(rid)
        if name_en is not None and name_en != name:
            exact[name_en].append(rid)
    return Snapshot(
        version=version,
        every=_Tokens(dict(every), sorted(every)),
        names=_Tokens(dict(names), sorted(names)),
        exact=dict(exact),
        measurands=tuple(
            _Measurand(frozenset(k.split()), tuple(sorted(set(k.split()))), v)
            for k, v in measurands.items()
        ),
        resources=n,
    )


__all__ = ["MAX_PREFIX_WORDS", "WORK_LIMIT", "Snapshot", "TooWide", "build"]
