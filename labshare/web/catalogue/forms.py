"""The catalogue's filter form (GET, no CSRF: it changes nothing)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length, Optional

from labshare.labels import MEASURAND_LABELS, choices
from labshare.models import Field, ResourceKind

#: The units offered for each measurand of catalogue.capability (any unit pint
#: understands is accepted by the service; these are the ones people write).
UNITS: dict[str, tuple[str, ...]] = {
    "length": ("mm", "µm", "nm", "m"),
    "roughness": ("µm", "nm"),
    "roundness": ("µm", "nm"),
    "angle": ("degree", "arcminute", "arcsecond", "rad"),
    "temperature": ("°C", "K", "°F"),
    "relative_humidity": ("%RH",),
    "pressure": ("Pa", "kPa", "MPa", "bar", "mbar"),
    "force": ("N", "kN", "MN"),
    "torque": ("N·m", "kN·m"),
    "mass": ("mg", "g", "kg", "t"),
    "flow_rate": ("L/min", "L/h", "m³/h"),
    "rotational_speed": ("r/min",),
    "acceleration": ("m/s²",),
    "voltage": ("µV", "mV", "V", "kV"),
    "current": ("µA", "mA", "A"),
    "resistance": ("mΩ", "Ω", "kΩ", "MΩ"),
    "capacitance": ("pF", "nF", "µF"),
    "inductance": ("µH", "mH", "H"),
    "frequency": ("Hz", "kHz", "MHz", "GHz"),
    "power": ("µW", "mW", "W", "kW"),
    "time_interval": ("ns", "µs", "ms", "s"),
    "dose_rate": ("µSv/h", "mSv/h"),
    "air_kerma": ("mGy", "Gy"),
    "activity": ("Bq", "kBq", "MBq"),
    "activity_concentration": ("Bq/m³",),
    "amount_fraction": ("µmol/mol", "mmol/mol", "%"),
    "wavelength": ("nm", "µm"),
    "ph": ("pH",),
    "conductivity": ("µS/cm", "mS/cm", "S/m"),
    "mass_concentration": ("mg/L", "g/L", "mg/m³"),
    "mass_fraction": ("%",),
    "sound_pressure_level": ("dB",),
    "illuminance": ("lx",),
    "luminance": ("cd/m²",),
}

_UNIT_LABELS = {"degree": "°", "arcminute": "′", "arcsecond": "″"}


def measurand_choices() -> list[SelectChoice]:
    return [SelectChoice("", _l("Any measurand"))] + [
        SelectChoice(name, MEASURAND_LABELS[name]) for name in UNITS
    ]


def unit_choices() -> list[SelectChoice]:
    """Units grouped by measurand (an <optgroup> each), so the list works without
    JavaScript; a unit that does not fit the measurand is refused by the search."""
    out = [SelectChoice("", _l("Unit"))]
    for name, units in UNITS.items():
        out += [
            SelectChoice(u, _UNIT_LABELS.get(u, u), optgroup=str(MEASURAND_LABELS[name]))
            for u in units
        ]
    return out


class CatalogueFilterForm(FlaskForm):
    class Meta:
        csrf = False

    q = StringField(_l("Search"), validators=[Optional(), Length(max=100)])
    field = SelectField(
        _l("Measurement field"),
        choices=[SelectChoice("", _l("All fields")), *choices(Field)],
        validate_choice=False,
    )
    kind = SelectField(
        _l("Type"),
        choices=[SelectChoice("", _l("Labs and instruments")), *choices(ResourceKind)],
        validate_choice=False,
    )
    measurand = SelectField(_l("Measure"), validate_choice=False)
    value = StringField(_l("Value"), validators=[Optional(), Length(max=30)])
    unit = SelectField(_l("Unit"), validate_choice=False)
    province = SelectField(_l("Province"), choices=[], validate_choice=False)
    institute = SelectField(_l("Institute"), choices=[], validate_choice=False)
