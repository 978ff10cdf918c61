"""When each life-cycle move is allowed: one table of windows relative to a
booking's start and end (and the rules), consulted by every move.

A window is half-open, [opens, closes): a move is allowed from ``opens`` (None:
any time before) until just before ``closes`` (None: any time after). Bounds are
an anchor of the booking (its ``start`` or ``end``) plus an offset, fixed or read
from the booking's rules, so a rule change moves the windows with it. A move
outside its window is refused with ``InvalidTransition`` (409 ``invalid_state``)
and a message that says when the window opened or closed, in the institute's zone.

The choices (docs/architecture.md explains them):

- approve: until the start. A lab does not confirm a visit that has already begun;
  the company would not have come unconfirmed, and a confirmed past visit would
  turn into a no-show on the company's record. Reject has no window, so staff can
  always clear a request nobody decided in time.
- cancel (company and staff): until the start. Once a booking has begun it ends as
  completed (usage recorded) or no-show, never as cancelled, so neither a
  completion nor a no-show is erased. The company's cancellation deadline is a
  booking rule inside that window (422 ``cancellation_deadline``).
- check in: from ``checkin_opens_minutes`` before the start until the end (the
  check-in service reports it as the rule ``checkin_window``, as before).
- no-show, record usage, complete: from the start on; nothing to record about a
  visit that has not begun.
- move (company and staff): until the start, like cancel (a move is a cancellation
  and a booking in one step); the company's cancellation deadline applies to its
  moves as a booking rule inside that window.
- take offer (a waitlist entry): until ``lead_time_hours`` before the slot's start,
  the last moment the rules let anyone book it; an offer never expires later.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from typing import Any, Literal

from flask_babel import lazy_gettext as _l

from labshare.booking.rules import Rules
from labshare.errors import InvalidTransition
from labshare.timeutil import to_local


class Move(enum.StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    CANCEL_BY_COMPANY = "cancel_by_company"
    CANCEL_BY_STAFF = "cancel_by_staff"
    CHECK_IN = "check_in"
    NO_SHOW = "no_show"
    RECORD_USAGE = "record_usage"
    COMPLETE = "complete"
    TAKE_OFFER = "take_offer"
    MOVE_BY_COMPANY = "move_by_company"
    MOVE_BY_STAFF = "move_by_staff"


@dataclass(frozen=True)
class Bound:
    """``anchor`` of the booking, less the rules' ``before`` (a Rules field whose
    unit is in its name: ``_minutes`` or ``_hours``)."""

    anchor: Literal["start", "end"]
    before: str | None = None

    def at(self, start: dt.datetime, end: dt.datetime, rules: Rules) -> dt.datetime:
        instant = start if self.anchor == "start" else end
        if self.before is None:
            return instant
        value = int(getattr(rules, self.before))
        unit = dt.timedelta(hours=1) if self.before.endswith("_hours") else dt.timedelta(minutes=1)
        return instant - value * unit


@dataclass(frozen=True)
class Window:
    opens: Bound | None
    closes: Bound | None
    #: said when the move is refused before ``opens``; ``%(time)s`` is that instant
    too_early: Any = None
    #: said when the move is refused from ``closes`` on; ``%(time)s`` is that instant
    too_late: Any = None


#: The one table. Every move of services/bookings.py, services/checkin.py and
#: services/waitlist.py asks :func:`check` (or :func:`bounds`) before it writes.
WINDOWS: dict[Move, Window] = {
    Move.APPROVE: Window(
        opens=None,
        closes=Bound("start"),
        too_late=_l(
            "This request's time began at %(time)s; a booking that has begun or ended "
            "cannot be approved any more (reject it instead)."
        ),
    ),
    Move.REJECT: Window(opens=None, closes=None),
    Move.CANCEL_BY_COMPANY: Window(
        opens=None,
        closes=Bound("start"),
        too_late=_l(
            "This booking began at %(time)s; a booking that is in progress or over "
            "cannot be cancelled."
        ),
    ),
    Move.CANCEL_BY_STAFF: Window(
        opens=None,
        closes=Bound("start"),
        too_late=_l(
            "This booking began at %(time)s; a booking that is in progress or over "
            "cannot be cancelled (record its usage or mark it a no-show)."
        ),
    ),
    Move.CHECK_IN: Window(
        opens=Bound("start", before="checkin_opens_minutes"),
        closes=Bound("end"),
        too_early=_l("Check-in opens at %(time)s."),
        too_late=_l("Check-in closed at the end of the booking, %(time)s."),
    ),
    Move.NO_SHOW: Window(
        opens=Bound("start"),
        closes=None,
        too_early=_l(
            "This booking starts at %(time)s; a booking that has not started yet "
            "cannot be a no-show."
        ),
    ),
    Move.RECORD_USAGE: Window(
        opens=Bound("start"),
        closes=None,
        too_early=_l(
            "This booking starts at %(time)s; usage can be recorded only once it has begun."
        ),
    ),
    Move.COMPLETE: Window(
        opens=Bound("start"),
        closes=None,
        too_early=_l(
            "This booking starts at %(time)s; it cannot be completed before it has begun."
        ),
    ),
    Move.MOVE_BY_COMPANY: Window(
        opens=None,
        closes=Bound("start"),
        too_late=_l(
            "This booking began at %(time)s; a booking that is in progress or over cannot be moved."
        ),
    ),
    Move.MOVE_BY_STAFF: Window(
        opens=None,
        closes=Bound("start"),
        too_late=_l(
            "This booking began at %(time)s; a booking that is in progress or over cannot be moved."
        ),
    ),
    Move.TAKE_OFFER: Window(
        opens=None,
        closes=Bound("start", before="lead_time_hours"),
        too_late=_l(
            "This offer could be taken until %(time)s, the rules' lead time before "
            "the start; it has expired."
        ),
    ),
}


def bounds(
    move: Move, start: dt.datetime, end: dt.datetime, rules: Rules
) -> tuple[dt.datetime | None, dt.datetime | None]:
    """[opens, closes) of ``move`` for a booking of [start, end) under ``rules``."""
    window = WINDOWS[move]
    opens = window.opens.at(start, end, rules) if window.opens else None
    closes = window.closes.at(start, end, rules) if window.closes else None
    return opens, closes


def allowed(
    move: Move, start: dt.datetime, end: dt.datetime, rules: Rules, now: dt.datetime
) -> bool:
    opens, closes = bounds(move, start, end, rules)
    return (opens is None or opens <= now) and (closes is None or now < closes)


def check(
    move: Move,
    start: dt.datetime,
    end: dt.datetime,
    rules: Rules,
    now: dt.datetime,
    tz: str,
) -> None:
    """Refuse ``move`` (InvalidTransition, 409 ``invalid_state``) outside its window."""
    opens, closes = bounds(move, start, end, rules)
    window = WINDOWS[move]
    if opens is not None and now < opens:
        raise InvalidTransition(
            _format(window.too_early, opens, tz), details={"window_opens": opens.isoformat()}
        )
    if closes is not None and now >= closes:
        raise InvalidTransition(
            _format(window.too_late, closes, tz), details={"window_closed": closes.isoformat()}
        )


def _format(message: Any, instant: dt.datetime, tz: str) -> Any:
    return _Formatted(message, to_local(instant, tz).strftime("%Y-%m-%d %H:%M"))


class _Formatted:
    """A lazy message with its ``time`` filled in when rendered (in the reader's
    language, like every DomainError message)."""

    def __init__(self, message: Any, time: str) -> None:
        self.message = message
        self.time = time

    def __str__(self) -> str:
        return str(self.message) % {"time": self.time}
