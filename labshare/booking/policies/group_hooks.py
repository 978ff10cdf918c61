"""The few places where services/bookings.py hands over to booking groups
(services/groups.py), kept apart so that bookings.py imports no group code at
module level (groups.py builds on bookings.py)."""

from __future__ import annotations

import datetime as dt
from contextvars import ContextVar
from typing import TYPE_CHECKING

from labshare.models import Instrument, Resource

if TYPE_CHECKING:
    from labshare.models import Booking, User

#: The group whose members are being moved right now (by groups.transition_group):
#: the single-booking transitions then act on the one member they were given.
ACTING_GROUP: ContextVar[int | None] = ContextVar("labshare_acting_group", default=None)


def bundle_of(resource: Resource) -> bool:
    """Whether booking ``resource`` alone books its "booked together" bundle."""
    return isinstance(resource, Instrument) and bool((resource.bundle or "").strip())


def book_bundle(
    resource: Resource,
    booker: User,
    start: dt.datetime,
    end: dt.datetime,
    purpose: str,
    samples: str | None,
) -> Booking:
    from labshare.booking.policies import groups

    return groups.book_bundle(resource, booker, start, end, purpose=purpose, samples=samples)


def acts_on_group(booking: Booking) -> bool:
    """Whether a transition of ``booking`` must move its whole group."""
    return booking.group_id is not None and ACTING_GROUP.get() != booking.group_id


def group_transition(
    booking: Booking, action: str, actor: User, reason: str | None = None
) -> Booking:
    from labshare.booking.policies import groups

    return groups.transition_group(booking, action, actor, reason)
