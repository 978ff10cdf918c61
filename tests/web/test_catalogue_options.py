"""The catalogue's selects are rendered once per process, locale and version of
their choices (labshare/web/catalogue/forms.py, ``OptionCache``): the same HTML as
WTForms' own select, in both languages, with every value chosen or none, an option
whose label needs escaping, a value in two option groups, and the institutes'
list as the catalogue changes."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask, request
from wtforms.widgets import Select

from labshare.catalogue import search_cache
from labshare.extensions import db as _db
from labshare.web.catalogue.forms import CatalogueFilterForm, OptionCache
from labshare.web.catalogue.views import _filter_choices

SELECTS = ("field", "kind", "measurand", "unit", "province", "institute")


def _wtforms(field: Any) -> str:
    """WTForms' own rendering, with the choices built afresh."""
    source = getattr(field, "choices_source", None)
    if source is not None:
        field.choices = source()
    return str(Select()(field))


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
        _filter_choices(form, search_cache.version())
        for name in SELECTS:
            field = getattr(form, name)
            assert isinstance(field.widget, OptionCache)
            cached = [str(field()), str(field())]  # the second from the cache
            assert cached[0] == cached[1] == _wtforms(field), name
        assert "&lt;b&gt;&#34;Fluke&#34; &amp; Co&lt;/b&gt;" in str(form.institute())
        if "measurand" in query:
            assert '<option selected value="pressure">' in str(form.measurand())


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_every_value_chosen_renders_as_wtforms(
    app: Flask, db: Any, make_lab: Any, lang: str
) -> None:
    """Each select with each of its values chosen (a unit in two groups, µm, marks
    both), an unknown one and a value that needs escaping."""
    make_lab().institute.code = 'A&"B'
    db.session.commit()
    with app.test_request_context("/catalogue", headers={"Accept-Language": lang}):
        form = CatalogueFilterForm(request.args)
        _filter_choices(form, search_cache.version())
        for name in SELECTS:
            field = getattr(form, name)
            _wtforms(field)
            values = [c.value for c in field.choices] + ["nothing-like-it", "<&>"]
            for value in values:
                field.data = value
                assert str(field()) == _wtforms(field), (name, value)
        form.unit.data = "µm"
        groups = sum(1 for c in form.unit.choices if c.value == "µm")
        assert groups >= 2
        assert str(form.unit()).count('<option selected value="µm">') == groups


def test_a_new_institute_is_offered_at_once(app: Flask, db: Any, make_institute: Any) -> None:
    """The institutes' select is kept per catalogue version: a new institute
    changes the version, and the next page lists it."""
    make_institute()
    db.session.commit()
    client = app.test_client()
    first = client.get("/catalogue").get_data(as_text=True)
    _db.session.remove()
    code = make_institute(name="新设的计量院", province="西藏自治区", province_code="540000").code
    db.session.commit()
    _db.session.remove()
    page = client.get("/catalogue").get_data(as_text=True)
    assert "新设的计量院" not in first
    assert "新设的计量院" in page
    assert f'<option value="{code}">新设的计量院</option>' in page
    assert '<option value="540000">西藏自治区</option>' in page


def test_without_the_answer_cache_the_institutes_are_read_each_time(
    app: Flask, db: Any, make_institute: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search_cache.cache_of(app), "budget", 0)
    make_institute(name="甲计量院")
    db.session.commit()
    client = app.test_client()
    assert "甲计量院" in client.get("/catalogue").get_data(as_text=True)
    _db.session.remove()
    make_institute(name="乙计量院")
    db.session.commit()
    _db.session.remove()
    assert "乙计量院" in client.get("/catalogue").get_data(as_text=True)


def test_attributes_and_ids_are_part_of_what_is_kept(app: Flask, db: Any) -> None:
    with app.test_request_context("/catalogue?field=thermal"):
        form = CatalogueFilterForm(request.args)
        field = form.field
        plain = str(field())
        styled = str(field(class_="wide", aria_label="字段"))
        assert styled != plain
        assert styled == str(Select()(field, class_="wide", aria_label="字段"))
        other = CatalogueFilterForm(request.args, prefix="second")
        assert str(other.field()) == _wtforms(other.field)
        assert 'id="second-field"' in str(other.field())


def test_an_option_with_attributes_of_its_own_is_rendered_each_time(app: Flask) -> None:
    from wtforms.fields.choices import SelectChoice

    with app.test_request_context("/catalogue?kind=lab"):
        form = CatalogueFilterForm(request.args)
        form.kind.choices_version = ("test", "with attributes")
        form.kind.choices = [
            SelectChoice("", "Any"),
            SelectChoice("lab", "Lab", render_kw={"disabled": True}),
        ]
        for _ in range(2):
            assert str(form.kind()) == str(Select()(form.kind))
        assert "disabled selected" in str(form.kind())
