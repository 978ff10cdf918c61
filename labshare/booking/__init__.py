"""The booking engine: the rules of a slot, availability, the calendar cache, the write
lock, and the life-cycle moves (create, approve, cancel, complete).  It knows nothing of the
policies built on it; it announces what happened through :mod:`labshare.booking.signals`."""
