"""Clear messages for failures to write a file (a full disk above all)."""

from __future__ import annotations

import errno

from flask_babel import gettext as _


def write_failure(exc: OSError, target: str) -> str:
    """What to tell a person when writing ``target`` failed with ``exc``."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return _(
            "The disk is full (no space left on device): %(target)s could not be written. "
            "Free some space and try again.",
            target=target,
        )
    return _(
        "%(target)s could not be written: %(reason)s",
        target=target,
        reason=exc.strerror or str(exc),
    )
