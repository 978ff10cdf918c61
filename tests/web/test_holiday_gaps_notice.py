"""A year without public holidays loaded is told in words on the statistics page and
the admin's institutes page (besides ``flask holidays check`` and the coverage API),
in the reader's language; once the year is loaded the notice goes. Both databases."""

from __future__ import annotations

from typing import Any

from labshare.booking import holiday_admin
from labshare.extensions import db
from labshare.models import Role
from labshare.timeutil import set_clock
from tests.helpers import NOW, signed_in

NOTICE = "No public holidays are loaded for"


def _load(*years: int) -> None:
    for year in years:
        holiday_admin.put_day(None, day=f"{year}-10-01", kind="holiday", name="国庆节")
    db.session.commit()


def test_the_statistics_page_names_the_missing_years(app: Any, make_user: Any) -> None:
    set_clock(lambda: NOW)  # 2030
    admin = make_user(Role.ADMIN)
    staff = make_user(Role.STAFF)
    db.session.commit()
    page = signed_in(app, admin).get("/reports/?month=2030-01").get_data(as_text=True)
    assert NOTICE + " 2030, 2031" in page
    assert "flask holidays load YEAR" in page
    assert NOTICE in signed_in(app, staff).get("/reports/").get_data(as_text=True)
    _load(2030, 2031)
    page = signed_in(app, admin).get("/reports/?month=2030-01").get_data(as_text=True)
    assert NOTICE not in page
    # a month of a year that has none is told too
    later = signed_in(app, admin).get("/reports/?month=2032-03").get_data(as_text=True)
    assert NOTICE + " 2032" in later


def test_the_admin_institutes_page_tells_it_in_chinese(app: Any, make_user: Any) -> None:
    set_clock(lambda: NOW)
    admin = make_user(Role.ADMIN, locale="zh_CN")
    db.session.commit()
    page = signed_in(app, admin).get("/admin/institutes").get_data(as_text=True)
    assert "未载入 2030, 2031 年的法定节假日" in page
    _load(2030, 2031)
    page = signed_in(app, admin).get("/admin/institutes").get_data(as_text=True)
    assert "data-holiday-gaps" not in page
