"""The capability matches counted by bisection and walked lazily
(labshare/catalogue/capability_matches.py) are exactly the entries a test of every
one finds, in the same order, whatever part of them is read: ranges out of order
or not a number, bounds equal to the value's, values outside every range."""

from __future__ import annotations

import random
import sys
import threading
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


def test_values_reaching_the_same_entries_share_one_walk() -> None:
    """Which entries reach [low, high] depends only on how many lows are at most
    ``high`` and how many highs are below ``low``: values alike in that share the
    walk (walked once, then read), others have their own; each gives what a test of
    every entry gives."""
    listing = Listing(
        sorted(
            [_entry(1, 0.0, 10.0), _entry(2, 2.0, 4.0), _entry(3, 5.0, 6.0), _entry(4, 1.0, 3.0)],
            key=lambda e: (e.width, e.id),
        )
    )
    first = listing.walked(2.5, 2.5, False)
    assert first is not None and listing.walked(2.9, 3.0, False) is first
    assert listing.walked(2.5, 2.5, True) is not first  # the available ones only
    assert listing.walked(3.5, 3.5, False) is not first  # past 1..3's high
    assert listing.walked(1.5, 1.5, False) is not first  # below 2..4's low
    for value in (2.5, 2.9, 3.0, 3.5, 1.5, 0.0, 10.0, 11.0, -1.0):
        assert list(Matches(listing, value, value)) == _naive(listing, value, value), value
    walked = listing.walked(2.5, 2.5, False)
    assert walked is not None
    tested = walked.next
    assert [e.id for e in Matches(listing, 2.6, 2.6)] == [2, 4, 1]
    assert walked.next == tested  # nothing tested again


def test_a_walk_goes_on_from_where_it_stopped() -> None:
    listing = Listing([_entry(i, 0.0, 1.0 + i) for i in range(100)])
    walked = listing.walked(50.0, 50.0, False)
    assert walked is not None
    assert walked.upto(3) == [49, 50, 51] and walked.next == 52
    assert walked.upto(2) == [49, 50] and walked.next == 52
    assert walked.upto(60) == list(range(49, 100)) and walked.done
    found = plain(listing, 50.0, 50.0, limit=5)
    assert found is not None and [e.id for e in found] == [49, 50, 51, 52, 53]


def test_a_walk_keeps_at_most_its_share_and_walks_a_deep_page_alone() -> None:
    """A deep page (an attacker's ``page=1000``) is walked for that search, not kept:
    each walk keeps at most ``Listing.KEPT`` indices."""
    listing = Listing([_entry(i, 0.0, 10.0 + i) for i in range(3 * Listing.KEPT)])
    walked = listing.walked(5.0, 5.0, False)
    assert walked is not None
    deep = Matches(listing, 5.0, 5.0)
    assert [e.id for e in deep[2 * Listing.KEPT : 2 * Listing.KEPT + 3]] == [
        2 * Listing.KEPT + n for n in range(3)
    ]
    assert len(walked.found) == Listing.KEPT and walked.next == Listing.KEPT
    assert not walked.done
    assert list(Matches(listing, 5.0, 5.0)) == list(listing)  # the rest walked again
    assert len(walked.found) == Listing.KEPT


def test_a_nan_bound_reaches_nothing_and_keeps_no_walk() -> None:
    listing = _listing(random.Random(3), 50)
    nan = float("nan")
    assert listing.walked(nan, 3.0, True) is None and listing.walked(3.0, nan, False) is None
    found = plain(listing, nan, 3.0, available_only=True, limit=10)
    assert found is not None and list(found) == []
    assert not listing.walks


def test_a_listing_keeps_at_most_its_walks() -> None:
    listing = Listing([_entry(i, float(i), float(i) + 0.5) for i in range(400)])
    for i in range(Listing.WALKS + 10):
        assert [e.id for e in plain(listing, i + 0.2, i + 0.2, limit=3) or []] == [i]
    assert 0 < len(listing.walks) <= Listing.WALKS


def test_threads_walking_one_listing_find_what_testing_each_entry_finds() -> None:
    listing = _listing(random.Random(21), 2000)
    failed: list[BaseException] = []

    def walk(seed: int) -> None:
        rnd = random.Random(seed)
        try:
            for _ in range(200):
                point = rnd.choice([float(x) for x in range(-7, 32)])
                only = rnd.random() < 0.5  # every entry is available: the same entries
                limit = rnd.choice((3, 40, 201))
                found = plain(listing, point, point, available_only=only, limit=limit)
                assert found is not None
                assert list(found) == _naive(listing, point, point)[:limit]
                # a deep page: beyond what a walk keeps, walked outside the lock
                deep = Matches(listing, point, point)
                at = rnd.choice((Listing.KEPT - 5, 2 * Listing.KEPT))
                assert deep[at : at + 20] == _naive(listing, point, point)[at : at + 20]
        except BaseException as exc:  # re-raised below
            failed.append(exc)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch often: inside the walks too
    try:
        threads = [threading.Thread(target=walk, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert not failed, failed
