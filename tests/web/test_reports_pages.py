"""The statistics pages: page × role, staff scoped to their institute, downloads."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from labshare.models import BookingStatus, Role
from tests import factories


@pytest.fixture
def two(app: Any) -> dict[str, Any]:
    a = factories.make_institute(code="JS01", name="江苏省计量院")
    b = factories.make_institute(code="BJ01", name="北京市计量院", province_code="110000")
    for inst, name in ((a, "三坐标测量机"), (b, "激光干涉仪")):
        ins = factories.make_instrument(institute=inst, name=name)
        factories.make_booking(
            resource=ins,
            start=dt.datetime(2030, 1, 8, 1, tzinfo=dt.UTC),
            status=BookingStatus.APPROVED,
        )
    return {"a": a, "b": b}


@pytest.mark.parametrize(
    ("role", "status"), [(None, 302), (Role.SME, 403), (Role.STAFF, 200), (Role.ADMIN, 200)]
)
@pytest.mark.parametrize("path", ["/reports/?month=2030-01", "/reports/export?month=2030-01"])
def test_page_by_role(
    client: Any, login: Any, two: dict[str, Any], role: Any, status: int, path: str
) -> None:
    if role is not None:
        kw = {"institute": two["a"]} if role == Role.STAFF else {}
        login(factories.make_user(role, **kw))
    factories.db.session.commit()
    assert client.get(path).status_code == status


def test_staff_see_only_their_institute(client: Any, login: Any, two: dict[str, Any]) -> None:
    login(factories.make_user(Role.STAFF, institute=two["a"]))
    page = client.get("/reports/?month=2030-01&institute=JS01").get_data(as_text=True)
    assert "三坐标测量机" in page and "激光干涉仪" not in page
    assert client.get("/reports/?month=2030-01&institute=BJ01").status_code == 403
    csv_body = client.get("/reports/export?month=2030-01&format=csv").get_data()
    assert csv_body.startswith(b"\xef\xbb\xbf") and "北京市计量院" not in csv_body.decode(
        "utf-8-sig"
    )


def test_admin_national_and_filters(client: Any, login: Any, two: dict[str, Any]) -> None:
    login(factories.make_user(Role.ADMIN))
    page = client.get("/reports/?month=2030-01").get_data(as_text=True)
    assert "三坐标测量机" in page and "激光干涉仪" in page
    assert "<svg" in page and "<table" in page
    page = client.get("/reports/?month=2030-01&province=110000").get_data(as_text=True)
    assert "激光干涉仪" in page and "三坐标测量机" not in page
    assert client.get("/reports/?month=bad").status_code == 422


def test_empty_periods_say_so_and_every_chart_keeps_its_table(
    client: Any, login: Any, two: dict[str, Any]
) -> None:
    login(factories.make_user(Role.ADMIN))
    factories.db.session.commit()
    page = client.get("/reports/?month=2031-06").get_data(as_text=True)
    assert "No bookings start in 2031-06-01 – 2031-06-30" in page
    assert "No bookings in these twelve months." in page
    assert page.count("No bookings this month.") == 12
    assert "No booked hours in this period." in page
    assert page.count("<table") == 6  # headline, trend, top, heat map, field, province
    # A month with bookings: no such sentence, and the trend shows the booked month.
    page = client.get("/reports/?month=2030-01").get_data(as_text=True)
    assert "No bookings start in" not in page
    assert page.count("No bookings this month.") == 11


def test_empty_period_in_chinese(client: Any, login: Any, two: dict[str, Any]) -> None:
    login(factories.make_user(Role.ADMIN, locale="zh_CN"))
    factories.db.session.commit()
    page = client.get("/reports/?month=2031-06").get_data(as_text=True)
    assert "期间没有开始的预约" in page and "本月没有预约。" in page
