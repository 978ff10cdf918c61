"""Capability search with unit conversion: every unit of the reference instrument
list (../shared/data/instruments.csv), the symbols pint misreads, and the search
itself on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest

from labshare.catalogue.capability import refresh_base_range, to_base
from labshare.errors import ValidationFailed
from labshare.models import Instrument

# The 60 capabilities of instruments.csv: (measurand, unit, range_min, range_max).
CAPABILITIES = [
    ("length", "mm", 0, 1200),
    ("length", "m", 0, 80),
    ("length", "mm", 0, 400),
    ("roughness", "µm", 0.005, 16),
    ("length", "mm", 0.5, 100),
    ("roundness", "µm", 0, 1000),
    ("length", "mm", 0, 200),
    ("temperature", "°C", -189.3442, 660.323),
    ("temperature", "°C", 90, 300),
    ("temperature", "°C", -80, 95),
    ("temperature", "°C", 300, 1200),
    ("temperature", "°C", -20, 500),
    ("relative_humidity", "%", 10, 95),
    ("pressure", "MPa", 0.1, 60),
    ("pressure", "MPa", -0.1, 10),
    ("pressure", "kPa", -10, 10),
    ("force", "kN", 1, 1000),
    ("torque", "N·m", 1, 5000),
    ("mass", "g", 0.001, 220),
    ("mass", "g", 0.001, 1000),
    ("force", "kN", 0.5, 300),
    ("flow_rate", "m³/h", 0.1, 200),
    ("flow_rate", "L/min", 0.5, 500),
    ("rotational_speed", "rpm", 10, 30000),
    ("acceleration", "m/s²", 0.1, 1000),
    ("voltage", "V", 0, 1000),
    ("voltage", "V", 0, 1000),
    ("resistance", "Ω", 0.001, 1000000),
    ("current", "A", 0.001, 100),
    ("resistance", "GΩ", 0.001, 10),
    ("voltage", "kV", 1, 200),
    ("frequency", "GHz", 0.000009, 26.5),
    ("frequency", "GHz", 0.01, 67),
    ("power", "mW", 0.0000001, 100),
    ("frequency", "GHz", 0.0001, 40),
    ("frequency", "MHz", 30, 18000),
    ("frequency", "MHz", 5, 10),
    ("frequency", "GHz", 0.000001, 3),
    ("time_interval", "s", 0.00000000002, 1000),
    ("time_interval", "s", 0, 86400),
    ("frequency", "MHz", 10, 10),
    ("dose_rate", "µSv/h", 0.1, 10000),
    ("air_kerma", "Gy", 0.000001, 1),
    ("activity", "Bq", 10, 100000),
    ("activity_concentration", "Bq/m³", 100, 100000),
    ("amount_fraction", "µmol/mol", 0.1, 10000),
    ("wavelength", "nm", 190, 1100),
    ("ph", "pH", 0, 14),
    ("conductivity", "µS/cm", 0.1, 200000),
    ("mass_concentration", "mg/L", 0.001, 10),
    ("mass_fraction", "%", 0.001, 100),
    ("sound_pressure_level", "dB", 94, 114),
    ("sound_pressure_level", "dB", 20, 140),
    ("frequency", "Hz", 63, 20000),
    ("power", "W", 0.01, 20),
    ("illuminance", "lx", 0.1, 200000),
    ("wavelength", "nm", 350, 1050),
    ("power", "mW", 0.000001, 10),
    ("luminance", "cd/m²", 0.01, 10000),
    ("power", "W", 0.0001, 100),
]

# Each unit of the list: (measurand, unit, value, its value in the base unit worked
# out by hand, and the same quantity written in another unit).
UNITS = [
    ("length", "mm", 1200, 1.2, (120, "cm")),
    ("length", "m", 80, 80, (80000, "mm")),
    ("roughness", "µm", 16, 16e-6, (0.016, "mm")),
    ("roundness", "µm", 1000, 1e-3, (1, "mm")),
    ("temperature", "°C", 25, 298.15, (298.15, "K")),
    ("relative_humidity", "%", 50, 50, (50, "%RH")),
    ("pressure", "MPa", 8, 8e6, (8000, "kPa")),
    ("pressure", "kPa", 10, 1e4, (0.1, "bar")),
    ("force", "kN", 1, 1e3, (1000, "N")),
    ("torque", "N·m", 50, 50, (50, "N*m")),
    ("mass", "g", 220, 0.22, (220000, "mg")),
    ("flow_rate", "m³/h", 3.6, 1e-3, (60, "L/min")),
    ("flow_rate", "L/min", 60, 1e-3, (3.6, "m**3/h")),
    ("rotational_speed", "rpm", 3000, 3000, (50, "rps")),
    ("acceleration", "m/s²", 9.80665, 9.80665, (1, "g0")),
    ("voltage", "V", 1000, 1000, (1, "kV")),
    ("voltage", "kV", 200, 2e5, (200000, "V")),
    ("resistance", "Ω", 1e6, 1e6, (1, "MΩ")),
    ("resistance", "GΩ", 10, 1e10, (10000, "MΩ")),
    ("current", "A", 0.1, 0.1, (100, "mA")),
    ("frequency", "GHz", 26.5, 26.5e9, (26500, "MHz")),
    ("frequency", "MHz", 10, 1e7, (10000, "kHz")),
    ("frequency", "Hz", 1000, 1000, (1, "kHz")),
    ("power", "mW", 100, 0.1, (0.1, "W")),
    ("power", "W", 20, 20, (20000, "mW")),
    ("time_interval", "s", 0.001, 0.001, (1, "ms")),
    ("dose_rate", "µSv/h", 3600, 1e-6, (3.6, "mSv/h")),
    ("air_kerma", "Gy", 0.001, 0.001, (1, "mGy")),
    ("activity", "Bq", 1000, 1000, (1, "kBq")),
    ("activity_concentration", "Bq/m³", 1000, 1000, (1, "Bq/L")),
    ("amount_fraction", "µmol/mol", 100, 1e-4, (100, "ppm")),
    ("wavelength", "nm", 633, 633e-9, (0.633, "µm")),
    ("ph", "pH", 7, 7, (7, "pH")),
    ("conductivity", "µS/cm", 1413, 0.1413, (1.413, "mS/cm")),
    ("mass_concentration", "mg/L", 5, 5e-3, (5000, "µg/L")),
    ("mass_fraction", "%", 12.5, 12.5, (12.5, "%")),
    ("sound_pressure_level", "dB", 94, 94, (94, "dB")),
    ("illuminance", "lx", 500, 500, (500, "lux")),
    ("luminance", "cd/m²", 100, 100, (100, "cd/m**2")),
]


def test_every_unit_of_the_reference_list_is_covered() -> None:
    listed = {(m, u) for m, u, _lo, _hi in CAPABILITIES}
    tested = {(m, u) for m, u, _v, _b, _alt in UNITS}
    assert listed <= tested


@pytest.mark.parametrize(("measurand", "unit", "value", "base", "alt"), UNITS)
def test_to_base(
    measurand: str, unit: str, value: float, base: float, alt: tuple[float, str]
) -> None:
    assert to_base(value, unit, measurand) == pytest.approx(base, rel=1e-9)
    assert to_base(alt[0], alt[1], measurand) == pytest.approx(base, rel=1e-9)


@pytest.mark.parametrize(
    ("value", "unit", "measurand", "base"),
    [
        (100, "°F", "temperature", 310.927777),
        (-80, "°C", "temperature", 193.15),
        (25, "℃", "temperature", 298.15),  # the one-character degree Celsius
        (25, "degC", "temperature", 298.15),
        (16, "μm", "roughness", 16e-6),  # Greek mu, not the micro sign
        (16, "um", "roughness", 16e-6),
        (1, "Ω", "resistance", 1),  # the ohm sign, not Greek omega
        (1, "ohm", "resistance", 1),
        (3000, "r/min", "rotational_speed", 3000),  # how Chinese standards write rpm
        (50, "N m", "torque", 50),
        (50, "N⋅m", "torque", 50),
        (0, "dBm", "power", 0.001),
        (1, "%", "amount_fraction", 0.01),
        (7, "PH", "ph", 7),
        (8, " MPa ", "pressure", 8e6),
    ],
)
def test_spellings(value: float, unit: str, measurand: str, base: float) -> None:
    assert to_base(value, unit, measurand) == pytest.approx(base, rel=1e-6)


@pytest.mark.parametrize(
    ("value", "unit", "measurand"),
    [
        (8, "kg", "pressure"),  # wrong dimension
        (1, "furlongs_per_parsec", "length"),  # unknown
        (1, "", "length"),
        (1, "m)", "length"),  # pint's tokenizer chokes on this
        (60, "Hz", "rotational_speed"),  # pint would give 9.55 rpm, not 3600
        (1, "rpm", "frequency"),
        (1, "Bq", "frequency"),  # count/s is not a frequency
        (1, "lx", "luminance"),  # lux is cd·sr/m², not cd/m²
        (1, "cd/m²", "illuminance"),
        (1, "µGy/h", "dose_rate"),  # absorbed dose is not dose equivalent
        (1, "Sv", "air_kerma"),
        (1, "J", "torque"),  # same dimension, a different quantity
        (7, "pH", "inductance"),  # pint reads pH as picohenry
        (7, "mol/L", "ph"),
        (94, "Pa", "sound_pressure_level"),
        (94, "dB(A)", "sound_pressure_level"),
        (1, "dB", "amount_fraction"),  # pint reads dB as a logarithmic ratio
        (50, "ppm", "mass_fraction"),  # only % for the % measurands
        (50, "ppm", "relative_humidity"),
        (1, "g", "acceleration"),  # gram, not standard gravity
        (8, "MPa", "temperature"),
    ],
)
def test_unit_that_does_not_fit_is_refused_naming_unit(
    value: float, unit: str, measurand: str
) -> None:
    with pytest.raises(ValidationFailed) as info:
        to_base(value, unit, measurand)
    assert info.value.field == "unit"


def test_unknown_measurand_names_measurand() -> None:
    with pytest.raises(ValidationFailed) as info:
        to_base(1, "m", "happiness")
    assert info.value.field == "measurand"
    assert "length" in info.value.details["allowed"]


def test_refresh_base_range_normalises_and_orders() -> None:
    inst = Instrument(measurand="temperature", unit="°C", range_min=-80, range_max=95)
    refresh_base_range(inst)
    assert inst.range_min_base == pytest.approx(193.15)
    assert inst.range_max_base == pytest.approx(368.15)
    inst = Instrument(measurand="pressure", unit="kg", range_min=0, range_max=1)
    with pytest.raises(ValidationFailed):
        refresh_base_range(inst)


def _search(client: Any, **params: Any) -> set[int]:
    response = client.get("/api/v1/resources", query_string={"per_page": 200, **params})
    assert response.status_code == 200, response.get_json()
    return {item["id"] for item in response.get_json()["items"]}


def test_search_finds_every_reference_capability_in_another_unit(
    db: Any, client: Any, make_instrument: Any, make_lab: Any
) -> None:
    lab = make_lab()
    ids: list[tuple[int, tuple[Any, ...]]] = []
    for measurand, unit, low, high in CAPABILITIES:
        inst = make_instrument(
            lab=lab, measurand=measurand, unit=unit, range_min=low, range_max=high
        )
        refresh_base_range(inst)
        ids.append((inst.id, (measurand, unit, low, high)))
    db.session.commit()
    alt_of = {(m, u): (v, alt) for m, u, v, _b, alt in UNITS}
    for inst_id, (measurand, unit, low, high) in ids:
        middle = (low + high) / 2
        assert inst_id in _search(client, measurand=measurand, value=middle, unit=unit)
        above = high * 1.5 + 1
        assert inst_id not in _search(client, measurand=measurand, value=above, unit=unit)
        # The same middle value written in the other unit of UNITS, scaled by hand.
        sample_value, (alt_value, alt_unit) = alt_of[(measurand, unit)]
        if measurand == "temperature":
            continue  # offset unit: covered by the bath test below
        factor = alt_value / sample_value
        found = _search(client, measurand=measurand, value=middle * factor, unit=alt_unit)
        assert inst_id in found, (measurand, unit, alt_unit)


def test_search_examples(db: Any, client: Any, make_instrument: Any) -> None:
    calibrator = make_instrument(measurand="pressure", unit="MPa", range_min=0, range_max=10)
    bath = make_instrument(measurand="temperature", unit="°C", range_min=-80, range_max=95)
    furnace = make_instrument(measurand="temperature", unit="°C", range_min=300, range_max=1200)
    for inst in (calibrator, bath, furnace):
        refresh_base_range(inst)
    db.session.commit()

    assert _search(client, measurand="pressure", value=8, unit="MPa") == {calibrator.id}
    assert _search(client, measurand="pressure", value=8000, unit="kPa") == {calibrator.id}
    assert _search(client, measurand="pressure", value=10, unit="MPa") == {calibrator.id}  # edge
    assert _search(client, measurand="pressure", value=10000, unit="kPa") == {calibrator.id}
    assert _search(client, measurand="pressure", value=11, unit="MPa") == set()
    assert _search(client, measurand="temperature", value=298.15, unit="K") == {bath.id}
    assert _search(client, measurand="temperature", value=100, unit="°F") == {bath.id}
    assert _search(client, measurand="temperature", value=500, unit="°C") == {furnace.id}
    assert _search(client, measurand="temperature") == {bath.id, furnace.id}

    response = client.get("/api/v1/resources?measurand=pressure&value=8&unit=kg")
    assert response.status_code == 422
    assert response.get_json()["error"]["field"] == "unit"
    response = client.get("/api/v1/resources?measurand=pressure&value=8&unit=bogus")
    assert response.status_code == 422
    assert response.get_json()["error"]["field"] == "unit"
    response = client.get("/api/v1/resources?measurand=happiness&value=8&unit=MPa")
    assert response.get_json()["error"]["field"] == "measurand"
    response = client.get("/api/v1/resources?measurand=pressure&value=8")
    assert response.get_json()["error"]["field"] == "unit"
    response = client.get("/api/v1/resources?value=8&unit=MPa")
    assert response.get_json()["error"]["field"] == "measurand"
    response = client.get("/api/v1/resources?measurand=pressure&value=eight&unit=MPa")
    assert response.status_code == 422
    assert response.get_json()["error"]["field"] == "value"


def test_search_bounds_are_kept_but_refusals_are_not() -> None:
    from labshare.catalogue import capability

    low, high = capability.search_bounds(800, "kPa", "pressure")
    assert low < 800_000 < high
    hits = capability._bounds.cache_info().hits
    assert capability.search_bounds(800.0, "kPa", "pressure") == (low, high)
    assert capability._bounds.cache_info().hits == hits + 1
    for _ in range(2):  # refused every time, not once
        with pytest.raises(ValidationFailed) as refused:
            capability.search_bounds(1, "pH", "pressure")
        assert refused.value.field == "unit"
