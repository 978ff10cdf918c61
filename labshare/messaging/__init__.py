"""Everything that leaves as a message: the outbox, mail, the in-app inbox, the
calendar feed."""
