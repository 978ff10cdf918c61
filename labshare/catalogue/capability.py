"""Capability search: unit conversion of metrology quantities with pint.

An instrument states its range as the metrologist writes it (``-80 … 95 °C``,
``0.1 … 60 MPa``). Each measurand has a base unit; ``refresh_base_range`` stores
the range converted to it, and a search converts the wanted value the same way,
so ``8000 kPa`` finds a ``0 … 10 MPa`` calibrator with one indexed comparison.

Where pint and the metrologist disagree:

- ``pH`` is a picohenry to pint, ``dB`` a logarithmic ratio and ``%`` a factor of
  0.01. For the measurands written in them (``ph``, ``sound_pressure_level``,
  ``relative_humidity``, ``mass_fraction``) the value is taken as it is and only
  that unit is accepted; ``pH`` and ``dB`` fit no other measurand, while ``%``
  still converts as a fraction (``amount_fraction``: 1 % = 10 000 µmol/mol).
- ``°C`` and ``°F`` are offset units: converted as quantities, never multiplied.
- ``rpm`` is 2π rad/min to pint, so ``Hz`` would convert to it silently wrong; lux
  is cd·sr/m², a luminance unit times radian²; Bq is count/s. The radian and count
  exponents of a unit must therefore match the measurand's base unit.
- Gray and sievert have the same dimension but measure different things; a dose
  rate is asked in sievert, an air kerma in gray.
- ``µ`` (micro sign) and ``μ`` (Greek mu), ``Ω`` and the ohm sign, ``℃``, ``r/min``
  and ``%RH`` are normalised before parsing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any

from flask_babel import lazy_gettext as _l

from labshare.errors import ValidationFailed

if TYPE_CHECKING:
    from labshare.models import Instrument


@dataclass(frozen=True)
class Measurand:
    name: str
    base_unit: str
    #: For quantities that are not pint units: the only units accepted, as written.
    identity_units: tuple[str, ...] = ()
    #: Unit families that must (or must not) appear in the unit's name.
    requires_name: str | None = None
    forbids_names: tuple[str, ...] = ()


MEASURANDS: dict[str, Measurand] = {
    m.name: m
    for m in (
        # geometric
        Measurand("length", "m"),
        Measurand("roughness", "m"),
        Measurand("roundness", "m"),
        Measurand("angle", "radian"),
        # thermal
        Measurand("temperature", "K"),
        Measurand("relative_humidity", "%", identity_units=("%", "%RH")),
        # mechanical
        Measurand("pressure", "Pa"),
        Measurand("force", "N"),
        Measurand("torque", "N*m", forbids_names=("joule",)),
        Measurand("mass", "kg"),
        Measurand("flow_rate", "m**3/s"),
        Measurand("rotational_speed", "rpm"),
        Measurand("acceleration", "m/s**2"),
        # electromagnetic
        Measurand("voltage", "V"),
        Measurand("current", "A"),
        Measurand("resistance", "ohm"),
        Measurand("capacitance", "F"),
        Measurand("inductance", "H"),
        # radio and time-frequency
        Measurand("frequency", "Hz"),
        Measurand("power", "W"),
        Measurand("time_interval", "s"),
        # ionizing radiation
        Measurand("dose_rate", "Sv/s", requires_name="sievert"),
        Measurand("air_kerma", "Gy", requires_name="gray"),
        Measurand("activity", "Bq"),
        Measurand("activity_concentration", "Bq/m**3"),
        # chemical
        Measurand("amount_fraction", "mol/mol"),
        Measurand("wavelength", "m"),
        Measurand("ph", "pH", identity_units=("pH",)),
        Measurand("conductivity", "S/m"),
        Measurand("mass_concentration", "kg/m**3"),
        Measurand("mass_fraction", "%", identity_units=("%",)),
        # acoustic
        Measurand("sound_pressure_level", "dB", identity_units=("dB",)),
        # optical
        Measurand("illuminance", "lx"),
        Measurand("luminance", "cd/m**2"),
    )
}

#: Spellings pint does not know, or reads as something else, mapped to what it reads.
_ALIASES = {
    "℃": "degC",
    "°C": "degC",
    "ºC": "degC",
    "℉": "degF",
    "°F": "degF",
    "ºF": "degF",
    "r/min": "rpm",
    "r/s": "rps",
    "rad/s": "radian/second",
}
_CHAR_MAP = str.maketrans(
    {
        "μ": "µ",  # Greek mu -> micro sign
        "Ω": "Ω",  # ohm sign -> Greek capital omega
        "·": "*",
        "⋅": "*",
        "×": "*",
        "²": "**2",
        "³": "**3",
        "⁻": "-",
        "¹": "1",
    }
)
_IDENTITY_SPELLINGS = {
    "%": "%",
    "%rh": "%RH",
    "ph": "pH",
    "db": "dB",
}
_MARKERS = ("radian", "count")


@cache
def unit_registry() -> Any:
    """The one pint registry (building one takes a while, so it is built once)."""
    import pint

    ureg: Any = pint.UnitRegistry(autoconvert_offset_to_baseunit=True)
    ureg.define("ppb = 1e-9")
    ureg.define("ppt = 1e-12")
    return ureg


def measurand_names() -> list[str]:
    return sorted(MEASURANDS)


def get_measurand(name: str) -> Measurand:
    """The measurand called ``name``; ValidationFailed(field="measurand") if unknown."""
    spec = MEASURANDS.get(name.strip().lower())
    if spec is None:
        raise ValidationFailed(
            _l("Unknown measurand %(name)s.", name=name),
            field="measurand",
            details={"allowed": measurand_names()},
        )
    return spec


def _normalise(unit: str) -> str:
    text = unit.strip()
    if text in _ALIASES:
        return _ALIASES[text]
    text = text.translate(_CHAR_MAP)
    return _ALIASES.get(text, text)


def _markers(quantity: Any) -> tuple[float, ...]:
    units = quantity.to_root_units().units._units  # pint has no public accessor
    return tuple(float(units.get(name, 0)) for name in _MARKERS)


def _unit_names(quantity: Any) -> str:
    return " ".join(str(name) for name in quantity.units._units)


def _bad_unit(unit: str, measurand: Measurand) -> ValidationFailed:
    return ValidationFailed(
        _l(
            "The unit %(unit)s cannot express %(measurand)s (use e.g. %(base)s).",
            unit=unit,
            measurand=measurand.name,
            base=measurand.identity_units[0] if measurand.identity_units else measurand.base_unit,
        ),
        field="unit",
    )


def to_base(value: float, unit: str, measurand: str) -> float:
    """``value`` in ``unit`` expressed in ``measurand``'s base unit.

    Raises ValidationFailed(field="measurand") for an unknown measurand and
    ValidationFailed(field="unit") for a unit that is unknown or does not fit it.
    """
    spec = get_measurand(measurand)
    if not math.isfinite(value):
        raise ValidationFailed(_l("The value must be a finite number."), field="value")
    written = unit.strip()
    if not written:
        raise ValidationFailed(_l("A unit is required."), field="unit")
    identity = _IDENTITY_SPELLINGS.get(written.lower())
    if spec.identity_units:
        if identity is not None and identity in spec.identity_units:
            return float(value)
        raise _bad_unit(unit, spec)
    if identity is not None and identity != "%":
        # pint reads pH as picohenry and dB as a logarithmic ratio: never this measurand.
        raise _bad_unit(unit, spec)

    import pint

    ureg = unit_registry()
    try:
        quantity = ureg.Quantity(value, _normalise(written))
        base = ureg.Quantity(1, spec.base_unit)
    except Exception as exc:  # pint's parser raises many kinds
        raise ValidationFailed(_l("Unknown unit %(unit)s.", unit=unit), field="unit") from exc
    if quantity.dimensionality != base.dimensionality or _markers(quantity) != _markers(base):
        raise _bad_unit(unit, spec)
    names = _unit_names(quantity)
    if spec.requires_name and spec.requires_name not in names:
        raise _bad_unit(unit, spec)
    if any(forbidden in names for forbidden in spec.forbids_names):
        raise _bad_unit(unit, spec)
    try:
        converted = quantity.to(spec.base_unit)
    except pint.errors.PintError as exc:  # e.g. a logarithmic unit
        raise _bad_unit(unit, spec) from exc
    return float(converted.magnitude)


def check_unit(unit: str, measurand: str) -> None:
    """Raise ValidationFailed unless ``unit`` can express ``measurand``."""
    to_base(1.0, unit, measurand)


def refresh_base_range(instrument: Instrument) -> None:
    """Recompute ``range_min_base``/``range_max_base`` from the written range.

    Call it whenever an instrument's measurand, unit or range is written (seed,
    import, management forms). Raises ValidationFailed naming ``unit`` or
    ``measurand`` when the capability cannot be normalised.
    """
    low = to_base(float(instrument.range_min), instrument.unit, instrument.measurand)
    high = to_base(float(instrument.range_max), instrument.unit, instrument.measurand)
    instrument.range_min_base, instrument.range_max_base = min(low, high), max(low, high)


def search_bounds(value: float, unit: str, measurand: str) -> tuple[float, float]:
    """The interval an instrument's base range must reach, in base units.

    A relative tolerance of 1e-9 absorbs the floating-point noise of converting
    the same quantity along two paths (``0.1 MPa`` and ``100 kPa``).
    """
    return _bounds(float(value), unit, measurand)


@lru_cache(maxsize=4096)
def _bounds(value: float, unit: str, measurand: str) -> tuple[float, float]:
    # A pure function of its arguments, and pint's parse and conversion cost about
    # 0.3 ms a call, paid up to three times by one search (validation, SQL, the
    # capability index). A refusal (ValidationFailed) is raised, never kept.
    base = to_base(value, unit, measurand)
    tolerance = abs(base) * 1e-9 + 1e-300
    return base - tolerance, base + tolerance
