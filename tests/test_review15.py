"""Review of the engine's windows, approval re-check, waitlist and midnight:
findings pinned by tests. On SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from labshare.extensions import db
from labshare.models import BookingStatus, Role, WaitlistStatus
from labshare.services import waitlist
from labshare.services.bookings import approve_booking, cancel_booking, create_booking
from labshare.timeutil import set_clock
from tests import factories

SH = ZoneInfo("Asia/Shanghai")
NOW = dt.datetime(2030, 1, 1, 0, 0, tzinfo=dt.UTC)
START = dt.datetime(2030, 1, 7, 9, tzinfo=SH)
END = dt.datetime(2030, 1, 7, 11, tzinfo=SH)
HOUR = dt.timedelta(hours=1)

pytestmark = pytest.mark.usefixtures("cheap_passwords")


def at(moment: dt.datetime) -> None:
    set_clock(lambda: moment)


def test_approval_on_a_lab_does_not_count_the_request_against_an_open_offer(
    app: Any,
) -> None:
    """A lab of capacity 2: a pending request and an offer fill it. The request
    already holds its unit, so approving it must not be refused for the offer."""
    at(NOW)
    lab = factories.make_lab(capacity=2, rules={**factories.OPEN_RULES, "requires_approval": True})
    staff = factories.make_user(Role.STAFF, institute=lab.institute)
    a, c, d = (factories.make_user(Role.SME) for _ in range(3))
    request = create_booking(lab, a, START, END, purpose="A")
    other = create_booking(lab, c, START, END, purpose="C")
    db.session.commit()
    entry = waitlist.join(lab, d, START, END, purpose="D")
    db.session.commit()
    cancel_booking(other, c)
    db.session.commit()
    db.session.refresh(entry)
    assert entry.status == WaitlistStatus.OFFERED
    approve_booking(request, staff)
    db.session.commit()
    assert request.status == BookingStatus.APPROVED
