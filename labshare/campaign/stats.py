"""Campaign statistics, always equal to a count over the bookings and usage records:
the public names of the modules that count them, for callers that want one import.

Counts the bookings that start in [start, end) local days of each institute's zone.
Where each part lives:

- ``periods``: the period, the scope and its institutes grouped by zone;
- ``counters``: the additive counters and how SQL counts them (late cancellations
  count as no-shows);
- ``stored``: the counters of a period from ``stats_daily`` where trusted, live
  where dirty; ``stats_store``: the stored days' upkeep;
- ``figures``: every figure of a period and scope, and the API's totals;
- ``utilisation``: open and booked hours, the heat map, open labs;
- ``trend``: counters per month; ``check``: what ``flask stats check`` compares.
"""

from __future__ import annotations

from labshare.campaign.check import booking_days, differences, month_pieces
from labshare.campaign.counters import (
    BOOKED_STATUSES,
    COUNTER_FIELDS,
    SERVICE_FIELDS,
    STATUS_FIELDS,
    Counters,
    counted_status,
    usage_minutes_of,
)
from labshare.campaign.figures import (
    CampaignTotals,
    Statistics,
    campaign_totals,
    distinct_smes_by_institute,
    statistics_for,
)
from labshare.campaign.periods import (
    NATIONAL_ZONE,
    SCOPE_KINDS,
    Period,
    Scope,
    ZoneGroup,
    booking_window,
    zone_groups,
)
from labshare.campaign.stored import counters_by, direct_counters, total_counters
from labshare.campaign.trend import monthly_trend, trend_period
from labshare.campaign.utilisation import (
    ResourceInfo,
    Utilisation,
    open_hours,
    open_lab_count,
    open_lab_ids,
    resources_in,
    shared_instrument_ids,
    utilisation,
)

__all__ = [
    "BOOKED_STATUSES",
    "COUNTER_FIELDS",
    "NATIONAL_ZONE",
    "SCOPE_KINDS",
    "SERVICE_FIELDS",
    "STATUS_FIELDS",
    "CampaignTotals",
    "Counters",
    "Period",
    "ResourceInfo",
    "Scope",
    "Statistics",
    "Utilisation",
    "ZoneGroup",
    "booking_days",
    "booking_window",
    "campaign_totals",
    "counted_status",
    "counters_by",
    "differences",
    "direct_counters",
    "distinct_smes_by_institute",
    "month_pieces",
    "monthly_trend",
    "open_hours",
    "open_lab_count",
    "open_lab_ids",
    "resources_in",
    "shared_instrument_ids",
    "statistics_for",
    "total_counters",
    "trend_period",
    "usage_minutes_of",
    "utilisation",
    "zone_groups",
]
