"""The busy rows of many resources over one span, read in ONE statement for the
free-time scan (free_time.py) and kept per resource across searches (free_memo.py):
holding bookings, closures of the resources and their labs, open waitlist offers
(with when each expires: an offer stops holding its slot then, with no version
change) and the labs' opening periods."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import Integer, String, TextualSelect, bindparam, text

from labshare.booking.availability import CalendarSubject
from labshare.booking.rules import MAX_BOOKING_SPAN, Span
from labshare.catalogue import id_lists
from labshare.extensions import db
from labshare.models import HOLDING_STATUSES, UTCDateTime, WaitlistStatus
from labshare.timeutil import utcnow

#: A lab's opening periods, sorted: (weekday, opens, closes).
Periods = tuple[tuple[int, dt.time, dt.time], ...]
#: An open waitlist offer: its span and when it expires.
Offer = tuple[dt.datetime, dt.datetime, dt.datetime]


@dataclass
class Busy:
    """Rows of many resources over one window: holding bookings and open offers by
    resource id, closures by resource or lab id, opening periods by lab id."""

    held: Mapping[int, Sequence[Span]]
    closed: Mapping[int, Sequence[Span]]
    offers: Mapping[int, Sequence[Offer]]
    periods: Mapping[int, Periods]


def busy_rows(
    subjects: Sequence[CalendarSubject],
    start: dt.datetime,
    end: dt.datetime,
    lab_ids: Sequence[int],
    now: dt.datetime | None = None,
) -> Busy:
    """ONE statement (a UNION ALL of index range scans): the holding bookings, closures
    (of ``subjects`` and their labs) and open waitlist offers overlapping [start, end),
    by the conditions of ``availability._BUSY`` at ``now`` (each resource's own window
    is cut from them by ``own``), and the opening periods of ``lab_ids``."""
    held: dict[int, list[Span]] = {}
    closed: dict[int, list[Span]] = {}
    offers: dict[int, list[Offer]] = {}
    periods: dict[int, Periods] = {}
    out = Busy(held=held, closed=closed, offers=offers, periods=periods)
    ids = sorted({s.id for s in subjects})
    if not ids:
        return out
    scope = sorted({*ids, *(s.lab_id for s in subjects)})
    rows = db.session.execute(
        _busy_statement(),
        {
            "ids": ids,
            "scope": scope,
            "labs": sorted(set(lab_ids)),
            "start": start,
            "end": end,
            "span_start": start - MAX_BOOKING_SPAN,
            "now": now if now is not None else utcnow(),
        },
    )
    for k, rid, s, e, x, hours in rows:
        if k == 3:
            periods[rid] = _hours(hours)
        elif k == 2:
            offers.setdefault(rid, []).append((_utc(s), _utc(e), _utc(x)))
        else:
            (held, closed)[k].setdefault(rid, []).append((_utc(s), _utc(e)))
    return out


#: Opening hours as the statement spells them → parsed (sorted): labs share a few.
_HOURS: dict[str, Periods] = {}


def _hours(spelled: str) -> Periods:
    """A lab's opening periods from ``busy_rows``' text ("weekday opens closes", comma
    separated), parsed once per spelling per process."""
    found = _HOURS.get(spelled)
    if found is None:
        if len(_HOURS) > 4096:  # bounded: a pathological catalogue only costs parsing
            _HOURS.clear()
        parsed = []
        for period in spelled.split(","):
            weekday, opens, closes = period.split(" ")
            parsed.append((int(weekday), _time(opens), _time(closes)))
        found = _HOURS[spelled] = tuple(sorted(parsed))
    return found


def _build_busy(dialect: str) -> TextualSelect:
    """``busy_rows``' statement: fixed text, each list of ids one parameter
    (labshare/catalogue/id_lists.py). The typed NULLs: PostgreSQL will not guess a
    UNION column's type from a bare NULL.

    On SQLite the booking branch tests ``+status``, which its planner cannot use an
    index for: without statistics it read that branch through ix_booking_status_start
    (every holding booking of the month) rather than ix_booking_resource_start (the
    batch's own): 30 ms instead of 1 on the bench data."""
    pg = dialect == "postgresql"
    no_instant, no_text = ("NULL::timestamptz", "NULL::text") if pg else ("NULL", "NULL")
    status = "status" if pg else "+status"
    ids, scope, labs = (
        id_lists.sql_among(c, n, dialect)
        for c, n in (("resource_id", "ids"), ("resource_id", "scope"), ("lab_id", "labs"))
    )
    # a lab's periods as one text (ten rows a lab were most of the statement's rows)
    if pg:
        period = "weekday::text || ' ' || opens::text || ' ' || closes::text"
        hours = f"string_agg({period}, ',' ORDER BY weekday, opens, closes)"
    else:
        hours = "group_concat(weekday || ' ' || opens || ' ' || closes, ',')"
    return (
        text(
            f"SELECT 0 AS k, resource_id AS rid, start_at AS s, end_at AS e, {no_instant} AS x,"  # noqa: S608 - constants; values bound
            f" {no_text} AS hours"
            f" FROM booking WHERE {ids}"
            " AND start_at < :end AND start_at > :span_start AND end_at > :start"
            f" AND {status} IN ('pending', 'approved')"
            " UNION ALL"
            f" SELECT 1, resource_id, start_at, end_at, {no_instant}, {no_text}"
            f" FROM closure WHERE {scope} AND start_at < :end AND end_at > :start"
            " UNION ALL"
            f" SELECT 2, resource_id, start_at, end_at, offer_expires_at, {no_text}"
            f" FROM waitlist_entry WHERE {ids} AND status = 'offered'"
            " AND offer_expires_at > :now AND start_at < :end AND end_at > :start"
            " UNION ALL"
            f" SELECT 3, lab_id, {no_instant}, {no_instant}, {no_instant}, {hours}"
            f" FROM opening_period WHERE {labs} GROUP BY lab_id"
        )
        .bindparams(
            *(bindparam(n, type_=id_lists.IdList()) for n in ("ids", "scope", "labs")),
            *(bindparam(n, type_=UTCDateTime()) for n in ("start", "end", "span_start", "now")),
        )
        .columns(
            k=Integer, rid=Integer, s=UTCDateTime(), e=UTCDateTime(), x=UTCDateTime(), hours=String
        )
    )


if {str(s) for s in HOLDING_STATUSES} != {"pending", "approved"}:  # spelled out above
    raise RuntimeError("HOLDING_STATUSES changed: update _build_busy")
if str(WaitlistStatus.OFFERED) != "offered":
    raise RuntimeError("WaitlistStatus changed: update _build_busy")
_busy_statement = id_lists.per_dialect(_build_busy)


def own(
    subject: CalendarSubject, busy: Busy, start: dt.datetime, end: dt.datetime, now: dt.datetime
) -> tuple[list[Span], list[Span], list[Span]]:
    """(held, closures, offers) of one resource as ``availability._BUSY`` reads them
    for [start, end) (already widened by the buffer) at ``now``: the batch read a wider
    window, maybe earlier (an offer expired since no longer holds its slot)."""
    if not (
        busy.held.get(subject.id)
        or busy.closed.get(subject.id)
        or busy.closed.get(subject.lab_id)
        or busy.offers.get(subject.id)
    ):
        return [], [], []  # most candidates: nothing at all in the rows read
    held = [
        (s, e)
        for s, e in busy.held.get(subject.id, ())
        if s < end and s > start - MAX_BOOKING_SPAN and e > start
    ]
    closed = [
        (s, e)
        for rid in {subject.id, subject.lab_id}
        for s, e in busy.closed.get(rid, ())
        if s < end and e > start
    ]
    offers = [
        (s, e) for s, e, x in busy.offers.get(subject.id, ()) if s < end and e > start and x > now
    ]
    return held, closed, offers


def _time(value: dt.time | str) -> dt.time:
    # SQLite's text may come back un-parsed through a UNION.
    return value if isinstance(value, dt.time) else dt.time.fromisoformat(str(value))


def _utc(value: dt.datetime | str) -> dt.datetime:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


__all__ = ["Busy", "Offer", "Periods", "busy_rows", "own"]
