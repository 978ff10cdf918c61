"""The catalogue's selects render each option once per process
(labshare/web/catalogue/forms.py, ``OptionCache``): the same HTML as WTForms'
own select, in both languages, with a value chosen or not, an option whose
label needs escaping, and the same page twice."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask, request
from wtforms.widgets import Select

from labshare.web.catalogue.forms import CatalogueFilterForm, OptionCache
from labshare.web.catalogue.views import _filter_choices

SELECTS = ("field", "kind", "measurand", "unit", "province", "institute")


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
@pytest.mark.parametrize(
    "query", ["", "?measurand=pressure&unit=kPa&field=thermal&kind=lab", "?institute=x"]
)
def test_the_same_html_as_wtforms_select(
    app: Flask, db: Any, make_lab: Any, lang: str, query: str
) -> None:
    lab = make_lab()
    lab.institute.name = '<b>"Fluke" & Co</b>'
    db.session.commit()
    query = query.replace("institute=x", f"institute={lab.institute.code}")
    with app.test_request_context(f"/catalogue{query}", headers={"Accept-Language": lang}):
        form = CatalogueFilterForm(request.args)
        _filter_choices(form)
        for name in SELECTS:
            field = getattr(form, name)
            assert isinstance(field.widget, OptionCache)
            cached = [str(field()), str(field())]  # the second from the cache
            assert cached[0] == cached[1] == str(Select()(field)), name
        assert "&lt;b&gt;&#34;Fluke&#34; &amp; Co&lt;/b&gt;" in str(form.institute())
        if "measurand" in query:
            assert '<option selected value="pressure">' in str(form.measurand())
