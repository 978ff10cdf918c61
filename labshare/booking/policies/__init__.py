"""Booking policies built on the engine: waitlist, series, groups, check-in,
quotas, no-shows, qualifications, closures, booking on behalf. They depend on the
engine, never the reverse: the engine asks them through the hooks they register
here (``labshare.booking.hooks``) and tells them what happened through its
signals (``labshare.booking.signals``)."""

from __future__ import annotations


def register() -> None:
    """Register the policies with the engine; ``create_app`` calls it (so do the
    jobs and the CLI, which build the app the same way). Registering again
    replaces what was registered: every app of the process has the same policies.

    - quotas per period (``quotas.PeriodQuotas``) and the no-show record
      (``no_shows.NoShowRecord``): checked after the engine's company quota;
      the no-show record may make a booking wait for approval;
    - open waitlist offers (``waitlist_offers.OpenOffers``): checked after the
      conflict check; freed time goes to the waitlist (``signals.time_freed``);
    - booking groups and bundles (``groups.Together``): take over a booking of a
      bundle instrument and the transitions of a group's members;
    - unsent reminders of a booking that stops being approved are dropped
      (``notify.reminders_follow_status``).
    """
    from labshare.booking import displaced_notice, holiday_notice, hooks, signals
    from labshare.booking.policies import groups, no_shows, quotas, waitlist_offers
    from labshare.messaging import notify

    hooks.install(
        [quotas.PeriodQuotas(), waitlist_offers.OpenOffers(), no_shows.NoShowRecord()],
        together=groups.Together(),
    )
    signals.time_freed.connect(waitlist_offers.time_freed)
    # a booking no longer approved has nothing to be reminded of
    signals.status_changed.connect(notify.reminders_follow_status)
    signals.statuses_changed.connect(notify.reminders_follow_statuses)
    displaced_notice.register()  # closures' and holidays' messages, rendered when read
    holiday_notice.register()
