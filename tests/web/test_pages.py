"""Site pages: every page × every role answers 200, a 302 to the login page, or
403/404; the catalogue's filters; what a resource page shows."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from labshare.models import Field, InstituteKind, ResourceStatus, Role, User
from labshare.timeutil import set_clock

ROLES = [None, Role.SME, Role.STAFF, Role.ADMIN]
NOW = dt.datetime(2030, 3, 1, 2, 0, tzinfo=dt.UTC)  # 10:00 in Asia/Shanghai


@pytest.fixture
def catalogue(db: Any, make_institute: Any, make_lab: Any, make_instrument: Any) -> Any:
    set_clock(lambda: NOW)
    north = make_institute(
        code="NIM",
        name="中国计量科学研究院",
        name_en="National Institute of Metrology",
        kind=InstituteKind.NATIONAL,
        province_code="110000",
        province="北京市",
    )
    south = make_institute(
        code="GDMI",
        name="广东省计量科学研究院",
        name_en="Guangdong Institute of Metrology",
        kind=InstituteKind.PROVINCIAL,
        province_code="440000",
        province="广东省",
    )
    make_institute(code="GONE", name="撤销的机构", active=False)
    lab = make_lab(
        institute=south, name="压力计量实验室", name_en="Pressure lab", field=Field.MECHANICAL
    )
    items = {
        "lab": lab,
        "pressure": make_instrument(
            lab=lab,
            name="数字压力校验仪",
            name_en="Digital pressure calibrator",
            fee_per_hour=Decimal("200"),
            fee_waiver_percent=50,
            calibration_valid_until=dt.date(2031, 1, 1),
            certificate_number="YL-2030-001",
        ),
        "expiring": make_instrument(
            lab=lab,
            name="活塞式压力计",
            name_en="Piston gauge",
            calibration_valid_until=dt.date(2030, 3, 20),
        ),
        "expired": make_instrument(
            lab=lab,
            name="标准压力表",
            name_en="Standard pressure gauge",
            calibration_valid_until=dt.date(2030, 2, 1),
        ),
        "thermo": make_instrument(
            lab=make_lab(
                institute=north, name="温度实验室", name_en="Temperature lab", field=Field.THERMAL
            ),
            name="恒温槽",
            name_en="Thermostatic bath",
            field=Field.THERMAL,
            measurand="temperature",
            unit="°C",
            range_min=-40,
            range_max=300,
            range_min_base=233.15,
            range_max_base=573.15,
            accuracy="±0.01 °C",
            fee_per_hour=Decimal("0"),
            fee_waiver_percent=0,
        ),
        "retired": make_instrument(
            lab=lab, name="退役压力计", name_en="Retired gauge", status=ResourceStatus.RETIRED
        ),
        "north": north,
        "south": south,
    }
    db.session.commit()
    return items


def _as(role: Role | None, login: Any, make_user: Any, db: Any) -> User | None:
    if role is None:
        return None
    user = make_user(role)
    db.session.commit()
    login(user)
    return user


PUBLIC = [
    "/",
    "/catalogue",
    "/catalogue?q=pressure&field=mechanical&province=440000&institute=GDMI&kind=instrument",
    "/institutes",
    "/institutes/NIM",
    "/resources/{lab}",
    "/resources/{pressure}",
    "/resources/{expired}",
]


@pytest.mark.parametrize("role", ROLES, ids=lambda r: str(r or "anonymous"))
def test_pages_by_role(
    client: Any, db: Any, login: Any, make_user: Any, catalogue: Any, role: Role | None
) -> None:
    _as(role, login, make_user, db)
    ids = {k: getattr(v, "id", None) for k, v in catalogue.items()}
    for path in PUBLIC:
        url = path.format(**ids)
        response = client.get(url)
        assert response.status_code == 200, url
    expected = {
        "/login": 200 if role is None else 302,
        "/register": 200 if role is None else 302,
        "/admin/users": {None: 302, Role.SME: 403, Role.STAFF: 403, Role.ADMIN: 200}[role],
        "/admin/users/new": {None: 302, Role.SME: 403, Role.STAFF: 403, Role.ADMIN: 200}[role],
        "/institutes/GONE": 404,
        "/institutes/NOPE": 404,
        "/resources/999999": 404,
        "/nowhere": 404,
    }
    for url, status in expected.items():
        assert client.get(url).status_code == status, url
    if role is None:
        assert client.get("/admin/users").headers["Location"].startswith("/login")


def test_navigation_follows_the_role(
    client: Any, db: Any, login: Any, make_user: Any, catalogue: Any
) -> None:
    page = client.get("/").get_data(as_text=True)
    assert 'href="/catalogue"' in page and 'href="/admin/users"' not in page
    assert 'href="/login"' in page and 'href="/register"' in page
    _as(Role.ADMIN, login, make_user, db)
    page = client.get("/").get_data(as_text=True)
    assert 'href="/admin/users"' in page and "Log out" in page
    assert 'href="/register"' not in page


def test_home_has_a_search_box_for_the_catalogue(client: Any, catalogue: Any) -> None:
    page = client.get("/").get_data(as_text=True)
    assert re.search(r'<form[^>]*method="get" action="/catalogue"', page)
    assert 'name="q"' in page
    assert ">4</strong>" in page  # four instruments that are not retired
    assert 'href="/catalogue?field=thermal"' in page


def _names(response: Any) -> set[str]:
    html = response.get_data(as_text=True)
    return set(re.findall(r'<h2><a href="/resources/\d+">(.*?)</a></h2>', html))


def test_catalogue_filters(client: Any, catalogue: Any) -> None:
    en = {"Accept-Language": "en"}
    all_names = _names(client.get("/catalogue", headers=en))
    assert "Retired gauge" not in all_names
    assert {"Pressure lab", "Digital pressure calibrator", "Thermostatic bath"} <= all_names
    assert _names(client.get("/catalogue?q=bath", headers=en)) == {"Thermostatic bath"}
    assert _names(client.get("/catalogue?q=恒温", headers=en)) == {"Thermostatic bath"}
    north = {"Temperature lab", "Thermostatic bath"}
    assert _names(client.get("/catalogue?q=temperature", headers=en)) == north
    assert _names(client.get("/catalogue?field=thermal", headers=en)) == north
    assert _names(client.get("/catalogue?province=110000", headers=en)) == north
    assert _names(client.get("/catalogue?institute=NIM", headers=en)) == north
    assert _names(client.get("/catalogue?q=bath&institute=GDMI", headers=en)) == set()
    assert _names(client.get("/catalogue?kind=lab", headers=en)) == {
        "Pressure lab",
        "Temperature lab",
    }
    assert _names(client.get("/catalogue?q=%25", headers=en)) == set()  # a literal %
    assert _names(client.get("/catalogue?q=Metrology&institute=GDMI", headers=en)) == {
        "Pressure lab",
        "Digital pressure calibrator",
        "Piston gauge",
        "Standard pressure gauge",
    }


def test_catalogue_shows_names_in_the_page_language(client: Any, catalogue: Any) -> None:
    zh = _names(client.get("/catalogue?kind=lab", headers={"Accept-Language": "zh-CN"}))
    assert zh == {"压力计量实验室", "温度实验室"}


@pytest.mark.parametrize(
    "query", ["field=nonsense", "kind=robot", "page=abc", "page=-3", "page=99999", "q=" + "x" * 500]
)
def test_catalogue_survives_bad_filters(client: Any, catalogue: Any, query: str) -> None:
    assert client.get(f"/catalogue?{query}").status_code == 200


def test_catalogue_pages(client: Any, db: Any, make_instrument: Any, catalogue: Any) -> None:
    lab = catalogue["lab"]
    for n in range(25):
        make_instrument(lab=lab, name=f"分页仪器{n:02d}", name_en=f"Paged {n:02d}")
    db.session.commit()
    first = client.get("/catalogue?q=Paged", headers={"Accept-Language": "en"})
    html = first.get_data(as_text=True)
    assert "25 results" in html and "Page 1 of 2" in html
    assert len(_names(first)) == 20
    assert 'href="/catalogue?page=2&amp;q=Paged"' in html or "page=2" in html
    second = client.get("/catalogue?q=Paged&page=2", headers={"Accept-Language": "en"})
    assert len(_names(second)) == 5


def test_resource_page_shows_capability_fee_rules_and_hours(client: Any, catalogue: Any) -> None:
    html = client.get(
        f"/resources/{catalogue['pressure'].id}", headers={"Accept-Language": "en"}
    ).get_data(as_text=True)
    assert "Digital pressure calibrator" in html and "数字压力校验仪" in html
    assert "Guangdong Institute of Metrology" in html
    assert "-0.1 … 10 MPa" in html and "±0.02 %FS" in html
    assert "Calibrated until 2031-01-01" in html and "YL-2030-001" in html
    assert "200.00 yuan per hour" in html
    assert "SMEs get 50 % off: 100.00 yuan per hour." in html
    assert "Bookings start on a 30-minute grid." in html
    assert "The institute approves each request." in html
    assert "Monday" in html and "00:00–24:00" in html
    assert "Asia/Shanghai" in html
    assert f'href="/resources/{catalogue["pressure"].id}/calendar"' in html


def test_resource_page_highlights_calibration(client: Any, catalogue: Any) -> None:
    en = {"Accept-Language": "en"}
    expiring = client.get(f"/resources/{catalogue['expiring'].id}", headers=en)
    assert 'badge-warning">Calibration expires soon: 2030-03-20' in expiring.get_data(as_text=True)
    expired = client.get(f"/resources/{catalogue['expired'].id}", headers=en)
    html = expired.get_data(as_text=True)
    assert 'badge-danger">Calibration expired on 2030-02-01' in html
    assert "cannot be booked until it has been calibrated again" in html
    free = client.get(f"/resources/{catalogue['thermo'].id}", headers=en).get_data(as_text=True)
    assert "Free of charge" in free and "No calibration date" not in free


def test_lab_page_lists_its_instruments(client: Any, catalogue: Any) -> None:
    html = client.get(
        f"/resources/{catalogue['lab'].id}", headers={"Accept-Language": "en"}
    ).get_data(as_text=True)
    assert "Instruments in this laboratory" in html
    assert "Piston gauge" in html and "Retired gauge" not in html
    assert "1 company at a time" in html


def test_institutes_pages(client: Any, catalogue: Any) -> None:
    en = {"Accept-Language": "en"}
    listing = client.get("/institutes", headers=en).get_data(as_text=True)
    assert "National Institute of Metrology" in listing and "撤销的机构" not in listing
    assert "Provincial metrology institute" in listing
    detail = client.get("/institutes/GDMI", headers=en).get_data(as_text=True)
    assert "Pressure lab" in detail and "3 instruments" in detail
    assert 'href="/catalogue?institute=GDMI"' in detail


def test_user_text_is_escaped(client: Any, db: Any, catalogue: Any) -> None:
    thermo = catalogue["thermo"]
    thermo.name_en = '<script>alert("x")</script>'
    thermo.accuracy = "<b>bold</b>"
    db.session.commit()
    html = client.get(f"/resources/{thermo.id}", headers={"Accept-Language": "en"}).get_data(
        as_text=True
    )
    assert "<script>alert" not in html and "&lt;script&gt;" in html
    assert "<b>bold</b>" not in html


def test_pages_have_no_inline_scripts_or_styles(
    client: Any, db: Any, login: Any, make_user: Any, catalogue: Any
) -> None:
    _as(Role.ADMIN, login, make_user, db)
    for url in [
        "/",
        "/catalogue",
        "/institutes",
        "/institutes/GDMI",
        f"/resources/{catalogue['pressure'].id}",
        "/admin/users",
        "/admin/users/new",
        "/resources/999999",
    ]:
        html = client.get(url).get_data(as_text=True)
        assert " style=" not in html, url
        assert "<style" not in html, url
        for script in re.findall(r"<script\b[^>]*>", html):
            assert "src=" in script, url
        assert "http://" not in html.replace("http://www.w3.org", ""), url
        assert 'href="/static/css/app.css' in html


def test_error_pages_are_friendly(client: Any, db: Any) -> None:
    response = client.get("/resources/999999", headers={"Accept-Language": "en"})
    html = response.get_data(as_text=True)
    assert response.status_code == 404
    assert "Page not found" in html and "Go to the home page" in html
    assert "The requested URL was not found on the server" not in html
    zh = client.get("/nowhere", headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    assert "页面不存在" in zh


def test_static_css_is_served(client: Any) -> None:
    response = client.get("/static/css/app.css")
    assert response.status_code == 200
    assert ":focus-visible" in response.get_data(as_text=True)


def test_admin_sees_users(client: Any, db: Any, login: Any, make_user: Any) -> None:
    admin = _as(Role.ADMIN, login, make_user, db)
    assert admin is not None
    html = client.get("/admin/users").get_data(as_text=True)
    assert admin.email in html
    assert db.session.scalar(select(User).where(User.id == admin.id)) is not None


def test_capability_search(client: Any, db: Any, make_instrument: Any, catalogue: Any) -> None:
    en = {"Accept-Language": "en"}
    make_instrument(
        lab=catalogue["lab"],
        name="小量程压力计",
        name_en="Low-range manometer",
        range_min=0,
        range_max=100,
        unit="kPa",
        range_min_base=0,
        range_max_base=100000,
    )
    db.session.commit()
    page = client.get("/catalogue", headers=en).get_data(as_text=True)
    assert '<select id="measurand" name="measurand">' in page
    assert '<optgroup label="Pressure">' in page and '<option value="MPa">MPa</option>' in page
    found = _names(client.get("/catalogue?measurand=pressure&value=8&unit=MPa", headers=en))
    assert "Digital pressure calibrator" in found and "Low-range manometer" not in found
    assert "Thermostatic bath" not in found
    found = _names(client.get("/catalogue?measurand=pressure&value=50&unit=kPa", headers=en))
    assert "Low-range manometer" in found
    assert _names(client.get("/catalogue?measurand=temperature&value=-40&unit=°C", headers=en)) == {
        "Thermostatic bath"
    }


@pytest.mark.parametrize(
    ("query", "field", "text"),
    [
        ("measurand=pressure&value=8&unit=°C", "unit", "cannot express"),
        ("measurand=pressure&value=eight&unit=MPa", "value", "Enter a number"),
        ("measurand=pressure&value=8", "unit", "unit"),
        ("value=8&unit=MPa", "measurand", "measurand"),
        ("measurand=nonsense&value=8&unit=MPa", "measurand", "Unknown measurand"),
    ],
)
def test_capability_search_errors_name_the_field(
    client: Any, catalogue: Any, query: str, field: str, text: str
) -> None:
    response = client.get(f"/catalogue?{query}", headers={"Accept-Language": "en"})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    error = re.search(rf'id="{field}-error">(.*?)</p>', html)
    assert error is not None and text in error.group(1)
    assert _names(response) == set()
