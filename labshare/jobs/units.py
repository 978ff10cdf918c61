"""Jobs work one resource at a time, each in its own short transaction.

The lock order of every writer is: resources in id order, then their bookings
(and waitlist entries). A calendar trigger updates the ``resource`` row whenever
one of its bookings or entries changes, so a job that changed bookings of many
resources in one transaction, in time order, held resource locks in an order no
staff action follows: a deadlock (docs/architecture.md). Here each resource's
work locks that resource first, runs, and commits before the next resource is
touched, so a job never holds more than one resource and never waits for one
while holding another. Each unit is retried when it still loses a race
(``database.retrying``); the work itself stays idempotent (conditional UPDATEs),
so two schedulers, or a rerun, change each row once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TypeVar

from labshare.booking.bookings import lock_resources
from labshare.database import retrying

log = logging.getLogger(__name__)
T = TypeVar("T")


def per_resource(
    resource_ids: Iterable[int], work: Callable[[int], list[T]], *, what: str
) -> list[T]:
    """``work(resource_id)`` for each resource, in id order, each under the
    resource's lock in a transaction of its own, committed. Returns what the kept
    calls returned, concatenated (a retried call counts once). A resource whose
    work fails for another reason than a lost race is logged and skipped (its rows
    stay due for the next run); the others go on, and the run then fails naming it."""
    done: list[T] = []
    failed: list[int] = []
    for resource_id in sorted(set(resource_ids)):

        def unit(resource_id: int = resource_id) -> list[T]:
            lock_resources([resource_id])
            return work(resource_id)

        try:
            done.extend(retrying(unit, what=f"{what}, resource {resource_id}"))
        except Exception:
            log.exception("%s: resource %d failed; left for the next run", what, resource_id)
            failed.append(resource_id)
    if failed:
        raise RuntimeError(f"{what}: failed for resources {failed} (the others are done)")
    return done
