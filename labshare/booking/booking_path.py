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
order and with the same messages; only the reads are gathered. The policies'
reads (quotas, waitlist offers, the no-show record) come from their
``hooks.SlotPolicy``: ``joins`` into the policy statement, ``reads`` into the
UNION ALL, ``judge`` and ``held`` on the rows. The other paths (series, groups,
waitlist offers, approvals) keep using ``check_slot``. Nothing here commits.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

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
    select,
    text,
    union_all,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased, with_polymorphic
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql.expression import ColumnClause

from labshare.booking import checks, signals, workdays
from labshare.booking.availability import capacity_of
from labshare.booking.booking_row import compute_fee, new_booking
from labshare.booking.hooks import Gathered, Slot, SlotPolicy, Stage, slot_policies, together
from labshare.booking.locking import _insert_or_conflict
from labshare.booking.rules import (
    DEFAULT,
    MAX_BOOKING_SPAN,
    Rules,
    calibration_cutoff,
    institute_zone,
    lab_id_of,
)
from labshare.database import begin_write, is_sqlite
from labshare.errors import NotFound, RuleViolation, SlotTaken
from labshare.extensions import db
from labshare.messaging import notify
from labshare.models import (
    HOLDING_STATUSES,
    Booking,
    BookingRules,
    BookingStatus,
    Closure,
    Institute,
    Instrument,
    Lab,
    OpeningPeriod,
    Qualification,
    Resource,
    Role,
    User,
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
    #: What each registered policy made of its joined rows (``SlotPolicy.loaded``).
    parts: list[Any] = field(default_factory=list)
    policies: tuple[SlotPolicy, ...] = ()
    #: The holidays and make-up workdays its lab follows (None: none).
    days: workdays.Days | None = None


@dataclass
class Around:
    """What one slot is judged against, read in one statement."""

    slot: Slot
    busy: list[tuple[dt.datetime, dt.datetime]] = field(default_factory=list)
    closures: list[tuple[dt.datetime, dt.datetime]] = field(default_factory=list)
    held: int = 0
    #: Each policy's rows, in the order of ``Policy.policies``.
    parts: list[Gathered] = field(default_factory=list)


def lock_and_load(resource_id: int) -> Resource | None:
    """The resource, its subclass columns and its institute, read under its write
    lock (SQLite: BEGIN IMMEDIATE; PostgreSQL: FOR UPDATE of its row). One statement."""
    begin_write()
    stmt = (
        select(_ANY_RESOURCE)
        .where(_ANY_RESOURCE.id == resource_id)
        .execution_options(populate_existing=True)
    )
    if not is_sqlite():
        stmt = stmt.with_for_update(of=Resource.__table__)
    found: Resource | None = db.session.scalars(stmt).unique().one_or_none()
    return found


def load_policy(resource: Resource, user_id: int) -> Policy:
    """Rules (the resource's, else its lab's, else the defaults), the lab's opening
    periods, ``user_id``'s qualification and what the policies join (the quotas
    that apply), in one statement (outer joins from the resource's row); a policy
    may lock its rows by a second one (the quotas, in id order, on PostgreSQL)."""
    lab_id = lab_id_of(resource)
    policies = slot_policies()
    joins = [(k, j) for k, policy in enumerate(policies) for j in policy.joins(resource, lab_id)]
    own = aliased(BookingRules)
    of_lab = aliased(BookingRules)
    holiday_lab = Lab.__table__.alias("holiday_lab")
    institute_t = Institute.__table__
    stmt = (
        select(own, of_lab, OpeningPeriod.weekday, OpeningPeriod.opens, OpeningPeriod.closes)
        .select_from(Resource.__table__)
        .outerjoin(own, own.resource_id == Resource.__table__.c.id)
        .outerjoin(of_lab, and_(of_lab.resource_id == lab_id, of_lab.resource_id != resource.id))
        .outerjoin(OpeningPeriod, OpeningPeriod.lab_id == lab_id)
        .add_columns(Qualification)
        .outerjoin(
            Qualification,
            and_(
                Qualification.resource_id == Resource.__table__.c.id,
                Qualification.user_id == user_id,
            ),
        )
        # the lab's holiday opt-out and the calendar's token (workdays)
        .outerjoin(holiday_lab, holiday_lab.c.id == lab_id)
        .outerjoin(institute_t, institute_t.c.id == Resource.__table__.c.institute_id)
        .add_columns(
            holiday_lab.c.follows_holidays,
            institute_t.c.follows_holidays,
            institute_t.c.province_code,
            workdays.token_column(lock=not is_sqlite()),
        )
    )
    for _k, (entity, on) in joins:
        stmt = stmt.add_columns(entity).outerjoin(entity, on)
    stmt = stmt.where(Resource.__table__.c.id == resource.id)
    lab_follows: bool | None = None
    institute_follows = False
    region: str | None = None
    token: str | None = None
    own_row: BookingRules | None = None
    lab_row: BookingRules | None = None
    periods: set[tuple[int, dt.time, dt.time]] = set()
    qualification: Qualification | None = None
    found: list[dict[Any, Any]] = [{} for _ in joins]
    for row in db.session.execute(stmt):
        r_own, r_lab, weekday, opens, closes, qual = row[:6]
        lab_follows, institute_follows, region, token = row[6:10]
        joined = row[10:]
        own_row = own_row or r_own
        lab_row = lab_row or r_lab
        if weekday is not None:
            periods.add((int(weekday), opens, closes))
        qualification = qualification or qual
        for i, item in enumerate(joined):
            if item is not None:
                found[i][item.id] = item
    if own_row is not None:
        rules = Rules.from_row(own_row)
    elif lab_row is not None:
        rules = Rules.from_row(lab_row)
    else:
        rules = DEFAULT
    parts = [
        policy.loaded(
            [
                [found[i][key] for key in sorted(found[i])]
                for i, (k, _j) in enumerate(joins)
                if k == n
            ]
        )
        for n, policy in enumerate(policies)
    ]
    days = workdays.days_for(
        token,
        institute_follows=bool(institute_follows),
        lab_follows=lab_follows,
        region=region,
    )
    return Policy(rules, sorted(periods), qualification, parts, policies, days)


_NO_TIME = cast(null(), UTCDateTime())
_NO_NUMBER = cast(null(), Integer())


def _tag(k: int) -> ColumnClause[int]:
    return literal_column(str(k), Integer())


def read_around(
    resource: Resource,
    company_id: int,
    start: dt.datetime,
    end: dt.datetime,
    now: dt.datetime,
    policy: Policy,
    tz: str,
    *,
    booker: User | None = None,
) -> Around:
    """The bookings and closures around [start, end), the company's active
    bookings of the resource, and what the policies read (open offers, the
    company's usage of each quota, its no-show record): one UNION ALL."""
    capacity = capacity_of(resource)
    rules = policy.rules
    buffer = (
        dt.timedelta(minutes=max(rules.buffer_minutes, 0)) if capacity <= 1 else dt.timedelta(0)
    )
    holding = Booking.status.in_(HOLDING_STATUSES)
    if capacity <= 1:
        # start_at bounded below too (no booking is longer than MAX_BOOKING_SPAN), so
        # the index range is the slot's neighbourhood, not the resource's history
        busy_where = and_(
            Booking.resource_id == resource.id,
            Booking.start_at < end + buffer,
            Booking.start_at > start - buffer - MAX_BOOKING_SPAN,
            Booking.end_at > start - buffer,
            holding,
        )
    else:
        busy_where = and_(
            Booking.resource_id == resource.id,
            Booking.start_at < end,
            Booking.start_at > start - MAX_BOOKING_SPAN,
            Booking.end_at > start,
            holding,
        )
    lab_id = lab_id_of(resource)
    scope = [resource.id] if lab_id == resource.id else [resource.id, lab_id]
    arms = [
        select(_tag(0), Booking.start_at, Booking.end_at, _NO_NUMBER).where(busy_where),
        select(_tag(1), Closure.start_at, Closure.end_at, _NO_NUMBER).where(
            Closure.resource_id.in_(scope), Closure.start_at < end, Closure.end_at > start
        ),
        select(_tag(2), _NO_TIME, _NO_TIME, func.count(Booking.id)).where(
            Booking.resource_id == resource.id,
            Booking.company_id == company_id,
            holding,
            Booking.end_at > now,
        ),
    ]
    slot = Slot(resource, booker, company_id, start, end, now, tz, rules)
    out = Around(slot=slot)
    owners: list[list[tuple[Any, Any, Any]]] = []  # the policy rows each tag from 10 fills
    for n, part in enumerate(policy.policies):
        gathered = Gathered(loaded=policy.parts[n])
        for s, e, number, where in part.reads(slot, gathered.loaded):
            rows: list[tuple[Any, Any, Any]] = []
            gathered.rows.append(rows)
            arms.append(select(_tag(10 + len(owners)), s, e, number).where(*where))
            owners.append(rows)
        out.parts.append(gathered)
    for k, s, e, n in db.session.execute(union_all(*arms)):
        if k == 0:
            out.busy.append((s, e))
        elif k == 1:
            out.closures.append((s, e))
        elif k == 2:
            out.held = int(n or 0)
        else:
            owners[k - 10].append((s, e, n))
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
    checks._check_available(resource)
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
    checks._check_time_rules(rules, tz, start, end, now)
    workdays.check_holiday(policy.days, tz, start, end)
    spans = workdays.open_spans(policy.periods, tz, start, end, policy.days)
    if not any(s <= start and end <= e for s, e in spans):
        raise RuleViolation(
            _l("The booking must lie within the lab's opening hours."),
            rule="opening_hours",
            field="start",
        )
    around = read_around(resource, company_id, start, end, now, policy, tz, booker=booker)
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
    slot = around.slot
    for part, gathered in zip(policy.policies, around.parts, strict=True):
        if part.stage is Stage.LIMITS:  # e.g. the quotas per period
            part.judge(slot, gathered)
    checks._check_free(
        resource, start, end, None, buffer_minutes=rules.buffer_minutes, around=around.busy
    )
    slot.busy = around.busy
    for part, gathered in zip(policy.policies, around.parts, strict=True):
        if part.stage is Stage.CLAIMS:  # e.g. an open waitlist offer
            part.judge(slot, gathered)
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
    request = checks.validate_request(booker, start, end, purpose=purpose, samples=samples)
    resource = lock_and_load(resource_id)
    if resource is None or (visible_only and not resource.institute.active):
        raise NotFound(_l("No resource %(id)s.", id=resource_id))
    if together().books_together(resource):
        return None
    checks._check_booker(booker)  # again under the lock
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
    fee, waived = compute_fee(resource, request.start, request.end)
    status = BookingStatus.PENDING if rules.requires_approval else BookingStatus.APPROVED
    held_reason: str | None = None
    if status == BookingStatus.APPROVED:  # e.g. a company's no-show record
        for part, gathered in zip(policy.policies, around.parts, strict=True):
            held_reason = part.held(around.slot, gathered)
            if held_reason is not None:
                status = BookingStatus.PENDING
                break
    booking = new_booking(resource, booker, request, company_id, status, fee, waived)
    booking.group_id = None
    if status == BookingStatus.APPROVED:
        booking.decided_at = now
    if savepoint:
        _insert_or_conflict(booking)
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
    signals.booking_created.send(booking)
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
