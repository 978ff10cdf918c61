"""The capability matches counted by bisection and walked lazily
(labshare/catalogue/capability_matches.py) are exactly the entries a test of every
one finds, in the same order, whatever part of them is read: ranges out of order
or not a number, bounds equal to the value's, values outside every range."""

from __future__ import annotations

import random
from typing import Any

import pytest

from labshare.catalogue.capability_index import Entry, ranked
from labshare.catalogue.capability_matches import Listing, Matches, Walk, plain
from labshare.models import Field, ResourceStatus


def _entry(
    i: int, low: float, high: float, status: ResourceStatus = ResourceStatus.AVAILABLE
) -> Entry:
    return Entry(
        id=i,
        low=low,
        high=high,
        width=high - low,
        status=status,
        field=Field.MECHANICAL,
        institute="X",
        province_code=None,
        province=None,
    )


def _listing(rnd: random.Random, n: int) -> Listing:
    grid = [float(x) for x in range(-5, 30)]
    out = []
    for i in range(n):
        low, high = sorted(rnd.sample(grid, 2))
        if i % 17 == 0:
            low, high = high, low  # out of order
        if i % 41 == 0:
            low = float("nan")
        out.append(_entry(i, low, high))
    out.sort(key=lambda e: (e.width, e.id))
    return Listing(out)


def _naive(entries: list[Entry], low: float, high: float) -> list[Entry]:
    return [e for e in entries if e.low <= high and e.high >= low]


def test_the_count_and_every_read_agree_with_testing_each_entry() -> None:
    rnd = random.Random(11)
    for n in (0, 1, 5, 300):
        listing = _listing(rnd, n)
        for _ in range(60):
            point = rnd.choice([float(x) for x in range(-7, 32)] + [rnd.uniform(-6, 31)])
            low, high = point - rnd.choice((0.0, 1e-9, 2.5)), point
            expected = _naive(listing, low, high)
            found = Matches(listing, low, high)
            assert len(found) == len(expected)
            start = rnd.randint(0, max(len(expected), 1))
            size = rnd.choice((1, 3, 20))
            assert found[start : start + size] == expected[start : start + size]
            if expected:
                k = rnd.randrange(len(expected))
                assert found[k] == expected[k] and found[-1] == expected[-1]
            assert list(found) == expected
            assert found[::2] == expected[::2]


def test_ranked_is_lazy_only_without_other_filters() -> None:
    listing = _listing(random.Random(5), 50)
    assert isinstance(ranked(listing, 3.0, 3.0), Matches)
    for extra in (
        {"field": Field.MECHANICAL},
        {"institute": "X"},
        {"near": "江苏省"},
        {"available_only": True},
        {"limit": 5},
    ):
        got = ranked(listing, 3.0, 3.0, **extra)  # type: ignore[arg-type]
        assert not isinstance(got, Matches), extra
    assert plain(listing, float("nan"), 3.0) is None
    assert plain(listing, 3.0, float("inf")) is None
    assert plain(list(listing), 3.0, 3.0) is None  # not a Listing: tested one by one
    assert list(ranked(listing, 3.0, 3.0)) == _naive(listing, 3.0, 3.0)


def test_a_walk_reads_its_source_only_as_far_as_it_is_read() -> None:
    taken: list[int] = []

    def source() -> Any:
        for i in range(100):
            taken.append(i)
            yield _entry(i, 0.0, 1.0)

    walk = Walk(source(), 40)
    assert [e.id for e in walk[0:5]] == [0, 1, 2, 3, 4]
    assert len(taken) == 5
    assert walk[7].id == 7
    assert len(taken) == 8
    assert [e.id for e in walk[6:10]] == [6, 7, 8, 9]
    assert len(taken) == 10
    assert len(walk) == 40  # the limit: the rest is never taken
    assert len(taken) == 40


def test_a_walk_answers_as_the_list_it_stands_for() -> None:
    rnd = random.Random(5)
    for n, limit in [(0, 10), (3, None), (25, 10), (25, 25), (25, 40)]:
        full = [_entry(i, 0.0, 1.0) for i in range(n)]
        expected = full if limit is None else full[:limit]
        for _ in range(30):
            walk = Walk(iter(full), limit)
            a, b = rnd.randrange(-30, 30), rnd.randrange(-30, 30)
            step = rnd.choice([None, 1, 2, -1])
            assert walk[a:b:step] == expected[a:b:step], (n, limit, a, b, step)
            assert walk[a:] == expected[a:]
            assert walk[:b] == expected[:b]
            if -len(expected) <= a < len(expected):
                assert walk[a] == expected[a]
            assert list(walk) == expected
            assert len(walk) == len(expected)
        with pytest.raises(IndexError):
            Walk(iter(full), limit)[len(expected)]


def test_a_window_search_s_ranking_is_walked_only_as_far_as_it_is_read() -> None:
    """With ``available_only`` and a limit (a window search's candidates), ``ranked``
    tests the measurand's entries only as far as its answer is read."""
    tested: list[int] = []

    class Counting(list[Entry]):
        def __iter__(self) -> Any:
            for e in super().__iter__():
                tested.append(e.id)
                yield e

    entries = Counting(_entry(i, 0.0, 10.0) for i in range(1000))
    found = ranked(entries, 1.0, 2.0, field=Field.MECHANICAL, available_only=True, limit=201)
    assert [e.id for e in found[0:5]] == [0, 1, 2, 3, 4]
    assert len(tested) <= 6
    assert len(found) == 201


def test_available_ones_up_to_a_limit_are_walked_over_the_listing_s_lists() -> None:
    """A window search's candidates (``available_only`` and a limit, no other filter):
    walked over the listing's own lists, the same entries a test of every one finds."""
    rnd = random.Random(8)
    statuses = [ResourceStatus.AVAILABLE] * 3 + [ResourceStatus.MAINTENANCE]
    for n in (0, 1, 40, 300):
        base = _listing(rnd, n)
        listing = Listing([_entry(e.id, e.low, e.high, rnd.choice(statuses)) for e in base])
        for _ in range(40):
            point = rnd.uniform(-6, 31)
            low, high = point - rnd.choice((0.0, 2.5)), point
            limit = rnd.choice((None, 1, 5, 201))
            available = [e for e in _naive(listing, low, high) if e.status == "available"]
            expected = available if limit is None else available[:limit]
            found = plain(listing, low, high, available_only=True, limit=limit)
            assert found is not None  # not the generic filter
            assert found[:3] == expected[:3]
            assert list(found) == expected and len(found) == len(expected)
            everything = plain(listing, low, high, limit=limit)
            assert everything is not None
            assert list(everything) == _naive(listing, low, high)[:limit]
