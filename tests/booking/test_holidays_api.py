"""Public holidays and make-up workdays: the API's and the web form's permissions and
bad input, the bookings a new holiday finds, and the command line. On SQLite and
PostgreSQL."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from sqlalchemy import func, select

from labshare.booking import holiday_admin
from labshare.extensions import db
from labshare.models import AuditLog, Booking, CalendarDay, Role
from tests import factories
from tests.booking.test_holidays import MONDAY, NATIONAL_DAY, _book, _instrument, local
from tests.helpers import bearer, error_of, served_openapi

# -- the API: permissions and bad input -----------------------------------------------------


def test_only_admins_keep_the_calendar(client: Any, app: Any) -> None:
    admin = factories.make_user(Role.ADMIN)
    staff = factories.make_user(Role.STAFF)
    sme = factories.make_user(Role.SME)
    db.session.commit()
    body = {"date": "2030-10-01", "kind": "holiday", "name": "国庆节"}
    assert client.post("/api/v1/holidays", json=body).status_code == 401
    for user in (staff, sme):
        assert client.post("/api/v1/holidays", json=body, headers=bearer(user)).status_code == 403
        load = client.post("/api/v1/holidays/load", json={"year": 2026}, headers=bearer(user))
        assert load.status_code == 403
    assert db.session.scalar(select(func.count(CalendarDay.id))) == 0
    created = client.post("/api/v1/holidays", json=body, headers=bearer(admin))
    assert created.status_code == 201, created.get_json()
    day_id = created.get_json()["id"]
    listed = client.get("/api/v1/holidays?year=2030").get_json()
    assert [d["date"] for d in listed] == ["2030-10-01"]
    assert client.delete(f"/api/v1/holidays/{day_id}", headers=bearer(staff)).status_code == 403
    assert client.delete(f"/api/v1/holidays/{day_id}", headers=bearer(admin)).status_code == 204
    assert client.delete(f"/api/v1/holidays/{day_id}", headers=bearer(admin)).status_code == 404
    loaded = client.post("/api/v1/holidays/load", json={"year": 2026}, headers=bearer(admin))
    assert loaded.status_code == 200 and loaded.get_json()["source"] == "library"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"date": "2030-13-01"}, "date"),
        ({"date": "tomorrow"}, "date"),
        ({"kind": "feast"}, "kind"),
        ({"name": "  "}, "name"),
        ({"name": "长" * 101}, "name"),
        ({"works_as": 2}, "works_as"),  # a holiday has no weekday's hours
        ({"kind": "workday", "date": "2030-10-01"}, "date"),  # a Tuesday
        ({"kind": "workday", "date": "2030-09-28", "works_as": 9}, "works_as"),
        ({"region": "Jiangsu"}, "region"),
        ({"date": "1800-10-01"}, "year"),
    ],
)
def test_bad_days_are_named_and_write_nothing(
    client: Any, app: Any, change: dict[str, Any], field: str
) -> None:
    admin = factories.make_user(Role.ADMIN, locale="zh_CN")
    db.session.commit()
    body = {"date": "2030-10-01", "kind": "holiday", "name": "国庆节", **change}
    response = client.post("/api/v1/holidays", json=body, headers=bearer(admin))
    assert response.status_code == 422, response.get_json()
    error = error_of(response)
    assert error["field"] == field
    assert not error["message"].isascii()  # in the admin's language
    assert db.session.scalar(select(func.count(CalendarDay.id))) == 0


def test_bad_queries_and_bodies(client: Any, app: Any) -> None:
    admin = factories.make_user(Role.ADMIN)
    db.session.commit()
    assert error_of(client.get("/api/v1/holidays?year=abc"))["field"] == "year"
    assert error_of(client.get("/api/v1/holidays?year=1900"))["field"] == "year"
    assert error_of(client.get("/api/v1/holidays?year=2030&region=x"))["field"] == "region"
    bad_year = client.post("/api/v1/holidays/load", json={"year": 2099}, headers=bearer(admin))
    assert bad_year.status_code == 422 and error_of(bad_year)["field"] == "year"
    wrong_type = client.post("/api/v1/holidays/load", json={"year": "2026"}, headers=bearer(admin))
    assert wrong_type.status_code in (400, 422)


def test_who_may_opt_out(client: Any, app: Any) -> None:
    inst = _instrument()
    institute = inst.institute
    lab_id, institute_id = inst.lab_id, institute.id
    staff = factories.make_user(Role.STAFF, institute=institute)
    head = factories.make_user(Role.STAFF, institute=institute, institute_admin=True)
    stranger = factories.make_user(Role.STAFF, institute_admin=True)
    sme = factories.make_user(Role.SME)
    admin = factories.make_user(Role.ADMIN)
    db.session.commit()
    url = f"/api/v1/institutes/{institute_id}/holidays"
    off = {"follows": False}
    assert client.put(url, json=off, headers=bearer(staff)).status_code == 403
    assert client.put(url, json=off, headers=bearer(stranger)).status_code == 404
    assert client.put(url, json=off, headers=bearer(sme)).status_code == 403
    assert client.put(url, json={"follows": "no"}, headers=bearer(head)).status_code == 400
    done = client.put(url, json=off, headers=bearer(head))
    assert done.status_code == 200 and done.get_json() == {
        "id": institute_id,
        "follows_holidays": False,
    }
    assert client.put(url, json={"follows": True}, headers=bearer(admin)).status_code == 200
    lab_url = f"/api/v1/catalogue/labs/{lab_id}/holidays"
    assert client.put(lab_url, json=off, headers=bearer(stranger)).status_code == 404
    assert client.put(lab_url, json=off, headers=bearer(sme)).status_code == 403
    assert (
        client.put(
            f"/api/v1/catalogue/labs/{inst.id}/holidays", json=off, headers=bearer(staff)
        ).status_code
        == 404
    )  # an instrument is no lab
    lab_done = client.put(lab_url, json=off, headers=bearer(staff))
    assert lab_done.status_code == 200 and lab_done.get_json()["follows_holidays"] is False
    actions = set(db.session.scalars(select(AuditLog.action)))
    assert {"institute.holidays", "resource.holidays"} <= actions


# -- the command line ------------------------------------------------------------------------


def test_the_command_line(app: Any) -> None:
    runner = app.test_cli_runner()
    loaded = runner.invoke(args=["holidays", "load", "2026"])
    assert loaded.exit_code == 0, loaded.output
    assert "2026 from library" in loaded.output and "(loaded)" in loaded.output
    again = runner.invoke(args=["holidays", "load", "2026"])
    assert "(unchanged)" in again.output
    added = runner.invoke(
        args=[
            "holidays",
            "add",
            "2030-10-09",
            "--kind",
            "holiday",
            "--name",
            "省庆",
            "--region",
            "320000",
        ]
    )
    assert added.exit_code == 0, added.output
    listed = runner.invoke(args=["holidays", "list", "2030", "--region", "320000"])
    assert "2030-10-09\t320000\tholiday\t省庆" in listed.output
    bad = runner.invoke(args=["holidays", "add", "2030-10-01", "--kind", "workday", "--name", "x"])
    assert bad.exit_code != 0 and "date:" in bad.output
    missing = runner.invoke(args=["holidays", "load", "2099"])
    assert missing.exit_code != 0 and "year:" in missing.output
    day_id = int(added.output.split("\t", 1)[0])
    removed = runner.invoke(args=["holidays", "remove", str(day_id)])
    assert removed.exit_code == 0
    assert runner.invoke(args=["holidays", "remove", str(day_id)]).exit_code != 0


def test_a_new_holiday_lists_the_bookings_already_on_it(client: Any, app: Any) -> None:
    inst = _instrument()
    opted_out = _instrument()
    holiday_admin.set_lab_follows(None, opted_out.lab, False)
    sme = factories.make_user(Role.SME)
    admin = factories.make_user(Role.ADMIN)
    db.session.commit()
    on_it = _book(inst, sme, local(NATIONAL_DAY, 10), local(NATIONAL_DAY, 12))
    _book(opted_out, sme, local(NATIONAL_DAY, 10), local(NATIONAL_DAY, 12))
    _book(inst, sme, local(MONDAY, 10), local(MONDAY, 12))  # the day before
    body = {"date": "2030-10-01", "kind": "holiday", "name": "国庆节"}
    response = client.post("/api/v1/holidays", json=body, headers=bearer(admin))
    assert response.status_code == 201
    assert response.get_json()["bookings_inside"] == [on_it.id]
    assert db.session.get(Booking, on_it.id).status == "pending"  # never approved on it


def test_staff_set_a_labs_opt_out_on_its_hours_page(client: Any, login: Any, app: Any) -> None:
    from labshare.models import Lab

    inst = _instrument()
    lab_id = inst.lab_id
    staff = factories.make_user(Role.STAFF, institute=inst.institute, locale="zh_CN")
    stranger = factories.make_user(Role.STAFF)
    db.session.commit()
    login(stranger)
    assert client.post(f"/manage/labs/{lab_id}/holidays", data={}).status_code == 404
    client.post("/logout")
    login(staff)
    page = client.get(f"/manage/labs/{lab_id}/hours").get_data(as_text=True)
    assert 'name="follows" value="y" checked' in page and "法定节假日闭馆" in page
    done = client.post(f"/manage/labs/{lab_id}/holidays", data={})  # the box unticked
    assert done.status_code == 302
    db.session.expire_all()
    assert db.session.get(Lab, lab_id).follows_holidays is False
    client.post(f"/manage/labs/{lab_id}/holidays", data={"follows": "y"})
    db.session.expire_all()
    assert db.session.get(Lab, lab_id).follows_holidays is True


def test_the_list_of_days_is_the_array_the_document_describes(client: Any, app: Any) -> None:
    """GET /holidays answers a JSON array of days: so its OpenAPI answer says (it
    said one day, and the fuzz failed whenever a year came back 200)."""
    admin = factories.make_user(Role.ADMIN)
    db.session.commit()
    document = served_openapi(client)
    answer = document["paths"]["/api/v1/holidays"]["get"]["responses"]["200"]
    schema = {**answer["content"]["application/json"]["schema"], **document}
    assert schema["type"] == "array"
    empty = client.get("/api/v1/holidays?year=2031")
    assert empty.status_code == 200 and empty.get_json() == []
    jsonschema.validate(empty.get_json(), schema, cls=jsonschema.Draft202012Validator)
    body = {"date": "2031-10-01", "kind": "holiday", "name": "国庆节"}
    assert client.post("/api/v1/holidays", json=body, headers=bearer(admin)).status_code == 201
    days = client.get("/api/v1/holidays?year=2031").get_json()
    assert [d["date"] for d in days] == ["2031-10-01"]
    jsonschema.validate(days, schema, cls=jsonschema.Draft202012Validator)
