"""Booking policies built on the engine: waitlist, series, groups, check-in,
quotas, no-shows, qualifications, closures, booking on behalf.  They depend on the engine,
never the reverse."""
