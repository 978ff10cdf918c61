"""Each company's first day of use (``stats_first_use``): the new SMEs come from it
where no marker makes a company untrusted, live otherwise; the rollup job, ``flask
stats rebuild`` and ``flask stats check`` cover it; the API's totals equal the pages'."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, update

from labshare.campaign import figures, first_use, stats_store
from labshare.campaign.periods import Period, Scope
from labshare.extensions import db
from labshare.models import (
    ANY_INSTITUTE,
    Booking,
    BookingStatus,
    Role,
    StatsDirty,
    StatsFirstUse,
)
from tests import factories
from tests.helpers import bearer

FEB = Period.month("2030-02")


def _at(month: int, day: int) -> dt.datetime:
    # 10:00 in Shanghai: the same local day in the test institutes' zone
    return dt.datetime(2030, month, day, 2, tzinfo=dt.UTC)


@pytest.fixture
def world(app: Flask) -> dict[str, Any]:
    """Company a: January and February (not new in February); b: February only (new);
    c: January at the other institute, February here (new here, not nationally); d:
    cancelled in January, completed in February (new)."""
    here = factories.make_instrument()
    there = factories.make_instrument()
    smes = {name: factories.make_user(Role.SME) for name in "abcd"}
    made = {
        "a_jan": factories.make_booking(
            resource=here, user=smes["a"], start=_at(1, 10), status=BookingStatus.COMPLETED
        ),
        "a_feb": factories.make_booking(
            resource=here, user=smes["a"], start=_at(2, 3), status=BookingStatus.COMPLETED
        ),
        "b_feb": factories.make_booking(
            resource=here, user=smes["b"], start=_at(2, 4), status=BookingStatus.COMPLETED
        ),
        "c_jan": factories.make_booking(
            resource=there, user=smes["c"], start=_at(1, 5), status=BookingStatus.COMPLETED
        ),
        "c_feb": factories.make_booking(
            resource=here, user=smes["c"], start=_at(2, 5), status=BookingStatus.COMPLETED
        ),
        "d_jan": factories.make_booking(
            resource=here, user=smes["d"], start=_at(1, 6), status=BookingStatus.CANCELLED
        ),
        "d_feb": factories.make_booking(
            resource=here, user=smes["d"], start=_at(2, 6), status=BookingStatus.COMPLETED
        ),
    }
    db.session.commit()
    return {"here": here, "there": there, "smes": smes, "bookings": made}


def _no_live(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: Any, **_kw: Any) -> Any:
        raise AssertionError("counted live")

    monkeypatch.setattr(figures, "_live_sme_counts", refuse)


def _rebuilt() -> None:
    stats_store.rebuild()
    db.session.commit()
    stats_store.clean()  # markers an earlier test left outside the rebuilt days
    assert not db.session.scalar(select(StatsDirty.resource_id).limit(1))


def test_new_smes_come_from_the_first_days(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    _rebuilt()
    _no_live(monkeypatch)
    here = Scope.institute(world["here"].institute_id)
    assert figures.statistics_for(FEB, here).new_smes == 3  # b, c, d
    assert figures.statistics_for(FEB, Scope.everything()).new_smes == 2  # b, d
    assert figures.statistics_for(FEB, Scope.province("320000")).new_smes == 2
    assert figures.statistics_for(Period.month("2030-01"), Scope.everything()).new_smes == 2
    c = world["smes"]["c"].company_id
    rows = dict(
        db.session.execute(
            select(StatsFirstUse.institute_id, StatsFirstUse.day).where(
                StatsFirstUse.company_id == c
            )
        ).all()
    )
    assert rows == {
        world["there"].institute_id: dt.date(2030, 1, 5),
        world["here"].institute_id: dt.date(2030, 2, 5),
        ANY_INSTITUTE: dt.date(2030, 1, 5),
    }


def test_an_edit_of_the_past_counts_at_once_and_the_job_stores_it(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    _rebuilt()
    # a's January booking goes, c's January one is cancelled, d's is completed after all
    b = world["bookings"]
    db.session.delete(db.session.get(Booking, b["a_jan"].id))
    db.session.get(Booking, b["c_jan"].id).status = BookingStatus.CANCELLED
    db.session.get(Booking, b["d_jan"].id).status = BookingStatus.COMPLETED
    db.session.commit()
    expected = 3  # a and c new now, d no longer
    assert figures.statistics_for(FEB, Scope.everything()).new_smes == expected
    stats_store.clean()
    assert not db.session.scalar(select(StatsDirty.resource_id).limit(1))
    _no_live(monkeypatch)
    assert figures.statistics_for(FEB, Scope.everything()).new_smes == expected
    assert not first_use.differences()


def test_too_many_markers_count_everything_live(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    _rebuilt()
    monkeypatch.setattr(first_use, "MAX_MARKERS", 0)
    db.session.get(Booking, world["bookings"]["b_feb"].id).fee_waived = 0
    db.session.get(Booking, world["bookings"]["b_feb"].id).status = BookingStatus.NO_SHOW
    db.session.commit()
    assert first_use.stored_new(FEB.start, FEB.end, "all", []) is None
    assert figures.statistics_for(FEB, Scope.everything()).new_smes == 1  # d


def test_check_finds_a_wrong_first_day_and_rebuild_mends_it(
    app: Flask, world: dict[str, Any]
) -> None:
    _rebuilt()
    company = world["smes"]["b"].company_id
    db.session.execute(
        update(StatsFirstUse)
        .where(StatsFirstUse.company_id == company)
        .values(day=dt.date(2029, 12, 1))
    )
    db.session.commit()
    runner = app.test_cli_runner()
    result = runner.invoke(args=["stats", "check"])
    assert result.exit_code == 1, result.output
    assert f"first use of company {company} at any institute: stored 2029-12-01" in result.output
    result = runner.invoke(args=["stats", "rebuild"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(args=["stats", "check"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("stored", [True, False])
def test_api_totals_equal_the_pages_figures(
    client: Any, world: dict[str, Any], stored: bool
) -> None:
    if stored:
        _rebuilt()
    admin = factories.make_user(Role.ADMIN)
    db.session.commit()
    for code, scope in (
        (None, Scope.everything()),
        (world["here"].institute.code, Scope.institute(world["here"].institute_id)),
    ):
        query = {"from": "2030-02-01", "to": "2030-03-01"} | ({"institute": code} if code else {})
        body = client.get("/api/v1/stats/campaign", query_string=query, headers=bearer(admin))
        assert body.status_code == 200, body.get_json()
        got = body.get_json()
        f = figures.statistics_for(FEB, scope)
        c = f.counters
        keys = ["requested", "completed", "cancelled", "no_show", "distinct_smes"]
        keys += ["shared_instruments", "open_labs", "usage_hours"]
        assert {k: got[k] for k in keys} == {
            "requested": c["bookings_total"],
            "completed": c["completed"],
            "cancelled": c["cancelled"],
            "no_show": c["no_show"],
            "distinct_smes": f.distinct_smes,
            "shared_instruments": f.shared_instruments,
            "open_labs": f.open_labs,
            "usage_hours": c.usage_hours,
        }
        assert got["fees_charged"] == float(c.fees_charged)
