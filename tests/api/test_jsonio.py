"""The JSON encoder (labshare/jsonio.py): the documents of Flask's own provider,
compact UTF-8, with what orjson cannot encode left to the standard encoder."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import json
import uuid
from typing import Any

import pytest
from flask import Flask, jsonify
from flask.json.provider import DefaultJSONProvider
from flask_babel import lazy_gettext
from markupsafe import Markup

from labshare.jsonio import OrjsonProvider


@dataclasses.dataclass
class Point:
    x: int
    when: dt.date


class Colour(enum.StrEnum):
    RED = "red"


SAMPLES: list[Any] = [
    {"b": 1, "a": [1, 2.5, None, True], "c": {"z": "压力", "y": "Ω"}},
    {"when": dt.datetime(2030, 1, 7, 9, 30, tzinfo=dt.UTC), "day": dt.date(2030, 1, 7)},
    {"fee": decimal.Decimal("150.50"), "id": uuid.UUID(int=7)},
    {"point": Point(1, dt.date(2030, 1, 7)), "colour": Colour.RED},
    {"markup": Markup("<b>x</b>"), "tuple": (1, "a")},
    {1: "int key", 2: "another"},
    [1e-7, 0.1, 1e300, -0.0, 12345678901234567],
]


@pytest.mark.parametrize("value", SAMPLES)
def test_the_same_document_as_flask_s_provider(app: Flask, value: Any) -> None:
    ours = app.json
    assert isinstance(ours, OrjsonProvider)
    flask_s = DefaultJSONProvider(app)
    assert json.loads(ours.dumps(value)) == json.loads(flask_s.dumps(value))


def test_compact_utf8_with_sorted_keys(app: Flask) -> None:
    assert app.json.dumps({"b": "压力", "a": 1}) == '{"a":1,"b":"压力"}'


def test_an_answer_is_bytes_ending_in_a_newline_as_flask_s(app: Flask) -> None:
    with app.test_request_context():
        response = jsonify({"name": "压力校验仪"})
    assert response.mimetype == "application/json"
    assert response.get_data() == '{"name":"压力校验仪"}\n'.encode()


def test_a_lazy_translation_is_its_text(app: Flask) -> None:
    with app.test_request_context():
        assert app.json.dumps({"m": lazy_gettext("Thermal")}) == '{"m":"Thermal"}'


def test_not_a_number_is_null_as_json_has_no_nan(app: Flask) -> None:
    assert app.json.dumps([float("nan"), float("inf")]) == "[null,null]"


def test_what_orjson_cannot_encode_goes_to_the_standard_encoder(app: Flask) -> None:
    huge = 2**70  # past 64 bits
    assert app.json.dumps({"n": huge, "s": "压"}) == f'{{"n":{huge},"s":"压"}}'


def test_what_nobody_can_encode_is_refused_as_before(app: Flask) -> None:
    for value in ({1, 2}, b"bytes", dt.time(9, 30)):
        with pytest.raises(TypeError):
            app.json.dumps({"v": value})


def test_a_caller_s_own_arguments_get_the_standard_encoder(app: Flask) -> None:
    assert app.json.dumps({"a": "压"}, indent=1) == '{\n "a": "\\u538b"\n}'


def test_debug_answers_stay_indented(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app, "debug", True)
    with app.test_request_context():
        body = jsonify({"a": 1}).get_data(as_text=True)
    assert body == '{\n  "a": 1\n}\n'


@pytest.mark.parametrize("debug", [False, True])
def test_a_body_alone_is_the_answer_s(
    app: Flask, monkeypatch: pytest.MonkeyPatch, debug: bool
) -> None:
    monkeypatch.setattr(app, "debug", debug)
    provider = app.json
    assert isinstance(provider, OrjsonProvider)
    for value in SAMPLES:
        with app.test_request_context():
            assert provider.body(value) == jsonify(value).get_data()
