"""The reads of the lean write path (``booking_path``): the resource under its
write lock, its policy, and what is around the slot, one statement each.

Every statement is built once per shape with its values bound and kept in
``_BUILT``: building one (ORM expressions, aliases and their column collections)
cost a creation more CPU than SQLAlchemy's compilation and the round trip
together. SQLAlchemy's compiled cache then finds the kept statement by its cache
key. A policy's joins and reads take part the same way (``hooks.Arm``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field, fields
from typing import Any

from sqlalchemy import (
    BindParameter,
    Integer,
    String,
    and_,
    bindparam,
    case,
    cast,
    func,
    literal_column,
    null,
    select,
    union_all,
)
from sqlalchemy.orm import joinedload, lazyload, load_only, with_polymorphic
from sqlalchemy.sql.expression import ColumnClause

from labshare.booking import workdays
from labshare.booking.availability import capacity_of
from labshare.booking.hooks import (
    Arm,
    Gathered,
    Param,
    Slot,
    SlotPolicy,
    slot_policies,
    status_constants,
)
from labshare.booking.rules import DEFAULT, MAX_BOOKING_SPAN, Rules, lab_id_of
from labshare.database import begin_write, is_sqlite
from labshare.extensions import db
from labshare.models import (
    HOLDING_STATUSES,
    Booking,
    BookingRules,
    Closure,
    Company,
    Institute,
    Instrument,
    Lab,
    OpeningPeriod,
    Qualification,
    Resource,
    User,
)
from labshare.models.base import UTCDateTime

_ANY_RESOURCE = with_polymorphic(Resource, [Instrument, Lab])


@dataclass
class Policy:
    """What a resource's bookings are judged by, read in one statement."""

    rules: Rules
    periods: list[tuple[int, dt.time, dt.time]]
    #: Whether the booker holds a qualification for the resource, and until when.
    qualified: bool = False
    qualified_until: dt.date | None = None
    #: What each registered policy made of its joined rows (``SlotPolicy.loaded``).
    parts: list[Any] = field(default_factory=list)
    policies: tuple[SlotPolicy, ...] = ()
    #: The holidays and make-up workdays its lab follows (None: none).
    days: workdays.Days | None = None
    #: The booker as the database holds it under the lock (``booker_state``).
    booker: tuple[Any, ...] | None = None


def booker_state(
    active: Any, role: Any, company_id: Any, verified: Any, status: Any
) -> tuple[Any, ...]:
    """What judging a booker reads (``checks._check_booker``), comparable between a
    loaded user and the policy statement's row (SQLite answers booleans as 0/1)."""
    return (
        bool(active),
        str(role),
        company_id,
        verified is not None,
        None if status is None else str(status),
    )


@dataclass
class Around:
    """What one slot is judged against, read in one statement."""

    slot: Slot
    busy: list[tuple[dt.datetime, dt.datetime]] = field(default_factory=list)
    closures: list[tuple[dt.datetime, dt.datetime]] = field(default_factory=list)
    held: int = 0
    #: Each policy's rows, in the order of ``Policy.policies``.
    parts: list[Gathered] = field(default_factory=list)


#: The path's statements by shape (see the module's docstring).
_BUILT: dict[Hashable, Any] = {}


def _kept(key: Hashable, build: Callable[[], Any]) -> Any:
    stmt = _BUILT.get(key)
    if stmt is None:  # two threads may both build it: the same statement, harmless
        stmt = _BUILT[key] = build()
    return stmt


def _resource_statement(lock: bool) -> Any:
    # Not the instrument's lab (``lazy="joined"`` on the model): the path reads only
    # the lab's id (opening hours, closures and the holiday opt-out come with the
    # policy statement), and SQLite materialises that nested LEFT JOIN (every lab and
    # its resource row, ~4 ms on 5,000 labs) for each booking, inside its write lock.
    # Only the columns the path reads (the rules, the fee, the response's name): each
    # column of a result costs a creation CPU to describe and load, and the resource,
    # its subclass and its institute have ~50. Another column read later loads itself.
    any_ = _ANY_RESOURCE
    stmt = (
        select(any_)
        .options(
            lazyload(any_.Instrument.lab),
            load_only(
                any_.kind,
                any_.institute_id,
                any_.name,
                any_.status,
                any_.requires_qualification,
                any_.fee_per_hour,
                any_.fee_waiver_percent,
                any_.Lab.capacity,
                any_.Instrument.lab_id,
                any_.Instrument.calibration_valid_until,
                any_.Instrument.bundle,
            ),
            joinedload(any_.institute).load_only(Institute.active, Institute.timezone),
        )
        .where(_ANY_RESOURCE.id == bindparam("resource_id"))
        .execution_options(populate_existing=True)
    )
    if lock:
        stmt = stmt.with_for_update(of=Resource.__table__)
    return stmt


def lock_and_load(resource_id: int, *, queue: bool = True) -> Resource | None:
    """The resource, its subclass columns and its institute, read under its write
    lock (SQLite: BEGIN IMMEDIATE; PostgreSQL: FOR UPDATE of its row). One statement.
    ``queue=False``: the warm-up's read only (never a booking's): the same statement,
    which writes nothing and so does not queue for SQLite's write lock (each
    worker's start held up every writer of the database for 30-100 ms)."""
    if queue:
        begin_write()
    lock = not is_sqlite()
    stmt = _kept(("resource", lock), lambda: _resource_statement(lock))
    found: Resource | None = (
        db.session.scalars(stmt, {"resource_id": resource_id}).unique().one_or_none()
    )
    return found


#: The rules' columns, in ``Rules``' order.
_RULE_FIELDS = tuple(f.name for f in fields(Rules))
#: Columns of the policy statement before the policies' joined entities.
_POLICY_COLUMNS = 2 + len(_RULE_FIELDS) + 3 + 4 + 5


def _policy_statement(policies: tuple[SlotPolicy, ...], lock: bool) -> Any:
    """The policy statement for ``policies``' joins; values ``:resource_id``,
    ``:lab_id`` and ``:user_id``."""
    resource_t = Resource.__table__
    own = BookingRules.__table__.alias("own_rules")
    of_lab = BookingRules.__table__.alias("lab_rules")
    qualification_t = Qualification.__table__
    period_t = OpeningPeriod.__table__
    holiday_lab = Lab.__table__.alias("holiday_lab")
    institute_t = Institute.__table__
    user_t = User.__table__
    company_t = Company.__table__
    resource_id: BindParameter[int] = bindparam("resource_id")
    lab_id: BindParameter[int] = bindparam("lab_id")
    has_own = own.c.resource_id.is_not(None)
    stmt = (
        select(
            own.c.resource_id,
            of_lab.c.resource_id,
            # the resource's own rules where it has some, else its lab's
            *(case((has_own, own.c[name]), else_=of_lab.c[name]) for name in _RULE_FIELDS),
            # the lab's opening periods in one value ("weekday opens closes,..."):
            # joined, they multiplied the statement's rows (ten a lab, each with
            # every other column) and the quotas' rows with them
            select(
                func.aggregate_strings(
                    cast(period_t.c.weekday, String())
                    + " "
                    + cast(period_t.c.opens, String())
                    + " "
                    + cast(period_t.c.closes, String()),
                    ",",
                )
            )
            .where(period_t.c.lab_id == lab_id)
            .scalar_subquery(),
            qualification_t.c.id,
            qualification_t.c.valid_until,
            # the lab's holiday opt-out and the calendar's token (workdays)
            holiday_lab.c.follows_holidays,
            institute_t.c.follows_holidays,
            institute_t.c.province_code,
            workdays.token_column(lock=lock),
            # the booker, read again under the lock: its token was read before it
            user_t.c.active,
            user_t.c.role,
            user_t.c.company_id,
            user_t.c.email_verified_at,
            company_t.c.status,
        )
        .select_from(resource_t)
        .outerjoin(own, own.c.resource_id == resource_t.c.id)
        .outerjoin(
            of_lab, and_(of_lab.c.resource_id == lab_id, of_lab.c.resource_id != resource_id)
        )
        .outerjoin(
            qualification_t,
            and_(
                qualification_t.c.resource_id == resource_t.c.id,
                qualification_t.c.user_id == bindparam("user_id"),
            ),
        )
        .outerjoin(holiday_lab, holiday_lab.c.id == lab_id)
        .outerjoin(institute_t, institute_t.c.id == resource_t.c.institute_id)
        .outerjoin(user_t, user_t.c.id == bindparam("user_id"))
        .outerjoin(company_t, company_t.c.id == user_t.c.company_id)
    )
    for policy in policies:
        for entity, on in policy.joins():
            stmt = stmt.add_columns(entity).outerjoin(entity, on)
    return stmt.where(resource_t.c.id == resource_id)


def _periods(listed: str) -> set[tuple[int, dt.time, dt.time]]:
    """The opening periods of the policy statement's "weekday opens closes,..."
    (times as the database writes them: ``08:30:00``, SQLite's ``08:30:00.000000``)."""
    out = set()
    for period in listed.split(","):
        weekday, opens, closes = period.split(" ")
        out.add((int(weekday), dt.time.fromisoformat(opens), dt.time.fromisoformat(closes)))
    return out


def load_policy(resource: Resource, user_id: int) -> Policy:
    """Rules (the resource's, else its lab's, else the defaults), the lab's opening
    periods, ``user_id``'s qualification and what the policies join (the quotas
    that apply), in one statement (outer joins from the resource's row); a policy
    may lock its rows by a second one (the quotas, in id order, on PostgreSQL)."""
    lab_id = lab_id_of(resource)
    policies = slot_policies()
    lock = not is_sqlite()
    stmt, joined_by = _kept(
        ("policy", lock, tuple(type(p) for p in policies)),
        lambda: (
            _policy_statement(policies, lock),
            [n for n, policy in enumerate(policies) for _j in policy.joins()],
        ),
    )
    lab_follows: bool | None = None
    institute_follows = False
    region: str | None = None
    token: str | None = None
    rules: Rules | None = None
    periods: set[tuple[int, dt.time, dt.time]] = set()
    qualified = False
    qualified_until: dt.date | None = None
    booker: tuple[Any, ...] | None = None
    found: list[dict[Any, Any]] = [{} for _ in joined_by]
    rules_at = slice(2, 2 + len(_RULE_FIELDS))
    rest = 2 + len(_RULE_FIELDS)
    params = {"resource_id": resource.id, "lab_id": lab_id, "user_id": user_id}
    for row in db.session.execute(stmt, params):
        if rules is None and (row[0] is not None or row[1] is not None):
            rules = Rules(*row[rules_at])
        listed, qual_id, qual_until = row[rest : rest + 3]
        lab_follows, institute_follows, region, token = row[rest + 3 : rest + 7]
        booker = booker_state(*row[rest + 7 : _POLICY_COLUMNS])
        if listed and not periods:
            periods = _periods(listed)
        if qual_id is not None:
            qualified, qualified_until = True, qual_until
        for i, item in enumerate(row[_POLICY_COLUMNS:]):
            if item is not None:
                found[i][item.id] = item
    parts = [
        policy.loaded(
            [[found[i][key] for key in sorted(found[i])] for i, k in enumerate(joined_by) if k == n]
        )
        for n, policy in enumerate(policies)
    ]
    days = workdays.days_for(
        token,
        institute_follows=bool(institute_follows),
        lab_follows=lab_follows,
        region=region,
    )
    return Policy(
        rules if rules is not None else DEFAULT,
        sorted(periods),
        qualified,
        qualified_until,
        parts,
        policies,
        days,
        booker,
    )


_NO_TIME = cast(null(), UTCDateTime())
_NO_NUMBER = cast(null(), Integer())


def _tag(k: int) -> ColumnClause[int]:
    return literal_column(str(k), Integer())


def _params_of(k: int) -> Param:
    """The bound parameters of the ``k``-th policy arm, named apart from the others'."""

    def param(name: str) -> BindParameter[Any]:
        return bindparam(f"p{k}_{name}")

    return param


def _around_statement(shapes: list[tuple[int, Arm]]) -> Any:
    """The UNION ALL of the engine's three reads and the policies' arms (tagged 10,
    11, ... in order); values bound (see ``read_around``)."""
    booking = Booking.__table__.c
    closure = Closure.__table__.c
    holding = booking.status.in_(status_constants(HOLDING_STATUSES))
    resource_id: BindParameter[int] = bindparam("resource_id")
    arms = [
        # start_at bounded below too (no booking is longer than MAX_BOOKING_SPAN), so
        # the index range is the slot's neighbourhood, not the resource's history
        select(_tag(0), booking.start_at, booking.end_at, _NO_NUMBER).where(
            booking.resource_id == resource_id,
            booking.start_at < bindparam("busy_before"),
            booking.start_at > bindparam("busy_from"),
            booking.end_at > bindparam("busy_after"),
            holding,
        ),
        select(_tag(1), closure.start_at, closure.end_at, _NO_NUMBER).where(
            closure.resource_id.in_([resource_id, bindparam("lab_id")]),
            closure.start_at < bindparam("end"),
            closure.end_at > bindparam("start"),
        ),
        select(_tag(2), _NO_TIME, _NO_TIME, func.count(booking.id)).where(
            booking.resource_id == resource_id,
            booking.company_id == bindparam("company_id"),
            holding,
            booking.end_at > bindparam("now"),
        ),
    ]
    for k, (_n, arm) in enumerate(shapes):
        s, e, number, where = arm.build(_params_of(k))
        arms.append(select(_tag(10 + k), s, e, number).where(*where))
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
    params: dict[str, Any] = {
        "resource_id": resource.id,
        "lab_id": lab_id_of(resource),
        "busy_before": end + buffer,
        "busy_from": start - buffer - MAX_BOOKING_SPAN,
        "busy_after": start - buffer,
        "start": start,
        "end": end,
        "company_id": company_id,
        "now": now,
    }
    slot = Slot(resource, booker, company_id, start, end, now, tz, rules)
    out = Around(slot=slot)
    shapes: list[tuple[int, Arm]] = []
    owners: list[list[tuple[Any, Any, Any]]] = []  # the policy rows each tag from 10 fills
    for n, part in enumerate(policy.policies):
        gathered = Gathered(loaded=policy.parts[n])
        for arm in part.reads(slot, gathered.loaded):
            rows: list[tuple[Any, Any, Any]] = []
            gathered.rows.append(rows)
            for name, value in arm.values.items():
                params[f"p{len(shapes)}_{name}"] = value
            shapes.append((n, arm))
            owners.append(rows)
        out.parts.append(gathered)
    key = ("around", tuple((type(policy.policies[n]), arm.shape) for n, arm in shapes))
    stmt = _kept(key, lambda: _around_statement(shapes))
    for k, s, e, n in db.session.execute(stmt, params):
        if k == 0:
            out.busy.append((s, e))
        elif k == 1:
            out.closures.append((s, e))
        elif k == 2:
            out.held = int(n or 0)
        else:
            owners[k - 10].append((s, e, n))
    return out
