"""The catalogue's filter form (GET, no CSRF: it changes nothing)."""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any

from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from markupsafe import Markup, escape
from wtforms import SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length, Optional
from wtforms.widgets import Select, html_params

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


#: Selects rendered with nothing selected, by what their HTML depends on (the
#: field, its attributes, the locale, its ``choices_version``); emptied when full.
_SELECTS: dict[tuple[Any, ...], str] = {}
_SELECTS_LOCK = threading.Lock()
SELECTS_SIZE = 256
#: The ``choices_version`` of a select whose choices never change (but by locale).
FIXED = ("fixed",)


class OptionCache(Select):
    """WTForms' select, rendered once per process and locale for each version of
    its choices, and each plain ``<option>`` rendered once: the catalogue's selects
    hold some 470 options (every institute, province, measurand and unit), and
    building them again (each label translated, each option's attributes) was most
    of the catalogue page's CPU. The same HTML as WTForms': the selected options
    (those whose value is the field's data) are marked in the kept HTML.

    A field takes part when it has a ``choices_version`` (what its choices depend on
    besides the locale: a constant for fixed lists, the catalogue's version for the
    institutes); its ``choices_source``, when given, builds the choices, called
    only when the select is rendered anew. ``choices_version`` must change with
    every change of the choices."""

    def __call__(self, field: Any, **kwargs: Any) -> Markup:
        token = getattr(field, "choices_version", None)
        data = field.data
        key: tuple[Any, ...] | None = None
        html = None
        if token is not None and field.coerce is str and (data is None or isinstance(data, str)):
            flags = tuple(
                (k, getattr(field.flags, k)) for k in dir(field.flags) if k in self.validation_attrs
            )
            try:
                key = (
                    self.multiple,
                    field.name,
                    field.id,
                    str(get_locale()),
                    token,
                    flags,
                    tuple(sorted(kwargs.items())),
                )
                html = _SELECTS.get(key)
            except TypeError:  # an attribute that cannot be a key: rendered each time
                key = None
        if html is None:
            source = getattr(field, "choices_source", None)
            if source is not None:
                field.choices = source()
            if key is None or any(getattr(c, "render_kw", None) for c in field.choices or ()):
                # an option with attributes of its own is not marked as the kept
                # HTML's plain ones are: rendered each time
                return super().__call__(field, **kwargs)
            field.data = None
            try:
                html = str(super().__call__(field, **kwargs))
            finally:
                field.data = data
            with _SELECTS_LOCK:
                if len(_SELECTS) >= SELECTS_SIZE:
                    _SELECTS.clear()
                _SELECTS[key] = html
        if data is not None:
            plain = f"<option {html_params(value=data)}>"
            html = html.replace(plain, f"<option {html_params(selected=True, value=data)}>")
        return Markup(html)  # noqa: S704 - WTForms' own HTML, kept

    @classmethod
    def render_option(cls, choice: SelectChoice, **kwargs: Any) -> Markup:
        if kwargs or choice.render_kw or not isinstance(choice.value, str):
            return super().render_option(choice, **kwargs)
        label = escape(choice.label or choice.value)  # a lazy label: this locale's
        return _option(choice.value, str(label), bool(choice.selected))


@lru_cache(maxsize=8192)
def _option(value: str, label: str, selected: bool) -> Markup:
    """``Select.render_option`` of a plain choice whose label is escaped already."""
    options: dict[str, Any] = {"value": value}
    if selected:
        options["selected"] = True
    # As WTForms builds it: html_params escapes the value, the caller escaped the label.
    return Markup(f"<option {html_params(**options)}>{label}</option>")  # noqa: S704


class CatalogueFilterForm(FlaskForm):
    class Meta:
        csrf = False

    q = StringField(_l("Search"), validators=[Optional(), Length(max=100)])
    field = SelectField(
        _l("Measurement field"),
        choices=[SelectChoice("", _l("All fields")), *choices(Field)],
        validate_choice=False,
        widget=OptionCache(),
    )
    kind = SelectField(
        _l("Type"),
        choices=[SelectChoice("", _l("Labs and instruments")), *choices(ResourceKind)],
        validate_choice=False,
        widget=OptionCache(),
    )
    measurand = SelectField(_l("Measure"), validate_choice=False, widget=OptionCache())
    value = StringField(_l("Value"), validators=[Optional(), Length(max=30)])
    unit = SelectField(_l("Unit"), validate_choice=False, widget=OptionCache())
    province = SelectField(_l("Province"), choices=[], validate_choice=False, widget=OptionCache())
    institute = SelectField(
        _l("Institute"), choices=[], validate_choice=False, widget=OptionCache()
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # fixed lists: their HTML depends on the locale alone (OptionCache)
        for field in (self.field, self.kind, self.measurand, self.unit):
            field.choices_version = FIXED
        self.measurand.choices_source = measurand_choices
        self.unit.choices_source = unit_choices
