"""The writes of the lean write path (``booking_path``): the booking, its audit row
and its outbox events (event rows, rendered at delivery).

On SQLite they are three statements: the booking's INSERT
(``booking_row.insert_booking``), the audit row's and the events' INSERT ...
SELECT (the staff read by the insert itself). On PostgreSQL they are one: the
booking's INSERT ... RETURNING in a WITH, the audit row and the events inserted
from its id by two data-modifying WITH queries of the same statement. Each
statement round trip costs the path more CPU than the SQL it sends; what is
written is the same row for row. Every statement is plain SQL of fixed pieces
with its values bound, built once per set of recipients.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from flask import current_app
from sqlalchemy import Table, bindparam, text
from sqlalchemy.sql.elements import TextClause

from labshare.booking.booking_row import booking_from_row, booking_row, insert_booking
from labshare.database import is_sqlite
from labshare.extensions import db
from labshare.messaging import notify
from labshare.models import AuditLog, Booking, Role, User
from labshare.models.base import UTCDateTime
from labshare.ops import audit
from labshare.timeutil import utcnow

_BOOKING = cast(Table, Booking.__table__)
_AUDIT = cast(Table, AuditLog.__table__)


def _languages() -> list[str]:
    return [str(x) for x in current_app.config.get("LANGUAGES", ["zh_CN", "en"])]


def _events_sql(
    prefix: str, booking_id: str, source: str, who: Sequence[str], languages: int
) -> str:
    """The events' INSERT ... SELECT; ``prefix`` and ``booking_id`` are SQL (bound
    values, or the new booking's id inside the WITH), ``source`` its FROM. The
    ``languages`` offered are bound one by one (``:language_0`` ...), not as an
    expanding list: SQLAlchemy would render the statement's text again on every
    execution, and the driver look the new string up again."""
    offered = ", ".join(f":language_{i}" for i in range(languages))
    return (
        "INSERT INTO notification (dedupe_key, user_id, booking_id, kind, locale, status,"  # noqa: S608
        " attempts, next_attempt_at, created_at)"
        f" SELECT {prefix} || CASE WHEN u.id = :booker"
        " THEN CAST(:booker_event AS VARCHAR(50)) ELSE CAST(:staff_event AS VARCHAR(50)) END"
        f" || ':' || CAST(u.id AS VARCHAR(20)), u.id, {booking_id},"
        " CASE WHEN u.id = :booker THEN CAST(:booker_kind AS VARCHAR(50))"
        " ELSE CAST(:staff_kind AS VARCHAR(50)) END,"
        f" CASE WHEN u.locale IN ({offered}) THEN u.locale"
        " ELSE CAST(:default_locale AS VARCHAR(10)) END, 'pending', 0, :now, :now"
        f" FROM {source} WHERE " + " OR ".join(who) + " ORDER BY u.id"
        " ON CONFLICT (dedupe_key) DO NOTHING"
    )


def _recipients(events: Sequence[str]) -> tuple[str | None, str | None, tuple[str, ...]]:
    """The booker's event, the staff's, and the WHERE parts that pick who gets them."""
    booker_event = next((e for e in events if notify.BOOKING_EVENTS[e] in ("booker", "both")), None)
    staff_event = next((e for e in events if notify.BOOKING_EVENTS[e] in ("staff", "both")), None)
    who = []
    if booker_event is not None:
        who.append("u.id = :booker")
    if staff_event is not None:
        who.append(
            "(u.institute_id = :institute_id AND u.role = :staff_role AND u.active = :yes"
            " AND u.id <> :booker)"
        )
    return booker_event, staff_event, tuple(who)


def _event_values(
    booker_event: str | None,
    staff_event: str | None,
    booker: User,
    institute_id: int,
    languages: list[str],
) -> dict[str, Any]:
    booker_event = booker_event or staff_event
    staff_event = staff_event or booker_event
    return {
        **{f"language_{i}": language for i, language in enumerate(languages)},
        "booker": booker.id,
        "booker_event": booker_event,
        "staff_event": staff_event,
        "booker_kind": f"booking_{booker_event}",
        "staff_kind": f"booking_{staff_event}",
        "default_locale": languages[0],
        "now": utcnow(),
        "institute_id": institute_id,
        "staff_role": str(Role.STAFF),
        "yes": True,
    }


_EVENT_INSERTS: dict[tuple[tuple[str, ...], int], TextClause] = {}


def queue_new_booking_events(booking: Booking, booker: User, events: list[str]) -> None:
    """The booking's event rows for every recipient in one INSERT ... SELECT (the
    staff read in the same statement); a row already queued is left alone."""
    if notify._series_collector.get() is not None:  # a series sends its own message
        for event in events:
            notify.booking_event(booking, event)
        return
    booker_event, staff_event, who = _recipients(events)
    if not who:
        return
    languages = _languages()
    shape = (who, len(languages))
    stmt = _EVENT_INSERTS.get(shape)
    if stmt is None:
        stmt = _EVENT_INSERTS[shape] = text(
            _events_sql("CAST(:prefix AS VARCHAR(100))", ":booking_id", "user_account u", *shape)
        ).bindparams(bindparam("now", type_=UTCDateTime()))
    values = _event_values(booker_event, staff_event, booker, booking.institute_id, languages)
    values["prefix"] = f"booking:{booking.id}:"
    values["booking_id"] = booking.id
    db.session.execute(stmt, values)


_COMBINED: dict[tuple[tuple[str, ...], int], TextClause] = {}


def _combined_statement(who: tuple[str, ...], languages: int) -> TextClause:
    """The booking's INSERT, its audit row's and its events' in one statement
    (PostgreSQL): the booking's columns bound as ``:b_<column>``, the audit row's
    as ``:a_<column>`` (its object id is the booking's), the events' as in
    ``queue_new_booking_events``; it returns the booking's id."""
    columns = [c for c in _BOOKING.c if not c.primary_key]
    audited = [c for c in _AUDIT.c if not c.primary_key]
    booking_sql = (
        "INSERT INTO booking ("  # noqa: S608 - the model's column names; values bound
        + ", ".join(c.name for c in columns)
        + ") VALUES ("
        + ", ".join(f":b_{c.key}" for c in columns)
        + ") RETURNING id"
    )
    audit_sql = (
        "INSERT INTO audit_log ("  # noqa: S608 - the model's column names; values bound
        + ", ".join(c.name for c in audited)
        + ") SELECT "
        + ", ".join("new_booking.id" if c.key == "object_id" else f":a_{c.key}" for c in audited)
        + " FROM new_booking"
    )
    events_sql = _events_sql(
        "'booking:' || CAST(new_booking.id AS VARCHAR(20)) || ':'",
        "new_booking.id",
        "new_booking CROSS JOIN user_account u",
        who,
        languages,
    )
    sql = (
        f"WITH new_booking AS ({booking_sql}), new_audit AS ({audit_sql}),"  # noqa: S608
        f" new_events AS ({events_sql}) SELECT id FROM new_booking"
    )
    return text(sql).bindparams(
        *(bindparam(f"b_{c.key}", type_=c.type) for c in columns),
        *(bindparam(f"a_{c.key}", type_=c.type) for c in audited if c.key != "object_id"),
        bindparam("now", type_=UTCDateTime()),
    )


def write_booking(
    values: dict[str, Any],
    booker: User,
    events: list[str],
    *,
    reason: str | None,
    savepoint: bool,
) -> Booking:
    """Insert the booking of ``values`` (``booking_row.booking_values``), its
    ``booking.create`` audit row (actor ``booker``, ``reason``) and its ``events``;
    the booking, persistent. ``savepoint``: see ``insert_booking``. An overlap that
    PostgreSQL's exclusion constraint refuses raises the IntegrityError (SQLSTATE
    23P01) and writes nothing."""
    booker_event, staff_event, who = _recipients(events)
    if is_sqlite() or not who or notify._series_collector.get() is not None:
        booking = insert_booking(values, savepoint=savepoint)
        audit.insert_one(
            "booking.create",
            "booking",
            booking.id,
            institute_id=booking.institute_id,
            actor_id=booker.id,
            to_state=booking.status,
            reason=reason,
        )
        queue_new_booking_events(booking, booker, events)
        return booking
    languages = _languages()
    shape = (who, len(languages))
    stmt = _COMBINED.get(shape)
    if stmt is None:
        stmt = _COMBINED[shape] = _combined_statement(*shape)
    row = booking_row(values)
    params = _event_values(booker_event, staff_event, booker, row["institute_id"], languages)
    params.update({f"b_{key}": value for key, value in row.items()})
    params.update(
        {
            f"a_{key}": value
            for key, value in audit.row_values(
                "booking.create",
                "booking",
                None,
                institute_id=row["institute_id"],
                actor_id=booker.id,
                to_state=row["status"],
                reason=reason,
            ).items()
            if key != "object_id"
        }
    )
    if savepoint:
        with db.session.begin_nested():
            booking_id = db.session.connection().execute(stmt, params).scalar_one()
    else:
        booking_id = db.session.connection().execute(stmt, params).scalar_one()
    return booking_from_row(row, booking_id)
