"""A resource's waitlist as its institute's staff see it: the open entries (waiting
and offered) in line order with company, wanted time, status, place in line and offer
expiry; on the web (/resources/<id>/waitlist) and in the API
(GET /api/v1/resources/{id}/waitlist), paginated. Staff of another institute get 404,
SMEs 403, anonymous callers the login page or 401; admins see every line. Both
databases."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient

from labshare.booking.bookings import cancel_booking, create_booking
from labshare.booking.policies import waitlist
from labshare.errors import NotAllowed, NotFound
from labshare.extensions import db
from labshare.models import Booking, Role, WaitlistEntry, WaitlistStatus
from labshare.timeutil import set_clock
from labshare.web.bookings import waitlist_views
from tests import factories
from tests.helpers import bearer, check_schema, error_of, served_openapi, signed_in

NOW = dt.datetime(2030, 1, 1, 0, 0, tzinfo=dt.UTC)
SH = ZoneInfo("Asia/Shanghai")
START = dt.datetime(2030, 1, 7, 9, tzinfo=SH)
END = dt.datetime(2030, 1, 7, 11, tzinfo=SH)
RULES = {**factories.OPEN_RULES, "max_active_per_company": 10}


def _at(minutes: int) -> None:
    moment = NOW + dt.timedelta(minutes=minutes)
    set_clock(lambda: moment)


@pytest.fixture
def env(app: Flask) -> SimpleNamespace:
    """An instrument whose 09:00-11:00 is booked; companies a, b, c join its line in
    that order (a minute apart), d joins for 14:00-15:00 (also taken) last, e joins
    and leaves. Then the booking is cancelled: a is offered the time, b and c wait.
    Another instrument of the same institute has an entry of its own (company f)."""
    _at(0)
    inst = factories.make_instrument(rules=dict(RULES))
    other_inst = factories.make_instrument(rules=dict(RULES), lab=inst.lab)
    holder, a, b, c, d, e, f = (
        factories.make_user(Role.SME, company=factories.make_company(name=f"{name} Precision"))
        for name in ("Holder", "Alpha", "Bravo", "Charlie", "Delta", "Echo", "Foxtrot")
    )
    staff = factories.make_user(Role.STAFF, institute_id=inst.institute_id)
    other_staff = factories.make_user(Role.STAFF)
    admin = factories.make_user(Role.ADMIN)
    booking = create_booking(inst, holder, START, END, purpose="first")
    later = create_booking(inst, holder, START.replace(hour=14), END.replace(hour=15), purpose="2")
    create_booking(other_inst, holder, START, END, purpose="other")
    db.session.commit()
    entries = {}
    for minute, (name, user) in enumerate([("e", e), ("a", a), ("b", b), ("c", c)], start=1):
        _at(minute)
        entries[name] = waitlist.join(inst, user, START, END, purpose=f"calibrate {name}")
    _at(5)
    entries["d"] = waitlist.join(inst, d, later.start_at, later.end_at, purpose="calibrate d")
    entries["x"] = waitlist.join(other_inst, f, START, END, purpose="other instrument")
    db.session.commit()
    _at(6)
    waitlist.leave(entries["e"], e)
    db.session.commit()
    _at(10)
    cancel_booking(db.session.get(Booking, booking.id), holder)
    db.session.commit()
    return SimpleNamespace(
        inst=inst,
        other_inst=other_inst,
        users={"a": a, "b": b, "c": c, "d": d, "e": e, "f": f},
        entries=entries,
        staff=staff,
        other_staff=other_staff,
        admin=admin,
        sme=a,
    )


# -- the service --------------------------------------------------------------------------


def test_the_line_in_order_with_places(env: SimpleNamespace) -> None:
    db.session.expire_all()
    assert env.entries["a"].status == WaitlistStatus.OFFERED
    line = waitlist.resource_line(env.inst, env.staff, page=1, per_page=20)
    assert line.total == 4
    got = [(p.entry.id, p.entry.status, p.position) for p in line.places]
    assert got == [
        (env.entries["a"].id, WaitlistStatus.OFFERED, None),
        (env.entries["b"].id, WaitlistStatus.WAITING, 1),
        (env.entries["c"].id, WaitlistStatus.WAITING, 2),
        (env.entries["d"].id, WaitlistStatus.WAITING, 3),
    ]
    for place in line.places:  # the same places the SMEs are told
        assert place.position == waitlist.position(place.entry)


def test_the_line_pages_keep_the_places(env: SimpleNamespace) -> None:
    pages = [waitlist.resource_line(env.inst, env.admin, page=n, per_page=1) for n in (1, 2, 3, 4)]
    assert [p.total for p in pages] == [4, 4, 4, 4]
    assert [(p.places[0].entry.id, p.places[0].position) for p in pages] == [
        (env.entries["a"].id, None),
        (env.entries["b"].id, 1),
        (env.entries["c"].id, 2),
        (env.entries["d"].id, 3),
    ]
    empty = waitlist.resource_line(env.inst, env.admin, page=5, per_page=1)
    assert empty.places == [] and empty.total == 4


def test_the_line_is_refused_to_others(env: SimpleNamespace) -> None:
    with pytest.raises(NotFound):
        waitlist.resource_line(env.inst, env.other_staff, page=1, per_page=20)
    with pytest.raises(NotAllowed):
        waitlist.resource_line(env.inst, env.sme, page=1, per_page=20)
    env.staff.active = False
    with pytest.raises(NotFound):
        waitlist.resource_line(env.inst, env.staff, page=1, per_page=20)


# -- the web page -------------------------------------------------------------------------


def test_staff_page_shows_the_line(app: Flask, env: SimpleNamespace) -> None:
    client = signed_in(app, env.staff)
    response = client.get(f"/resources/{env.inst.id}/waitlist")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    names = [env.users[k].company.name for k in ("a", "b", "c", "d")]
    positions = [html.index(name) for name in names]
    assert positions == sorted(positions), "not in line order"
    assert env.users["e"].company.name not in html  # left the line
    assert env.users["f"].company.name not in html  # another instrument's line
    assert "2030-01-07 09:00 – 11:00" in html  # the wanted time, in Shanghai time
    assert "2030-01-07 14:00 – 15:00" in html
    assert "Offered, slot held" in html and "Waiting" in html
    offer = db.session.get(WaitlistEntry, env.entries["a"].id)
    assert offer is not None and offer.offer_expires_at is not None
    expires = offer.offer_expires_at.astimezone(SH).strftime("%Y-%m-%d %H:%M")
    assert expires in html  # the offer's expiry


def test_staff_page_pages(app: Flask, env: SimpleNamespace, monkeypatch: Any) -> None:
    monkeypatch.setattr(waitlist_views, "PER_PAGE", 2)
    client = signed_in(app, env.admin)
    first = client.get(f"/resources/{env.inst.id}/waitlist").get_data(as_text=True)
    second = client.get(f"/resources/{env.inst.id}/waitlist?page=2").get_data(as_text=True)
    a, b, c, d = (env.users[k].company.name for k in ("a", "b", "c", "d"))
    assert a in first and b in first and c not in first and d not in first
    assert c in second and d in second and a not in second
    assert "Page 1 of 2" in first and "page=2" in first


def test_staff_page_is_refused_to_others(app: Flask, env: SimpleNamespace) -> None:
    url = f"/resources/{env.inst.id}/waitlist"
    anonymous = app.test_client().get(url)
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]
    assert signed_in(app, env.other_staff).get(url).status_code == 404
    assert signed_in(app, env.sme).get(url).status_code == 403
    assert signed_in(app, env.admin).get(url).status_code == 200
    assert signed_in(app, env.staff).get("/resources/999999/waitlist").status_code == 404


def test_staff_find_the_page(app: Flask, env: SimpleNamespace) -> None:
    url = f"/resources/{env.inst.id}/waitlist"
    staff = signed_in(app, env.staff)
    assert url in staff.get("/manage/resources").get_data(as_text=True)
    assert url in staff.get(f"/resources/{env.inst.id}").get_data(as_text=True)
    assert url in signed_in(app, env.admin).get(f"/resources/{env.inst.id}").get_data(as_text=True)
    for client in (
        app.test_client(),
        signed_in(app, env.sme),
        signed_in(app, env.other_staff),
    ):
        assert url not in client.get(f"/resources/{env.inst.id}").get_data(as_text=True)


# -- the API ------------------------------------------------------------------------------


def test_api_lists_the_line(client: FlaskClient, env: SimpleNamespace) -> None:
    response = client.get(f"/api/v1/resources/{env.inst.id}/waitlist", headers=bearer(env.staff))
    assert response.status_code == 200
    body = response.get_json()
    check_schema(client, "LineEntryOutPage", body)
    assert (body["total"], body["page"], body["per_page"]) == (4, 1, 20)
    got = [
        (i["id"], i["status"], i["position"], i["company_name"], i["start"]) for i in body["items"]
    ]
    start = "2030-01-07T09:00:00+08:00"
    assert got == [
        (env.entries["a"].id, "offered", None, env.users["a"].company.name, start),
        (env.entries["b"].id, "waiting", 1, env.users["b"].company.name, start),
        (env.entries["c"].id, "waiting", 2, env.users["c"].company.name, start),
        (
            env.entries["d"].id,
            "waiting",
            3,
            env.users["d"].company.name,
            "2030-01-07T14:00:00+08:00",
        ),
    ]
    offer = body["items"][0]
    assert offer["offer_expires_at"] and offer["offer_expires_at"].endswith("+08:00")
    assert body["items"][1]["offer_expires_at"] is None


def test_api_pages(client: FlaskClient, env: SimpleNamespace) -> None:
    headers = bearer(env.admin)
    url = f"/api/v1/resources/{env.inst.id}/waitlist"
    second = client.get(f"{url}?per_page=2&page=2", headers=headers).get_json()
    assert (second["total"], second["page"], second["per_page"]) == (4, 2, 2)
    assert [(i["id"], i["position"]) for i in second["items"]] == [
        (env.entries["c"].id, 2),
        (env.entries["d"].id, 3),
    ]
    beyond = client.get(f"{url}?per_page=2&page=3", headers=headers).get_json()
    assert beyond["items"] == [] and beyond["total"] == 4
    too_many = client.get(f"{url}?per_page=201", headers=headers)
    assert too_many.status_code == 422 and error_of(too_many)["field"] == "per_page"
    for query, field in (("page=0", "page"), ("per_page=abc", "per_page"), ("page=-1", "page")):
        bad = client.get(f"{url}?{query}", headers={**headers, "Accept-Language": "zh-CN"})
        assert bad.status_code == 422, query
        assert (error_of(bad)["code"], error_of(bad)["field"]) == ("validation_error", field)


def test_staff_page_reads_a_bad_page_number_as_the_first(app: Flask, env: SimpleNamespace) -> None:
    client = signed_in(app, env.staff)
    for page in ("abc", "0", "-3"):
        response = client.get(f"/resources/{env.inst.id}/waitlist?page={page}")
        assert response.status_code == 200, page
        html = response.get_data(as_text=True)
        for key in "abcd":  # the first page: all four entries
            assert env.users[key].company.name in html, page


def test_api_is_refused_to_others(client: FlaskClient, env: SimpleNamespace) -> None:
    url = f"/api/v1/resources/{env.inst.id}/waitlist"
    assert error_of(client.get(url))["code"] == "unauthorized"
    other = client.get(url, headers=bearer(env.other_staff))
    assert other.status_code == 404 and error_of(other)["code"] == "not_found"
    sme = client.get(url, headers=bearer(env.sme))
    assert sme.status_code == 403 and error_of(sme)["code"] == "forbidden"
    missing = client.get("/api/v1/resources/999999/waitlist", headers=bearer(env.staff))
    assert missing.status_code == 404


def test_api_is_in_the_openapi_document(client: FlaskClient) -> None:
    document = served_openapi(client)
    operation = document["paths"]["/api/v1/resources/{resource_id}/waitlist"]["get"]
    assert operation["operationId"] == "list_resource_waitlist"
    assert {p["name"] for p in operation["parameters"]} == {"resource_id", "page", "per_page"}
    assert {"401", "403", "404"} <= set(operation["responses"])
    assert operation["security"] == [{"bearerAuth": []}]
