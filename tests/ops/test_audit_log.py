"""The audit log, readable: staff read their institute's rows, admins all, SMEs none;
filters; pages; CSV (formula cells escaped); the API; a booking's own history."""

from __future__ import annotations

import csv
import datetime as dt
import io
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select

from labshare.booking import bookings
from labshare.extensions import db as _db
from labshare.models import AuditLog, Role
from labshare.ops import audit
from labshare.timeutil import set_clock
from tests.helpers import NOW, bearer, check_schema, error_of, signed_in


@pytest.fixture
def world(
    db: Any, make_instrument: Any, make_user: Any, make_booking: Any, monkeypatch: Any
) -> SimpleNamespace:
    set_clock(lambda: NOW)
    inst = make_instrument()
    other_inst = make_instrument()
    staff = make_user(Role.STAFF, institute_id=inst.institute_id)
    other_staff = make_user(Role.STAFF, institute_id=other_inst.institute_id)
    admin = make_user(Role.ADMIN)
    sme = make_user(Role.SME)
    booking = make_booking(resource=inst, user=sme)
    other_booking = make_booking(resource=other_inst, user=sme)
    _db.session.commit()
    bookings.approve_booking(booking, staff)
    bookings.reject_booking(other_booking, other_staff, '=HYPERLINK("http://evil")')
    audit.record("lab.update", inst.lab, actor=staff, data={"name": "x"})
    audit.record("company_confirmed", sme.company, actor=admin)
    _db.session.commit()
    return SimpleNamespace(
        inst=inst,
        other_inst=other_inst,
        staff=staff,
        other_staff=other_staff,
        admin=admin,
        sme=sme,
        booking=booking,
        other_booking=other_booking,
    )


def _actions(rows: list[AuditLog]) -> set[tuple[str, int | None]]:
    return {(r.action, r.object_id) for r in rows}


def test_rows_carry_their_institute(world: SimpleNamespace) -> None:
    rows = {r.action: r for r in _db.session.scalars(select(AuditLog))}
    assert rows["booking.approve"].institute_id == world.inst.institute_id
    assert rows["booking.reject"].institute_id == world.other_inst.institute_id
    assert rows["lab.update"].institute_id == world.inst.institute_id
    assert rows["company_confirmed"].institute_id is None


def test_staff_read_only_their_institute(world: SimpleNamespace) -> None:
    rows, total = audit.list_entries(world.staff, audit.AuditFilter())
    assert _actions(rows) == {
        ("booking.approve", world.booking.id),
        ("lab.update", world.inst.lab_id),
    }
    assert total == 2
    other, _n = audit.list_entries(world.other_staff, audit.AuditFilter())
    assert _actions(other) == {("booking.reject", world.other_booking.id)}
    everything, total_all = audit.list_entries(world.admin, audit.AuditFilter())
    assert total_all == 4 and len(everything) == 4


def test_staff_of_another_institute_see_nothing_of_it(world: SimpleNamespace) -> None:
    f = audit.AuditFilter(object_kind="booking", object_id=world.booking.id)
    rows, total = audit.list_entries(world.other_staff, f)
    assert rows == [] and total == 0
    # nor by naming the institute: only admins may choose one
    f = audit.AuditFilter(institute_id=world.inst.institute_id)
    rows, _t = audit.list_entries(world.other_staff, f)
    assert all(r.institute_id == world.other_inst.institute_id for r in rows)


def test_filters(world: SimpleNamespace) -> None:
    A = world.admin
    by_kind, _t = audit.list_entries(A, audit.AuditFilter(object_kind="resource"))
    assert _actions(by_kind) == {("lab.update", world.inst.lab_id)}
    by_company, _t = audit.list_entries(A, audit.AuditFilter(object_kind="company"))
    assert [r.action for r in by_company] == ["company_confirmed"]
    by_actor, _t = audit.list_entries(A, audit.AuditFilter(actor_id=world.other_staff.id))
    assert [r.action for r in by_actor] == ["booking.reject"]
    by_prefix, _t = audit.list_entries(A, audit.AuditFilter(action="booking."))
    assert {r.action for r in by_prefix} == {"booking.approve", "booking.reject"}
    exact, _t = audit.list_entries(A, audit.AuditFilter(action="booking"))
    assert exact == []
    later, _t = audit.list_entries(A, audit.AuditFilter(since=NOW + dt.timedelta(seconds=1)))
    assert later == []
    before, _t = audit.list_entries(A, audit.AuditFilter(until=NOW + dt.timedelta(seconds=1)))
    assert len(before) == 4
    one, _t = audit.list_entries(A, audit.AuditFilter(institute_id=world.other_inst.institute_id))
    assert [r.action for r in one] == ["booking.reject"]


def test_pages(world: SimpleNamespace) -> None:
    first, total = audit.list_entries(world.admin, audit.AuditFilter(), page=1, per_page=3)
    second, _t = audit.list_entries(world.admin, audit.AuditFilter(), page=2, per_page=3)
    assert total == 4 and len(first) == 3 and len(second) == 1
    assert not {r.id for r in first} & {r.id for r in second}


def test_sme_may_not_read(world: SimpleNamespace) -> None:
    from labshare.errors import NotAllowed

    with pytest.raises(NotAllowed):
        audit.list_entries(world.sme, audit.AuditFilter())


# -- the web page and CSV -----------------------------------------------------------------


def test_page_tenancy_and_roles(app: Any, world: SimpleNamespace) -> None:
    page = signed_in(app, world.other_staff).get("/audit/?object=booking")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert f"booking #{world.other_booking.id}" in html
    assert f"booking #{world.booking.id}" not in html
    assert signed_in(app, world.sme).get("/audit/").status_code == 403
    assert app.test_client().get("/audit/").status_code in (302, 401)


def test_page_bad_filter_is_named(app: Any, world: SimpleNamespace) -> None:
    page = signed_in(app, world.staff).get("/audit/?from=yesterday&object=planet")
    assert page.status_code == 422
    html = page.get_data(as_text=True)
    assert 'id="audit-from-error"' in html and "YYYY-MM-DD" in html


def test_page_date_filter(app: Any, world: SimpleNamespace) -> None:
    client = signed_in(app, world.admin)
    today = "2030-01-01"  # NOW is 08:00 in Shanghai on 1 January 2030
    html = client.get(f"/audit/?from={today}&to={today}").get_data(as_text=True)
    assert "booking.approve" in html
    html = client.get("/audit/?from=2030-01-02").get_data(as_text=True)
    assert "booking.approve" not in html


def test_csv_escapes_formulas_and_keeps_tenancy(app: Any, world: SimpleNamespace) -> None:
    response = signed_in(app, world.other_staff).get("/audit/audit.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    data = response.get_data()
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0][:4] == ["id", "at", "actor", "action"]
    rows = [r for r in rows if r[3] != "login"]  # signing in is audited too
    assert [r[3] for r in rows[1:]] == ["booking.reject"]
    assert rows[1][-1] == '\'=HYPERLINK("http://evil")'
    assert signed_in(app, world.sme).get("/audit/audit.csv").status_code == 403


# -- the API -------------------------------------------------------------------------------


def test_api_list_shape_and_tenancy(client: Any, world: SimpleNamespace) -> None:
    response = client.get("/api/v1/audit?object=booking", headers=bearer(world.other_staff))
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"items", "total", "page", "per_page"}
    assert body["total"] == 1
    assert body["items"][0]["object_id"] == world.other_booking.id
    for item in body["items"]:
        check_schema(client, "AuditEntryOut", item)
    mine = client.get(
        f"/api/v1/audit?object=booking&object_id={world.booking.id}",
        headers=bearer(world.other_staff),
    ).get_json()
    assert mine["items"] == [] and mine["total"] == 0


def test_api_refusals(client: Any, world: SimpleNamespace) -> None:
    response = client.get("/api/v1/audit", headers=bearer(world.sme))
    assert response.status_code == 403
    assert error_of(response)["code"] == "forbidden"
    bad = client.get("/api/v1/audit?from=2030-01-01T00:00:00", headers=bearer(world.admin))
    assert bad.status_code == 422 and error_of(bad)["field"] == "from"
    bad = client.get("/api/v1/audit?object=planet", headers=bearer(world.admin))
    assert bad.status_code == 422 and error_of(bad)["field"] == "object"
    assert client.get("/api/v1/audit").status_code == 401


def test_api_csv(client: Any, world: SimpleNamespace) -> None:
    response = client.get("/api/v1/audit?format=csv", headers=bearer(world.staff))
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(response.get_data().decode("utf-8-sig"))))
    assert {r[3] for r in rows[1:]} == {"booking.approve", "lab.update"}


# -- a booking's own history ----------------------------------------------------------------


def test_booking_page_shows_its_history(app: Any, world: SimpleNamespace) -> None:
    html = signed_in(app, world.sme).get(f"/bookings/{world.booking.id}").get_data(as_text=True)
    assert 'id="history-heading"' in html
    assert "booking.approve" in html and world.staff.name in html
    assert "booking.reject" not in html  # another booking's row
