"""The lean path's first read runs under the write lock (on SQLite the whole
database's): it must look rows up by key, never scan a table. Loading the
instrument's lab with it (the model's ``lazy="joined"``) made SQLite materialise a
nested join of every lab with its resource row for each booking."""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import text

from labshare.booking import path_reads
from labshare.extensions import db as _db
from tests.factories import make_instrument


def test_the_resource_under_the_lock_is_read_by_key(app: Flask, db: Any) -> None:
    instrument = make_instrument()
    for _ in range(3):
        make_instrument()
    _db.session.commit()
    stmt = path_reads._resource_statement(lock=_db.engine.dialect.name != "sqlite")
    compiled = stmt.compile(_db.engine)
    assert " lab_1" not in str(compiled)  # the instrument's lab is not joined
    found = path_reads.lock_and_load(instrument.id)
    assert found is not None and found.id == instrument.id
    assert found.lab.id == instrument.lab_id  # loaded when asked for
    _db.session.rollback()
    if _db.engine.dialect.name == "sqlite":
        sql = str(compiled).replace("?", str(instrument.id))
        plan = [row[-1] for row in _db.session.execute(text("EXPLAIN QUERY PLAN " + sql))]
        # (a tiny table may be scanned where statistics say it is cheaper; the labs'
        # nested join was materialised whatever the statistics)
        assert not [s for s in plan if s.startswith(("MATERIALIZE", "SCAN lab"))], plan


def test_the_policy_is_one_row_whatever_the_opening_periods(app: Flask, db: Any) -> None:
    import datetime as dt

    from labshare.booking.hooks import slot_policies
    from labshare.models import OpeningPeriod
    from tests.factories import make_lab

    hours = [
        (0, dt.time(8, 30), dt.time(12, 0)),
        (0, dt.time(13, 0), dt.time(17, 30, 15, 250000)),
        (2, dt.time(22, 0), dt.time(6, 0)),
        (6, dt.time(0, 0), dt.time(0, 0)),
    ]
    lab = make_lab(hours=[OpeningPeriod(weekday=w, opens=o, closes=c) for w, o, c in hours])
    instrument = make_instrument(lab=lab)
    _db.session.commit()
    policy = path_reads.load_policy(instrument, user_id=0)
    assert policy.periods == sorted(hours)
    lock = _db.engine.dialect.name != "sqlite"
    key = ("policy", lock, tuple(type(p) for p in slot_policies()))
    stmt = path_reads._BUILT[key][0]
    params = {"resource_id": instrument.id, "lab_id": lab.id, "user_id": 0}
    assert len(_db.session.execute(stmt, params).all()) == 1  # not a row per period
    _db.session.rollback()
