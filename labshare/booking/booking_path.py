"""The lean write path of one booking (``POST /api/v1/bookings``).

It does only what must be atomic, in a bounded number of statements whatever the
rules: lock the resource and read it (one statement), read its rules, opening
hours, the booker's qualification and the quotas that apply (one statement; a
second on PostgreSQL to lock the quotas, when there are any), read what the slot
is judged against (the bookings around it, closures, open waitlist offers, the
company's active bookings, its quota usage and no-show record: one UNION ALL),
then insert the booking, its audit row and its outbox events (event rows,
rendered at delivery: no template is rendered here).

Every rule is judged exactly as ``bookings.check_slot`` judges it, in the same
order and with the same messages; only the reads are gathered. The other paths
(series, groups, waitlist offers, approvals) keep using ``check_slot``.
Nothing here commits.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass, field
from decimal import Decimal

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import (
    Integer,
    and_,
    bindparam,
    cast,
    func,
    literal_column,
    null,
    or_,
    select,
    text,
    union_all,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased, with_polymorphic
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql.expression import BindParameter, ColumnClause, CompoundSelect

from labshare.booking import bookings
from labshare.booking.availability import capacity_of, saturated
from labshare.booking.policies import quotas
from labshare.booking.policies.group_hooks import bundle_of
from labshare.booking.policies.no_shows import RECORD_DAYS
from labshare.booking.policies.waitlist import offered_message
from labshare.booking.rules import (
    DEFAULT,
    MAX_BOOKING_SPAN,
    Rules,
    calibration_cutoff,
    institute_zone,
    lab_id_of,
    opening_spans,
)
from labshare.database import begin_write, is_sqlite
from labshare.errors import NotFound, RuleViolation, SlotTaken
from labshare.extensions import db
from labshare.messaging import notify
from labshare.models import (
    HOLDING_STATUSES,
    Booking,
    BookingQuota,
    BookingRules,
    BookingStatus,
    Closure,
    Instrument,
    Lab,
    OpeningPeriod,
    Qualification,
    Resource,
    Role,
    User,
    WaitlistEntry,
    WaitlistStatus,
)
from labshare.models.base import UTCDateTime
from labshare.ops import audit
from labshare.timeutil import utcnow, zone

_ANY_RESOURCE = with_polymorphic(Resource, [Instrument, Lab])


@dataclass
class Policy:
    """What a resource's bookings are judged by, read in one statement."""

    rules: Rules
    periods: list[tuple[int, dt.time, dt.time]]
    qualification: Qualification | None
    quotas: list[BookingQuota]


@dataclass
class Around:
    """What one slot is judged against, read in one statement."""

    busy: list[tuple[dt.datetime, dt.datetime]] = field(default_factory=list)
    closures: list[tuple[dt.datetime, dt.datetime]] = field(default_factory=list)
    offers: list[tuple[dt.datetime, dt.datetime, int]] = field(default_factory=list)
    held: int = 0
    no_shows: int = 0
    usage: dict[int, quotas.Usage] = field(default_factory=dict)


def lock_and_load(resource_id: int) -> Resource | None:
    """The resource, its subclass columns and its institute, read under its write
    lock (SQLite: BEGIN IMMEDIATE; PostgreSQL: FOR UPDATE of its row). One statement."""
    begin_write()
    stmt = _LOAD_PLAIN if is_sqlite() else _LOAD_LOCKED
    found: Resource | None = db.session.scalars(stmt, {"rid": resource_id}).unique().one_or_none()
    return found


# The path's statements are built once, with bound parameters: building them per
# request (ORM expressions, aliases, their column collections) cost more CPU than
# running them.
_LOAD_PLAIN = (
    select(_ANY_RESOURCE)
    .where(_ANY_RESOURCE.id == bindparam("rid"))
    .execution_options(populate_existing=True)
)
_LOAD_LOCKED = _LOAD_PLAIN.with_for_update(of=Resource.__table__)
_OWN_RULES = aliased(BookingRules)
_LAB_RULES = aliased(BookingRules)
_RES = Resource.__table__
_POLICY = (
    select(_OWN_RULES, _LAB_RULES, OpeningPeriod.weekday, OpeningPeriod.opens, OpeningPeriod.closes)
    .select_from(_RES)
    .outerjoin(_OWN_RULES, _OWN_RULES.resource_id == _RES.c.id)
    .outerjoin(
        _LAB_RULES,
        and_(
            _LAB_RULES.resource_id == bindparam("lab_id"),
            _LAB_RULES.resource_id != bindparam("rid"),
        ),
    )
    .outerjoin(OpeningPeriod, OpeningPeriod.lab_id == bindparam("lab_id"))
    .add_columns(Qualification, BookingQuota)
    .outerjoin(
        Qualification,
        and_(Qualification.resource_id == _RES.c.id, Qualification.user_id == bindparam("uid")),
    )
    .outerjoin(
        BookingQuota,
        and_(
            BookingQuota.institute_id == _RES.c.institute_id,
            or_(
                BookingQuota.resource_id.is_(None),
                BookingQuota.resource_id == bindparam("rid"),
                BookingQuota.resource_id == bindparam("lab_id"),
            ),
        ),
    )
    .where(_RES.c.id == bindparam("rid"))
)
_LOCK_QUOTAS = (
    select(BookingQuota)
    .where(BookingQuota.id.in_(bindparam("ids", expanding=True)))
    .order_by(BookingQuota.id)
    .with_for_update()
    .execution_options(populate_existing=True)
)


def load_policy(resource: Resource, user_id: int) -> Policy:
    """Rules (the resource's, else its lab's, else the defaults), the lab's opening
    periods, ``user_id``'s qualification and the quotas that apply, in one
    statement (outer joins from the resource's row); the quotas are locked in id
    order on PostgreSQL by a second one, when there are any."""
    lab_id = lab_id_of(resource)
    own_row: BookingRules | None = None
    lab_row: BookingRules | None = None
    periods: set[tuple[int, dt.time, dt.time]] = set()
    qualification: Qualification | None = None
    found: dict[int, BookingQuota] = {}
    params = {"rid": resource.id, "lab_id": lab_id, "uid": user_id}
    for r_own, r_lab, weekday, opens, closes, qual, quota in db.session.execute(_POLICY, params):
        own_row = own_row or r_own
        lab_row = lab_row or r_lab
        if weekday is not None:
            periods.add((int(weekday), opens, closes))
        qualification = qualification or qual
        if quota is not None:
            found[quota.id] = quota
    if own_row is not None:
        rules = Rules.from_row(own_row)
    elif lab_row is not None:
        rules = Rules.from_row(lab_row)
    else:
        rules = DEFAULT
    applicable = [found[k] for k in sorted(found)]
    if applicable and not is_sqlite():
        applicable = list(db.session.scalars(_LOCK_QUOTAS, {"ids": [q.id for q in applicable]}))
    return Policy(rules, sorted(periods), qualification, applicable)


_NO_TIME = cast(null(), UTCDateTime())
_NO_NUMBER = cast(null(), Integer())


def _tag(k: int) -> ColumnClause[int]:
    return literal_column(str(k), Integer())


def _id(key: str) -> BindParameter[int]:
    return bindparam(key, type_=Integer())


def _time(key: str) -> BindParameter[dt.datetime]:
    return bindparam(key, type_=UTCDateTime())


@functools.lru_cache(maxsize=256)
def _around_statement(
    shared: bool, with_no_shows: bool, quota_shapes: tuple[tuple[str, bool], ...]
) -> CompoundSelect:
    """The UNION ALL of ``read_around`` for one shape: a resource of several places
    (``shared``) or one with a buffer, with or without the no-show record, and one
    (scope, counts completed) per quota that applies. Built once per shape."""
    holding = Booking.status.in_(HOLDING_STATUSES)
    rid, company = _id("rid"), _id("company_id")
    lo, hi, start, end, now = (_time(k) for k in ("lo", "hi", "start", "end", "now"))
    if shared:  # no buffer: what overlaps [start, end), found by start_at
        busy_where = and_(
            Booking.resource_id == rid,
            Booking.start_at < end,
            Booking.start_at > lo,
            Booking.end_at > start,
            holding,
        )
    else:  # lo, hi: the slot widened by the buffer
        # start_at bounded below too (no booking is longer than MAX_BOOKING_SPAN), so
        # the index range is the slot's neighbourhood, not the resource's history
        busy_where = and_(
            Booking.resource_id == rid,
            Booking.start_at < hi,
            Booking.start_at > _time("span_lo"),
            Booking.end_at > lo,
            holding,
        )
    arms = [
        select(_tag(0), Booking.start_at, Booking.end_at, _NO_NUMBER).where(busy_where),
        select(_tag(1), Closure.start_at, Closure.end_at, _NO_NUMBER).where(
            or_(Closure.resource_id == rid, Closure.resource_id == _id("lab_id")),
            Closure.start_at < end,
            Closure.end_at > start,
        ),
        select(
            _tag(2), WaitlistEntry.start_at, WaitlistEntry.end_at, WaitlistEntry.company_id
        ).where(
            WaitlistEntry.resource_id == rid,
            WaitlistEntry.status == WaitlistStatus.OFFERED,
            WaitlistEntry.offer_expires_at > now,
            # offers: the slot widened by the buffer (none for several places)
            WaitlistEntry.start_at < hi,
            WaitlistEntry.end_at > _time("offer_lo"),
        ),
        select(_tag(3), _NO_TIME, _NO_TIME, func.count(Booking.id)).where(
            Booking.resource_id == rid,
            Booking.company_id == company,
            holding,
            Booking.end_at > now,
        ),
    ]
    if with_no_shows:
        arms.append(
            select(_tag(4), _NO_TIME, _NO_TIME, func.count(Booking.id)).where(
                Booking.company_id == company,
                Booking.institute_id == _id("institute_id"),
                Booking.start_at >= _time("since"),
                or_(Booking.status == BookingStatus.NO_SHOW, Booking.late_cancellation.is_(True)),
            )
        )
    for i, (scope, count_completed) in enumerate(quota_shapes):
        statuses = [BookingStatus.PENDING, BookingStatus.APPROVED]
        if count_completed:
            statuses.append(BookingStatus.COMPLETED)
        target = _id(f"q{i}_scope")
        if scope == "institute":
            where = Booking.institute_id == target
        elif scope == "lab":  # a lab's quota: the lab and its instruments
            where = or_(
                Booking.resource_id == target,
                Booking.resource_id.in_(select(Instrument.id).where(Instrument.lab_id == target)),
            )
        else:
            where = Booking.resource_id == target
        arms.append(
            select(_tag(10 + i), Booking.start_at, Booking.end_at, _NO_NUMBER).where(
                Booking.company_id == company,
                Booking.start_at >= _time(f"q{i}_first"),
                Booking.start_at < _time(f"q{i}_after"),
                Booking.status.in_(statuses),
                where,
            )
        )
    return union_all(*arms)


def read_around(
    resource: Resource,
    company_id: int,
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime,
    policy: Policy,
    tz: str,
    *,
    with_no_shows: bool,
) -> Around:
    """The bookings, closures and offers around [start, end), the company's active
    bookings of the resource, its usage of each quota and (``with_no_shows``) its
    no-show record at the institute: one UNION ALL."""
    capacity = capacity_of(resource)
    rules = policy.rules
    buffer = (
        dt.timedelta(minutes=max(rules.buffer_minutes, 0)) if capacity <= 1 else dt.timedelta(0)
    )
    lab_id = lab_id_of(resource)
    shapes = []
    params: dict[str, object] = {
        "rid": resource.id,
        "lab_id": lab_id,
        "company_id": company_id,
        "institute_id": resource.institute_id,
        "start": start,
        "end": end,
        "now": now,
        "lo": start - buffer if capacity <= 1 else start - MAX_BOOKING_SPAN,
        "hi": end + buffer,
        "offer_lo": start - buffer,
        "span_lo": start - buffer - MAX_BOOKING_SPAN,
        "since": now - dt.timedelta(days=RECORD_DAYS),
    }
    for i, quota in enumerate(policy.quotas):
        params[f"q{i}_first"], params[f"q{i}_after"] = quotas.period_bounds(quota.period, start, tz)
        if quota.resource_id is None:
            scope = "institute"
            params[f"q{i}_scope"] = quota.institute_id
        else:
            scope = "lab" if quota.resource_id == lab_id else "resource"
            params[f"q{i}_scope"] = quota.resource_id
        shapes.append((scope, bool(quota.count_completed)))
    stmt = _around_statement(capacity > 1, with_no_shows, tuple(shapes))
    out = Around()
    seconds: dict[int, int] = {}
    counts: dict[int, int] = {}
    for k, s, e, n in db.session.execute(stmt, params):
        if k == 0:
            out.busy.append((s, e))
        elif k == 1:
            out.closures.append((s, e))
        elif k == 2:
            out.offers.append((s, e, int(n)))
        elif k == 3:
            out.held = int(n or 0)
        elif k == 4:
            out.no_shows = int(n or 0)
        else:
            seconds[k - 10] = seconds.get(k - 10, 0) + int((e - s).total_seconds())
            counts[k - 10] = counts.get(k - 10, 0) + 1
    for i, quota in enumerate(policy.quotas):
        out.usage[quota.id] = quotas.Usage(
            hours=Decimal(seconds.get(i, 0)) / Decimal(3600), bookings=counts.get(i, 0)
        )
    return out


def _judge(
    resource: Resource,
    booker: User,
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime,
    tz: str,
    policy: Policy,
) -> Around:
    """``bookings.check_slot`` on gathered reads: the same rules in the same order."""
    rules = policy.rules
    company_id = booker.company_id
    assert company_id is not None  # validate_request
    bookings._check_available(resource)
    if resource.requires_qualification:
        qualification = policy.qualification
        local_day = start.astimezone(zone(tz)).date()
        if qualification is None or (
            qualification.valid_until is not None and qualification.valid_until < local_day
        ):
            raise RuleViolation(
                _l("This instrument may only be booked by users its staff have marked qualified."),
                rule="qualification",
                field="resource_id",
            )
    bookings._check_time_rules(rules, tz, start, end, now)
    spans = opening_spans(policy.periods, tz, start, end)
    if not any(s <= start and end <= e for s, e in spans):
        raise RuleViolation(
            _l("The booking must lie within the lab's opening hours."),
            rule="opening_hours",
            field="start",
        )
    with_no_shows = not rules.requires_approval and rules.no_show_approval_threshold is not None
    around = read_around(
        resource, company_id, start, end, now, policy, tz, with_no_shows=with_no_shows
    )
    if around.closures:
        raise RuleViolation(
            _l("The resource is closed during part of this time."),
            rule="closure",
            field="start",
        )
    cutoff = calibration_cutoff(resource, tz)
    if cutoff is not None and end > cutoff:
        raise RuleViolation(
            _l("The instrument's calibration expires before the end of this booking."),
            rule="calibration_expired",
            field="end",
        )
    if around.held >= rules.max_active_per_company:
        raise RuleViolation(
            _l(
                "Your company already holds %(n)d active bookings of this resource, the most "
                "allowed.",
                n=rules.max_active_per_company,
            ),
            rule="company_quota",
            field="resource_id",
        )
    hours = Decimal(int((end - start).total_seconds())) / Decimal(3600)
    for quota in policy.quotas:
        quotas.judge(quota, around.usage[quota.id], hours, start, tz)
    bookings._check_free(
        resource, start, end, None, buffer_minutes=rules.buffer_minutes, around=around.busy
    )
    capacity = capacity_of(resource)
    offers = [(s, e) for s, e, c in around.offers if c != company_id]
    if offers:
        blocked = True
        if capacity > 1:
            both = [*around.busy, *offers]
            blocked = bool(saturated([(max(s, start), min(e, end)) for s, e in both], capacity))
        if blocked:
            details: dict[str, object] = {"reason": "offered"}
            buffer_minutes = max(rules.buffer_minutes, 0) if capacity <= 1 else 0
            if buffer_minutes and not any(s < end and e > start for s, e in offers):
                details["buffer_minutes"] = buffer_minutes
            raise SlotTaken(offered_message(), details=details)
    return around


def create(
    resource_id: int,
    booker: User,
    start: dt.datetime,
    end: dt.datetime,
    *,
    purpose: str,
    samples: str | None = None,
    savepoint: bool = False,
    visible_only: bool = True,
) -> Booking | None:
    """Book [start, end) of resource ``resource_id`` for ``booker``, as
    ``bookings.create_booking`` does. None for a bundle instrument (booked with its
    group, whose locks are taken in id order): the caller rolls back and books it
    through ``bookings.create_booking``. ``savepoint``: on PostgreSQL insert in a
    savepoint, so that a conflict found by the exclusion constraint leaves the
    transaction usable (two statements more); without it the caller rolls back.
    ``visible_only``: a resource of an inactive institute is NotFound (as the API
    answers); the service's callers hand over a resource they already hold."""
    request = bookings.validate_request(booker, start, end, purpose=purpose, samples=samples)
    resource = lock_and_load(resource_id)
    if resource is None or (visible_only and not resource.institute.active):
        raise NotFound(_l("No resource %(id)s.", id=resource_id))
    if bundle_of(resource):
        return None
    bookings._check_booker(booker)  # again under the lock
    now = utcnow()
    tz = institute_zone(resource)
    policy = load_policy(resource, booker.id)
    rules = policy.rules
    try:
        around = _judge(resource, booker, request.start, request.end, now, tz, policy)
    except SlotTaken as exc:
        if not savepoint:  # the API's caller: whether the waitlist can be joined
            exc.details.setdefault("waitlist_available", bool(rules.waitlist_enabled))
        raise
    company_id = booker.company_id
    assert company_id is not None
    fee, waived = bookings.compute_fee(resource, request.start, request.end)
    status = BookingStatus.PENDING if rules.requires_approval else BookingStatus.APPROVED
    held_reason: str | None = None
    threshold = rules.no_show_approval_threshold
    noted = around.no_shows
    if status == BookingStatus.APPROVED and threshold is not None and noted >= threshold:
        status = BookingStatus.PENDING
        held_reason = f"no-show record {noted} >= threshold {threshold}: needs approval"
    booking = bookings.new_booking(resource, booker, request, company_id, status, fee, waived)
    booking.group_id = None
    if status == BookingStatus.APPROVED:
        booking.decided_at = now
    if savepoint:
        bookings._insert_or_conflict(booking)
    else:
        db.session.add(booking)
        try:
            db.session.flush()
        except IntegrityError as exc:
            # PostgreSQL's exclusion constraint: the same conflict as the check's.
            if getattr(exc.orig, "sqlstate", None) == "23P01":
                taken = SlotTaken(_l("This time has just been booked by someone else."))
                taken.details["waitlist_available"] = bool(rules.waitlist_enabled)
                raise taken from exc
            raise
    set_committed_value(booking, "resource", resource)
    audit.record("booking.create", booking, actor=booker, to_state=status, reason=held_reason)
    if status == BookingStatus.PENDING:
        queue_new_booking_events(booking, booker, ["requested", "received"])
    else:
        queue_new_booking_events(booking, booker, ["confirmed"])
    return booking


_EVENTS_INSERT = (
    "INSERT INTO notification (dedupe_key, user_id, booking_id, kind, locale, status,"
    " attempts, next_attempt_at, created_at)"
    " SELECT CAST(:prefix AS VARCHAR(100)) || CASE WHEN u.id = :booker"
    " THEN CAST(:booker_event AS VARCHAR(50)) ELSE CAST(:staff_event AS VARCHAR(50)) END"
    " || ':' || CAST(u.id AS VARCHAR(20)), u.id, :booking_id,"
    " CASE WHEN u.id = :booker THEN CAST(:booker_kind AS VARCHAR(50))"
    " ELSE CAST(:staff_kind AS VARCHAR(50)) END,"
    " CASE WHEN u.locale IN :languages THEN u.locale ELSE CAST(:default_locale AS VARCHAR(10))"
    " END, 'pending', 0, :now, :now"
    " FROM user_account u WHERE "
)
_EVENTS_TAIL = " ORDER BY u.id ON CONFLICT (dedupe_key) DO NOTHING"


def queue_new_booking_events(booking: Booking, booker: User, events: list[str]) -> None:
    """The booking's event rows for every recipient in one INSERT ... SELECT (the
    staff read in the same statement); a row already queued is left alone."""
    if notify._series_collector.get() is not None:  # a series sends its own message
        for event in events:
            notify.booking_event(booking, event)
        return
    booker_event = next((e for e in events if notify.BOOKING_EVENTS[e] in ("booker", "both")), None)
    staff_event = next((e for e in events if notify.BOOKING_EVENTS[e] in ("staff", "both")), None)
    languages = [str(x) for x in current_app.config.get("LANGUAGES", ["zh_CN", "en"])]
    who = []
    if booker_event is not None:
        who.append("u.id = :booker")
    if staff_event is not None:
        who.append(
            "(u.institute_id = :institute_id AND u.role = :staff_role AND u.active = :yes"
            " AND u.id <> :booker)"
        )
    if not who:
        return
    # Plain SQL of fixed pieces, values bound: the staff are read by the insert itself.
    sql = _EVENTS_INSERT + " OR ".join(who) + _EVENTS_TAIL
    booker_event = booker_event or staff_event
    staff_event = staff_event or booker_event
    db.session.execute(
        text(sql).bindparams(
            bindparam("languages", expanding=True),
            bindparam("now", type_=UTCDateTime()),
        ),
        {
            "prefix": f"booking:{booking.id}:",
            "booker": booker.id,
            "booker_event": booker_event,
            "staff_event": staff_event,
            "booker_kind": f"booking_{booker_event}",
            "staff_kind": f"booking_{staff_event}",
            "booking_id": booking.id,
            "languages": languages,
            "default_locale": languages[0],
            "now": utcnow(),
            "institute_id": booking.institute_id,
            "staff_role": str(Role.STAFF),
            "yes": True,
        },
    )
