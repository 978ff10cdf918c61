"""What the engine announces: blinker signals, sent synchronously by the life-cycle
moves, inside the caller's transaction and under the resource's write lock.

A receiver runs in that transaction (it may read and write, never commit), in
the order receivers connected; what it raises leaves the move, whose caller
rolls back. The booking policies connect theirs at app start
(``labshare.booking.policies.register``); the engine imports none of them.

- ``booking_created``: sender the new booking (inserted, audited, its events
  queued).
- ``status_changed``: sender the booking, ``before`` and ``after`` its statuses
  (approved, rejected, cancelled, completed, no-show), after the move is audited
  and its notifications queued.
- ``statuses_changed``: sender the list of bookings one bulk move changed at once
  (the bookings a closure or a new holiday cancels), ``before`` a dict of their
  former statuses by id, ``after`` the one new status. Sent instead of
  ``status_changed`` for each, so that a receiver can do its work for all in one
  statement: a receiver of ``status_changed`` connects to this one too.
- ``time_freed``: sender the booking that just stopped holding time (rejected,
  cancelled; completed or marked a no-show while its end is still ahead),
  flushed; the waitlist offers the time to the next in line. With ``start`` and
  ``end``: the span freed is not the booking's time but that one (a move frees
  its old time).
"""

from __future__ import annotations

from blinker import Namespace

_signals = Namespace()

booking_created = _signals.signal("booking-created")
status_changed = _signals.signal("booking-status-changed")
statuses_changed = _signals.signal("booking-statuses-changed")
time_freed = _signals.signal("booking-time-freed")
