"""Where the engine needs an answer from its policies: a registry they fill at app
start (``labshare.booking.policies.register``, called by ``create_app``).

Two kinds of hook:

- :class:`SlotPolicy`: a policy's say on one slot (the quotas per period, the
  waitlist's open offers, the no-show record). ``check_slot`` calls ``check`` at
  the policy's :class:`Stage`; ``book_locked`` asks ``hold`` whether a booking the
  rules would approve must wait for approval. The lean path (``booking_path``)
  folds the policy's reads into its own statements instead: ``joins`` into the
  statement that reads the resource's policy, ``reads`` into the UNION ALL of what
  is around the slot; then ``judge`` and ``held`` decide on those rows, exactly as
  ``check`` and ``hold`` decide on their own reads. Both are built once per shape
  with bound parameters and kept (building a statement costs more CPU than sending
  it): a join names its values ``:resource_id`` and ``:lab_id``; a read is an
  :class:`Arm`, a shape key, a builder and the values it binds.
- :class:`Together`: bookings that move as a group (a "booked together" bundle, a
  booking group) are handed over whole before the engine takes any lock.

What happened (a booking created, time freed, a status changed) is announced
through :mod:`labshare.booking.signals` instead; nothing here is called after the
fact. Everything registered here runs in the caller's transaction, under the
resource's write lock where the engine holds it.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import BindParameter, ColumnElement, Integer, cast, literal_column, null

from labshare.models.base import UTCDateTime

if TYPE_CHECKING:
    from labshare.booking.rules import Rules
    from labshare.models import Booking, Resource, User

#: Typed NULLs for the columns a read leaves empty (every arm of a UNION ALL has
#: the same columns: start, end, number).
NO_TIME: ColumnElement[Any] = cast(null(), UTCDateTime())
NO_NUMBER: ColumnElement[Any] = cast(null(), Integer())


def status_constants(statuses: Sequence[enum.Enum]) -> list[ColumnElement[Any]]:
    """``statuses`` as SQL constants for ``Booking.status.in_(…)``. A list of values
    would be one "expanding" parameter, whose statement SQLAlchemy renders again on
    every execution; the path's statements keep one text. The values are the
    code's own enum members, checked to be plain words."""
    out: list[ColumnElement[Any]] = []
    for status in statuses:
        value = str(status.value)
        if not re.fullmatch(r"[a-z_]+", value):  # never quote anything else into SQL
            raise ValueError(f"not a status: {value!r}")
        out.append(literal_column(f"'{value}'"))
    return out


class Stage(enum.Enum):
    """When a policy's check runs among the engine's."""

    #: After the company's active-booking quota, before the conflict check.
    LIMITS = "limits"
    #: After the conflict check: claims on the time other than bookings.
    CLAIMS = "claims"


@dataclass
class Slot:
    """One slot being judged for a booker (``booker`` None: for nobody in
    particular, as when the waitlist looks for who may take freed time)."""

    resource: Resource
    booker: User | None
    company_id: int
    start: dt.datetime
    end: dt.datetime
    now: dt.datetime
    tz: str
    rules: Rules
    #: A request being approved: it does not count against itself.
    exclude_id: int | None = None
    #: The lean path: the holding bookings around the slot, already read.
    busy: list[tuple[dt.datetime, dt.datetime]] = field(default_factory=list)


#: An entity outer-joined to the resource's row in the policy statement, and the
#: join's condition: its values are the bound parameters ``:resource_id`` and
#: ``:lab_id`` (the statement is built once and kept).
Join = tuple[Any, ColumnElement[bool]]
#: One arm of the UNION ALL: its three columns (start, end, number) and its WHERE.
#: (Columns or column expressions: a mapped attribute such as ``Booking.start_at``.)
Read = tuple[Any, Any, Any, Sequence[Any]]
#: What an arm's builder is handed: ``param("name")`` is the bound parameter that
#: the arm's ``values["name"]`` fills (named apart from every other arm's).
Param = Callable[[str], BindParameter[Any]]


@dataclass(frozen=True)
class Arm:
    """One read of a policy, as an arm of the lean path's UNION ALL.

    ``build(param)`` returns the arm's :data:`Read` with every value that changes
    from one slot to the next a bound parameter ``param(name)``; the engine builds
    it once per ``shape`` (a hashable naming what ``build`` would make: two arms of
    one policy with the same shape build the same SQL) and keeps the statement;
    ``values`` binds it for this slot."""

    shape: Hashable
    build: Callable[[Param], Read]
    values: Mapping[str, Any]


@dataclass
class Gathered:
    """What one policy read with the lean path's statements."""

    #: What ``SlotPolicy.loaded`` made of its joined rows.
    loaded: Any = None
    #: The rows (start, end, number) of each of its reads, in the order given.
    rows: list[list[tuple[Any, Any, Any]]] = field(default_factory=list)


class SlotPolicy:
    """A policy's say on one slot; subclasses override what they need. Every
    method runs under the resource's write lock."""

    name: str = "policy"
    stage: Stage = Stage.LIMITS

    # -- check_slot / book_locked: the policy reads what it needs itself --

    def check(self, slot: Slot) -> None:
        """Raise (a DomainError) where the policy refuses ``slot``."""

    def hold(self, slot: Slot) -> str | None:
        """Why a booking the rules would approve waits for approval; None: it need not."""
        return None

    # -- the lean path: the same decisions on reads gathered into its statements --

    def joins(self) -> Sequence[Join]:
        """Entities to outer-join to the resource's row in the policy statement,
        the same for every resource (the values are ``:resource_id`` and
        ``:lab_id``): the statement is built once and kept."""
        return ()

    def loaded(self, found: list[list[Any]]) -> Any:
        """The distinct rows found for each join (in join order, by id); may lock them
        (one more statement, on PostgreSQL). The result is handed to ``reads``."""
        return None

    def reads(self, slot: Slot, loaded: Any) -> Sequence[Arm]:
        """Arms of the UNION ALL of what is around ``slot``."""
        return ()

    def judge(self, slot: Slot, gathered: Gathered) -> None:
        """``check`` on the gathered rows: the same rules, the same refusals."""

    def held(self, slot: Slot, gathered: Gathered) -> str | None:
        """``hold`` on the gathered rows."""
        return None


class Together(Protocol):
    """Bookings that move together (booking groups, "booked together" bundles)."""

    def books_together(self, resource: Resource) -> bool:
        """Whether booking ``resource`` alone books a group instead."""
        ...

    def book_together(
        self,
        resource: Resource,
        booker: User,
        start: dt.datetime,
        end: dt.datetime,
        purpose: str,
        samples: str | None,
        *,
        on_behalf_by: User | None = None,
    ) -> Booking:
        """Book the group ``resource`` belongs to; ``resource``'s booking.
        ``on_behalf_by``: the staff member booking for ``booker``'s company."""
        ...

    def moves_together(self, booking: Booking) -> bool:
        """Whether approving, rejecting or cancelling ``booking`` moves its group."""
        ...

    def move_together(
        self, booking: Booking, action: str, actor: User, reason: str | None = None
    ) -> Booking:
        """``action`` (approve, reject, cancel) on ``booking``'s whole group."""
        ...


class _Nobody:
    """No group policy: every booking moves alone."""

    def books_together(self, resource: Resource) -> bool:
        return False

    def book_together(
        self,
        resource: Resource,
        booker: User,
        start: dt.datetime,
        end: dt.datetime,
        purpose: str,
        samples: str | None,
        *,
        on_behalf_by: User | None = None,
    ) -> Booking:
        raise AssertionError("no group policy registered")

    def moves_together(self, booking: Booking) -> bool:
        return False

    def move_together(
        self, booking: Booking, action: str, actor: User, reason: str | None = None
    ) -> Booking:
        raise AssertionError("no group policy registered")


class NotRegistered(RuntimeError):
    """The engine was used before the policies registered (an app not built by
    ``create_app``): refusing beats booking without quotas or the waitlist."""


@dataclass
class _Registry:
    slot_policies: tuple[SlotPolicy, ...] = ()
    together: Together = field(default_factory=_Nobody)
    ready: bool = False


_registry = _Registry()


def install(slot_policies: Sequence[SlotPolicy], together: Together | None = None) -> None:
    """Register the policies (replacing any registered before: building a second
    app registers the same ones again). ``slot_policies`` run in this order within
    their stage."""
    _registry.slot_policies = tuple(slot_policies)
    _registry.together = together if together is not None else _Nobody()
    _registry.ready = True


def slot_policies() -> tuple[SlotPolicy, ...]:
    if not _registry.ready:
        raise NotRegistered(
            "the booking policies are not registered; build the app with create_app"
        )
    return _registry.slot_policies


def together() -> Together:
    if not _registry.ready:
        raise NotRegistered(
            "the booking policies are not registered; build the app with create_app"
        )
    return _registry.together
