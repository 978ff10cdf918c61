"""Admins manage institutes in the web UI: create, edit, refuse bad input field by
field without writing anything, and nobody else may open the pages."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from sqlalchemy import select

from labshare.catalogue import institutes
from labshare.errors import ValidationFailed
from labshare.models import AuditLog, Institute, InstituteKind, Role
from tests.helpers import count_rows

GOOD: dict[str, str] = {
    "code": "js-nim",
    "name": "江苏省计量科学研究院",
    "name_en": "Jiangsu Institute of Metrology",
    "kind": "provincial",
    "province_code": "320000",
    "province": "江苏省",
    "city": "南京",
    "address": "南京市江宁区",
    "contact_phone": "025-12345678",
    "contact_email": "Service@JSNIM.example.cn",
    "timezone": "Asia/Shanghai",
}


def _field_error(page: str, field: str) -> str:
    found = re.search(rf'id="{field}-error"[^>]*>(.*?)</p>', page, re.S)
    assert found, f"no error shown next to {field}"
    return html.unescape(found.group(1).strip())


@pytest.fixture
def admin(db: Any, make_user: Any, login: Any) -> Any:
    user = make_user(Role.ADMIN)
    db.session.commit()
    login(user)
    return user


def test_admin_creates_an_institute(client: Any, db: Any, admin: Any) -> None:
    form = client.get("/admin/institutes/new")
    assert form.status_code == 200
    response = client.post("/admin/institutes/new", data=GOOD)
    assert response.status_code == 302
    assert response.headers["Location"] == "/admin/institutes"
    institute = db.session.scalar(select(Institute).where(Institute.code == "JS-NIM"))
    assert institute is not None
    assert institute.kind is InstituteKind.PROVINCIAL
    assert institute.name == "江苏省计量科学研究院"
    assert institute.contact_email == "Service@jsnim.example.cn"
    assert institute.active is True
    audit = db.session.scalar(select(AuditLog).where(AuditLog.action == "institute_created"))
    assert audit is not None and audit.object_id == institute.id and audit.actor_id == admin.id
    listing = client.get("/admin/institutes").get_data(as_text=True)
    assert "JS-NIM" in listing and "was created" in listing  # the flash


def test_list_counts_labs_instruments_and_staff(
    client: Any, db: Any, admin: Any, make_lab: Any, make_instrument: Any, make_user: Any
) -> None:
    lab = make_lab()
    make_instrument(lab=lab)
    make_instrument(lab=lab)
    make_user(Role.STAFF, institute=lab.institute)
    db.session.commit()
    page = client.get("/admin/institutes").get_data(as_text=True)
    row = re.search(rf"<code>{lab.institute.code}</code>.*?</tr>", page, re.S)
    assert row is not None
    numbers = re.findall(r'<td class="num">(\d+)</td>', row.group(0))
    assert numbers == ["1", "2", "1"]


def test_admin_edits_an_institute(client: Any, db: Any, admin: Any, make_institute: Any) -> None:
    institute = make_institute(code="OLD1")
    db.session.commit()
    page = client.get(f"/admin/institutes/{institute.id}/edit")
    assert page.status_code == 200
    assert 'value="OLD1"' in page.get_data(as_text=True)
    response = client.post(
        f"/admin/institutes/{institute.id}/edit",
        data={**GOOD, "code": "old1", "name": "新名称", "timezone": "Asia/Urumqi"},
    )
    assert response.status_code == 302
    db.session.expire_all()
    assert institute.code == "OLD1"
    assert institute.name == "新名称"
    assert institute.timezone == "Asia/Urumqi"
    audit = db.session.scalar(select(AuditLog).where(AuditLog.action == "institute_updated"))
    assert audit is not None and audit.actor_id == admin.id
    assert audit.data["changes"]["name"][1] == "新名称"
    assert "code" not in audit.data["changes"]


BAD = [
    ("code", "", "Please enter the institute code"),
    ("code", "A", "2 to 32 characters"),
    ("code", "JS NIM", "2 to 32 characters"),
    ("code", "计量院", "2 to 32 characters"),
    ("code", "X" * 33, "at most 32"),
    ("name", "   ", "Please enter the name"),
    ("kind", "university", "kind of institute"),
    ("province_code", "32000", "6 digits"),
    ("province_code", "32000A", "6 digits"),
    ("province", "", "Please enter the province"),
    ("timezone", "Mars/Olympus", "Unknown time zone"),
    ("timezone", "../../etc/passwd", "Unknown time zone"),
    ("contact_email", "not-an-email", "not a valid email address"),
]


@pytest.mark.parametrize(("field", "value", "message"), BAD)
def test_bad_field_is_named_and_nothing_written(
    client: Any, db: Any, admin: Any, field: str, value: str, message: str
) -> None:
    audits = count_rows(AuditLog)
    response = client.post("/admin/institutes/new", data={**GOOD, field: value})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert message in _field_error(page, field)
    assert count_rows(Institute) == 0
    assert count_rows(AuditLog) == audits
    # The other input is kept.
    assert "Jiangsu Institute of Metrology" in page


@pytest.mark.parametrize(("field", "value", "message"), BAD)
def test_bad_field_on_edit_changes_nothing(
    client: Any, db: Any, admin: Any, make_institute: Any, field: str, value: str, message: str
) -> None:
    institute = make_institute(code="KEEP1", name="原名")
    db.session.commit()
    audits = count_rows(AuditLog)
    response = client.post(
        f"/admin/institutes/{institute.id}/edit", data={**GOOD, "code": "KEEP1", field: value}
    )
    assert response.status_code == 422
    assert message in _field_error(response.get_data(as_text=True), field)
    db.session.expire_all()
    assert (institute.code, institute.name) == ("KEEP1", "原名")
    assert count_rows(AuditLog) == audits


def test_duplicate_code_in_another_case_is_refused(
    client: Any, db: Any, admin: Any, make_institute: Any
) -> None:
    existing = make_institute(code="JS-NIM")
    other = make_institute(code="SH-IM")
    db.session.commit()
    response = client.post("/admin/institutes/new", data={**GOOD, "code": "Js-Nim"})
    assert response.status_code == 422
    assert "already has this code" in _field_error(response.get_data(as_text=True), "code")
    assert count_rows(Institute) == 2
    taken = client.post(f"/admin/institutes/{other.id}/edit", data={**GOOD, "code": "js-nim"})
    assert taken.status_code == 422
    assert "already has this code" in _field_error(taken.get_data(as_text=True), "code")
    db.session.expire_all()
    assert other.code == "SH-IM" and existing.code == "JS-NIM"


def test_service_refuses_without_writing(app: Any, db: Any, make_user: Any) -> None:
    actor = make_user(Role.ADMIN)
    values = {**GOOD, "kind": InstituteKind.NATIONAL}
    with pytest.raises(ValidationFailed) as caught:
        institutes.create_institute(actor, **{**values, "province_code": "abcdef"})
    assert caught.value.field == "province_code"
    assert count_rows(Institute) == 0
    created = institutes.create_institute(actor, **values)
    assert created.code == "JS-NIM"
    with pytest.raises(ValidationFailed) as caught:
        institutes.update_institute(actor, created, timezone="Nowhere/Town")
    assert caught.value.field == "timezone"
    assert created.timezone == "Asia/Shanghai"
    with pytest.raises(ValidationFailed) as caught:
        institutes.update_institute(actor, created, active=False)
    assert caught.value.field == "active"


PAGES = [
    ("GET", "/admin/institutes"),
    ("GET", "/admin/institutes/new"),
    ("POST", "/admin/institutes/new"),
    ("GET", "/admin/institutes/{id}/edit"),
    ("POST", "/admin/institutes/{id}/edit"),
]


@pytest.mark.parametrize(("method", "path"), PAGES)
@pytest.mark.parametrize("role", [Role.SME, Role.STAFF])
def test_others_are_forbidden(
    client: Any,
    db: Any,
    login: Any,
    make_user: Any,
    make_institute: Any,
    role: Role,
    method: str,
    path: str,
) -> None:
    institute = make_institute(code="FORBID")
    user = make_user(role, institute=institute) if role is Role.STAFF else make_user(role)
    db.session.commit()
    login(user)
    url = path.format(id=institute.id)
    response = client.get(url) if method == "GET" else client.post(url, data=GOOD)
    assert response.status_code == 403
    assert count_rows(Institute) == 1
    db.session.expire_all()
    assert institute.code == "FORBID"


@pytest.mark.parametrize(("method", "path"), PAGES)
def test_anonymous_goes_to_login(
    client: Any, db: Any, make_institute: Any, method: str, path: str
) -> None:
    institute = make_institute(code="ANON")
    db.session.commit()
    url = path.format(id=institute.id)
    response = client.get(url) if method == "GET" else client.post(url, data=GOOD)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")
    assert count_rows(Institute) == 1


def test_unknown_institute_is_404(client: Any, admin: Any) -> None:
    assert client.get("/admin/institutes/999999/edit").status_code == 404


def test_users_page_links_to_institutes(client: Any, admin: Any) -> None:
    page = client.get("/admin/users").get_data(as_text=True)
    assert 'href="/admin/institutes"' in page
