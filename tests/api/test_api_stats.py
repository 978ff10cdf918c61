"""GET /api/v1/stats/campaign: totals from bookings, scoped by role."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest

from labshare.extensions import db as _db
from labshare.models import BookingStatus, ResourceStatus, Role, ServiceType, UsageRecord
from tests.helpers import bearer, check_schema, error_of

WINDOW = {"from": "2030-01-01T00:00:00+08:00", "to": "2030-02-01T00:00:00+08:00"}
JAN = dt.datetime(2030, 1, 10, 1, 0, tzinfo=dt.UTC)


@pytest.fixture
def world(
    db: Any, make_lab: Any, make_instrument: Any, make_user: Any, make_booking: Any
) -> SimpleNamespace:
    lab = make_lab()
    make_lab(institute=lab.institute, status=ResourceStatus.MAINTENANCE)  # not open
    inst = make_instrument(lab=lab)
    idle = make_instrument(lab=lab)
    other = make_instrument()
    staff = make_user(Role.STAFF, institute=lab.institute)
    sme_a = make_user(Role.SME)
    sme_b = make_user(Role.SME)

    def book(
        status: BookingStatus, user: Any = sme_a, resource: Any = inst, days: int = 0, **kw: Any
    ) -> Any:
        return make_booking(
            resource=resource,
            user=user,
            start=JAN + dt.timedelta(days=days),
            status=status,
            **kw,
        )

    done_a = book(BookingStatus.COMPLETED, fee=Decimal("300"), fee_waived=Decimal("150"))
    done_b = book(
        BookingStatus.COMPLETED, user=sme_b, days=1, fee=Decimal("100"), fee_waived=Decimal("0")
    )
    book(BookingStatus.COMPLETED, user=sme_b, days=2, fee=Decimal("50"), fee_waived=Decimal("50"))
    book(BookingStatus.PENDING, days=3)
    book(BookingStatus.APPROVED, days=4)
    book(BookingStatus.REJECTED, days=5)
    book(BookingStatus.CANCELLED, days=6)
    book(BookingStatus.NO_SHOW, days=7)
    book(BookingStatus.PENDING, resource=idle, days=8)  # pending: not "shared" yet
    book(BookingStatus.COMPLETED, resource=other, days=9)  # another institute
    book(BookingStatus.COMPLETED, days=40)  # outside the window
    for booking, hours in ((done_a, 2), (done_b, 1.5)):
        _db.session.add(
            UsageRecord(
                booking_id=booking.id,
                checked_in_at=booking.start_at,
                checked_out_at=booking.start_at + dt.timedelta(hours=hours),
                service_type=ServiceType.CALIBRATION,
                samples_count=1,
                problem_solved=True,
                recorded_by_id=staff.id,
            )
        )
    world = SimpleNamespace(
        institute=lab.institute,
        other_institute=other.institute,
        staff=staff,
        other_staff=make_user(Role.STAFF, institute=other.institute),
        admin=make_user(Role.ADMIN),
        sme=sme_a,
    )
    db.session.commit()
    return world


def _stats(client: Any, user: Any, **params: Any) -> Any:
    return client.get("/api/v1/stats/campaign", query_string=WINDOW | params, headers=bearer(user))


def test_staff_totals_of_own_institute(client: Any, world: SimpleNamespace) -> None:
    response = _stats(client, world.staff)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    check_schema(client, "CampaignStatsOut", body)
    assert body["institute"]["code"] == world.institute.code
    assert {
        k: body[k]
        for k in (
            "requested",
            "pending",
            "approved",
            "rejected",
            "cancelled",
            "completed",
            "no_show",
        )
    } == {
        "requested": 9,
        "pending": 2,
        "approved": 1,
        "rejected": 1,
        "cancelled": 1,
        "completed": 3,
        "no_show": 1,
    }
    assert body["usage_hours"] == 3.5
    assert body["distinct_smes"] == 2
    assert body["fees_charged"] == 250  # (300 - 150) + 100 + (50 - 50)
    assert body["fees_waived"] == 200
    assert body["shared_instruments"] == 1
    assert body["open_labs"] == 1
    # The same numbers when the staff member names their own institute.
    assert _stats(client, world.staff, institute=world.institute.code).get_json() == body


def test_admin_sees_all_or_one(client: Any, world: SimpleNamespace) -> None:
    everything = _stats(client, world.admin).get_json()
    assert everything["institute"] is None
    assert everything["requested"] == 10 and everything["completed"] == 4
    assert everything["shared_instruments"] == 2
    one = _stats(client, world.admin, institute=world.other_institute.code).get_json()
    assert one["requested"] == 1 and one["institute"]["code"] == world.other_institute.code


@pytest.mark.parametrize(
    ("who", "params", "status", "code"),
    [
        ("sme", {}, 403, "forbidden"),
        ("staff", {"institute": "OTHER"}, 403, "forbidden"),
        ("admin", {"institute": "NOPE"}, 404, "not_found"),
    ],
)
def test_refusals(
    client: Any, world: SimpleNamespace, who: str, params: dict[str, str], status: int, code: str
) -> None:
    if params.get("institute") == "OTHER":
        params = {"institute": world.other_institute.code}
    response = _stats(client, getattr(world, who), **params)
    assert response.status_code == status
    assert error_of(response)["code"] == code


def test_anonymous_and_bad_window(client: Any, world: SimpleNamespace) -> None:
    assert client.get("/api/v1/stats/campaign", query_string=WINDOW).status_code == 401
    headers = bearer(world.admin)
    for params, field in (
        ({"from": "2030-01-01T00:00:00", "to": WINDOW["to"]}, "from"),
        ({"from": WINDOW["from"]}, "to"),
        ({"from": WINDOW["to"], "to": WINDOW["from"]}, "to"),
    ):
        response = client.get("/api/v1/stats/campaign", query_string=params, headers=headers)
        assert response.status_code == 422
        assert error_of(response)["field"] == field


def test_plain_dates_are_read_in_the_institutes_zone_and_named(
    client: Any, world: SimpleNamespace
) -> None:
    with_offset = _stats(client, world.staff).get_json()
    plain = _stats(client, world.staff, **{"from": "2030-01-01", "to": "2030-02-01"}).get_json()
    assert plain == with_offset
    assert plain["timezone"] == "Asia/Shanghai"
    assert plain["from"] == "2029-12-31T16:00:00+00:00"
    national = _stats(client, world.admin, **{"from": "2030-01-01", "to": "2030-02-01"})
    assert national.get_json()["timezone"] == "Asia/Shanghai"
    assert national.get_json()["requested"] == 10


def test_plain_dates_of_an_institute_in_another_zone(
    client: Any, db: Any, make_instrument: Any, make_user: Any, make_booking: Any
) -> None:
    from tests import factories

    west = factories.make_institute(timezone="Asia/Urumqi", province_code="650000")
    instrument = make_instrument(institute=west)
    # 23:00 on 31 January in Urumqi, already 1 February in Beijing.
    make_booking(
        resource=instrument,
        start=dt.datetime(2030, 1, 31, 17, 0, tzinfo=dt.UTC),
        status=BookingStatus.COMPLETED,
    )
    staff = make_user(Role.STAFF, institute=west)
    admin = make_user(Role.ADMIN)
    db.session.commit()
    january = {"from": "2030-01-01", "to": "2030-02-01"}
    body = _stats(client, staff, **january).get_json()
    assert (body["timezone"], body["requested"]) == ("Asia/Urumqi", 1)
    assert body["from"] == "2029-12-31T18:00:00+00:00"
    # Nationally the same dates are Beijing's: that booking is February's.
    assert _stats(client, admin, **january).get_json()["requested"] == 0
    assert _stats(client, admin, **january, institute=west.code).get_json()["requested"] == 1


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2030-02-30", "to": "2030-03-01"}, "from"),
        ({"from": "2030-01-01", "to": "2030-1-2"}, "to"),
        ({"from": "2030-01-02", "to": "2030-01-02"}, "to"),
        ({"from": "2030-01-02T00:00:00", "to": "2030-01-03"}, "from"),
    ],
)
def test_bad_plain_dates(
    client: Any, world: SimpleNamespace, params: dict[str, str], field: str
) -> None:
    response = client.get(
        "/api/v1/stats/campaign", query_string=params, headers=bearer(world.admin)
    )
    assert response.status_code == 422
    assert error_of(response)["field"] == field
