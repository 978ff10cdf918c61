"""Real-thread races against the database, for tests.

``race`` runs one *step* per thread. Each thread gets its own Flask app context,
hence its own scoped SQLAlchemy session and its own pooled connection, so the
threads really compete inside the database (a SQLite file, or PostgreSQL) and not
just inside Python.

A step is a function of nothing that *prepares* (loads the rows it needs in the
thread's own session) and returns the *action* to race with (a function of
nothing). The session is committed after preparing, which gives the connection
back to the pool before the race, as a real request would queue for it; then all
threads wait at one barrier and run their actions together. After an action the
session is committed; after an exception it is rolled back; in every case it is
removed at the end of the thread.

Nothing in a thread escapes it: each thread's result or exception comes back as
an ``Outcome``, in the order of the steps. ``labels`` turns outcomes into short
strings for assertions ("created", "taken", ...), where anything unexpected reads
``"error: <Type>: <message>"``. ``booking_step`` is the usual step: book a
resource for a user.

Timeouts keep a deadlock from hanging the suite: a thread that waits longer than
``barrier_timeout`` at the barrier gets ``threading.BrokenBarrierError`` (an
error outcome), a thread that fails before the barrier breaks it for the others
at once, and ``race`` fails the test with an ``AssertionError`` if any thread is
still running ``timeout`` seconds after the start.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from flask import Flask

from labshare.booking.bookings import create_booking
from labshare.extensions import db
from labshare.models import Booking, Resource, User

T = TypeVar("T")

Action = Callable[[], T]
Step = Callable[[], Callable[[], T]]
"""Prepares in the thread's session, returns the action to race with."""


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """What one thread's step came to: its action's return value, or the exception
    raised anywhere in the thread (preparing, at the barrier, racing, committing)."""

    value: T | None = None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def error_label(exc: BaseException) -> str:
    """The label of an exception nobody expected: it fails the test's
    ``[o for o in outcomes if o.startswith("error")] == []`` check."""
    return f"error: {type(exc).__name__}: {exc}"


def race(
    app: Flask,
    steps: Sequence[Step[T]],
    *,
    barrier_timeout: float = 30,
    timeout: float = 120,
) -> list[Outcome[T]]:
    """Run every step in a thread of its own, the actions released together by a
    barrier; return one ``Outcome`` per step, in order. See the module docstring.

    The caller should ``db.session.remove()`` its own session first when the
    threads must be the only ones talking to the database (SQLite's writer lock,
    the pool's size)."""
    n = len(steps)
    assert n > 0, "a race needs at least one step"
    barrier = threading.Barrier(n)
    outcomes: list[Outcome[T] | None] = [None] * n

    def worker(i: int) -> None:
        with app.app_context():
            try:
                try:
                    action = steps[i]()
                    db.session.commit()  # give the connection back before the race
                except BaseException:
                    barrier.abort()  # the others need not wait for this one
                    raise
                barrier.wait(timeout=barrier_timeout)
                value = action()
                db.session.commit()
                outcomes[i] = Outcome(value=value)
            except BaseException as exc:  # reported to the test, never lost in the thread
                outcomes[i] = Outcome(error=exc)
                db.session.rollback()
            finally:
                db.session.remove()

    threads = [
        threading.Thread(target=worker, args=(i,), name=f"race-{i}", daemon=True) for i in range(n)
    ]
    deadline = time.monotonic() + timeout
    try:
        for thread in threads:
            thread.start()
    finally:  # always join what was started, even if starting one failed
        for thread in threads:
            if thread.ident is not None:
                thread.join(timeout=max(0.0, deadline - time.monotonic()))
    stuck = [thread.name for thread in threads if thread.is_alive()]
    if stuck:
        barrier.abort()
        raise AssertionError(f"race threads still running after {timeout}s: {stuck}")
    assert all(o is not None for o in outcomes)
    return [o for o in outcomes if o is not None]


def booking_step(
    resource_id: int, user_id: int, start: dt.datetime, end: dt.datetime, purpose: str = "race"
) -> Step[Booking]:
    """The commonest step: load the resource and the user by id in the thread's
    session, then race ``create_booking`` for ``start``-``end``."""

    def prepare() -> Callable[[], Booking]:
        resource = db.session.get(Resource, resource_id)
        user = db.session.get(User, user_id)
        assert resource is not None and user is not None
        return lambda: create_booking(resource, user, start, end, purpose=purpose)

    return prepare


def labels(
    outcomes: Sequence[Outcome[T]],
    ok: str | Callable[[T], str],
    expected: Mapping[type[BaseException], str | Callable[[BaseException], str]] | None = None,
) -> list[str]:
    """One string per outcome: ``ok`` (or ``ok(value)``) for a success; for an
    exception, the label of the first ``expected`` type it is an instance of (a
    string, or a function of the exception), otherwise ``error_label(exc)``."""
    result: list[str] = []
    for outcome in outcomes:
        if outcome.error is None:
            result.append(ok(outcome.value) if callable(ok) else ok)  # type: ignore[arg-type]
            continue
        for kind, label in (expected or {}).items():
            if isinstance(outcome.error, kind):
                result.append(label(outcome.error) if callable(label) else label)
                break
        else:
            result.append(error_label(outcome.error))
    return result
