"""Whether a day is a working day for the staff who look after a resource.

Messages that ask staff to act (nudges about undecided requests) wait for a working
day of the lab's institute, in the institute's zone: a holiday of the calendar the lab
follows is not one; a make-up workday is. Ordinary weekends are left as they were
(elapsed time), since the labs' own weekend hours differ. Labs and institutes that
opted out of the calendar work every day as before.
"""

from __future__ import annotations

import datetime as dt

from labshare.booking import workdays
from labshare.models import Resource
from labshare.timeutil import zone

DEFAULT_TZ = "Asia/Shanghai"


class StaffDays:
    """Per run: each resource's calendar read once (a job looks at many bookings of
    few resources)."""

    def __init__(self) -> None:
        self._seen: dict[int, bool] = {}

    def is_holiday(self, resource: Resource, when: dt.datetime) -> bool:
        """True when ``when`` falls on a holiday of the calendar ``resource`` follows."""
        tz = resource.institute.timezone or DEFAULT_TZ
        local_day = when.astimezone(zone(tz)).date()
        key = resource.id
        if key not in self._seen:
            days = workdays.days_of_resource(resource)
            found = days.get(local_day) if days is not None else None
            self._seen[key] = found is not None and found.kind == workdays.HOLIDAY
        return self._seen[key]
