"""Bulk import of an institute's instrument list from XLSX or CSV.

Two steps, the same for the web page and ``flask import-instruments``:
``read_table`` turns the file into rows of text keyed by column, ``check_rows``
validates every row with the same checks as the management forms and reports
each bad field by row number (as a spreadsheet shows it: the header is row 1)
and column. ``import_instruments`` writes the rows only when none is bad, in the
caller's transaction: all or nothing.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile
from dataclasses import dataclass, field
from typing import Any

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from labshare.catalogue import catalogue_admin
from labshare.catalogue.catalogue_admin import InstrumentData
from labshare.errors import ValidationFailed
from labshare.extensions import db
from labshare.models import Institute, Instrument, Lab, User

MAX_BYTES = 1024 * 1024
MAX_ROWS = 2000
EXTENSIONS = ("csv", "xlsx")

#: Columns of the file, in the order of the template. ``lab`` names one of the
#: institute's labs (its name, English name or id).
COLUMNS = (
    "lab",
    "name",
    "name_en",
    "field",
    "model",
    "manufacturer",
    "serial_number",
    "asset_number",
    "measurand",
    "unit",
    "range_min",
    "range_max",
    "accuracy",
    "calibration_valid_until",
    "certificate_number",
    "fee_per_hour",
    "fee_waiver_percent",
    "requires_qualification",
    "status",
    "description",
)
REQUIRED = ("lab", "name", "field", "measurand", "unit", "range_min", "range_max")

#: Chinese headers as institutes write them.
HEADER_ALIASES = {
    "实验室": "lab",
    "名称": "name",
    "仪器名称": "name",
    "英文名称": "name_en",
    "领域": "field",
    "测量领域": "field",
    "型号": "model",
    "制造商": "manufacturer",
    "生产厂家": "manufacturer",
    "出厂编号": "serial_number",
    "序列号": "serial_number",
    "资产编号": "asset_number",
    "被测量": "measurand",
    "单位": "unit",
    "量程下限": "range_min",
    "量程上限": "range_max",
    "准确度": "accuracy",
    "不确定度": "accuracy",
    "校准有效期": "calibration_valid_until",
    "证书编号": "certificate_number",
    "每小时收费": "fee_per_hour",
    "减免比例": "fee_waiver_percent",
    "需要培训": "requires_qualification",
    "状态": "status",
    "说明": "description",
}

_TRUE = {"1", "true", "yes", "y", "是", "需要"}
_FALSE = {"", "0", "false", "no", "n", "否", "不需要"}


@dataclass(frozen=True)
class RowError:
    row: int
    column: str
    message: str


@dataclass
class Row:
    number: int
    cells: dict[str, str]


@dataclass
class ImportReport:
    rows: list[Row] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    #: (row number, lab, data) of each valid row
    valid: list[tuple[int, Lab, InstrumentData]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and bool(self.valid)


class ImportRefused(ValidationFailed):
    """The file as a whole cannot be read (type, size, header)."""


# -- reading ------------------------------------------------------------------------------


def extension_of(filename: str) -> str:
    ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if ext not in EXTENSIONS:
        raise ImportRefused(_l("Upload an .xlsx or .csv file."), field="file")
    return ext


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time(0) else value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip()


def _read_csv(content: bytes) -> list[list[str]]:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = content.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:  # pragma: no cover - gb18030 decodes any byte string
        raise ImportRefused(_l("The CSV file must be UTF-8 encoded."), field="file")
    try:
        return [[c.strip() for c in row] for row in csv.reader(io.StringIO(text))]
    except csv.Error as exc:
        raise ImportRefused(_l("The CSV file cannot be read."), field="file") from exc


def _read_xlsx(content: bytes) -> list[list[str]]:
    import openpyxl

    if not zipfile.is_zipfile(io.BytesIO(content)):
        raise ImportRefused(_l("The file is not an .xlsx workbook."), field="file")
    try:
        workbook = openpyxl.load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a damaged file
        raise ImportRefused(_l("The file is not an .xlsx workbook."), field="file") from exc
    try:
        sheet = workbook.worksheets[0]
        rows: list[list[str]] = []
        for values in sheet.iter_rows(values_only=True):
            rows.append([_cell_text(v) for v in values])
            if len(rows) > MAX_ROWS + 1:
                break
        return rows
    finally:
        workbook.close()


def _header(cells: list[str]) -> list[str]:
    names: list[str] = []
    for cell in cells:
        text = cell.strip().lower().replace(" ", "_")
        names.append(HEADER_ALIASES.get(cell.strip(), text))
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        raise ImportRefused(
            _l("The first row must name the columns; missing: %(cols)s.", cols=", ".join(missing)),
            field="file",
        )
    return names


def read_table(filename: str, content: bytes) -> list[Row]:
    """The data rows of the file, numbered as a spreadsheet numbers them."""
    ext = extension_of(filename)
    if not content:
        raise ImportRefused(_l("The file is empty."), field="file")
    if len(content) > MAX_BYTES:
        raise ImportRefused(
            _l("The file may be at most %(n)d KB.", n=MAX_BYTES // 1024), field="file"
        )
    table = _read_csv(content) if ext == "csv" else _read_xlsx(content)
    while table and not any(table[0]):
        table.pop(0)
    if not table:
        raise ImportRefused(_l("The file is empty."), field="file")
    names = _header(table[0])
    rows: list[Row] = []
    for index, cells in enumerate(table[1:], start=2):
        if not any(cells):
            continue
        row = {
            name: (cells[i] if i < len(cells) else "")
            for i, name in enumerate(names)
            if name in COLUMNS
        }
        rows.append(Row(index, row))
    if not rows:
        raise ImportRefused(_l("The file has no instrument rows."), field="file")
    if len(rows) > MAX_ROWS:
        raise ImportRefused(_l("At most %(n)d instruments per file.", n=MAX_ROWS), field="file")
    return rows


# -- checking -----------------------------------------------------------------------------


def _labs_of(institute: Institute) -> dict[str, Lab]:
    labs: dict[str, Lab] = {}
    for lab in db.session.scalars(select(Lab).where(Lab.institute_id == institute.id)):
        labs.setdefault(str(lab.id), lab)
        labs.setdefault(lab.name.strip(), lab)
        if lab.name_en:
            labs.setdefault(lab.name_en.strip().lower(), lab)
    return labs


def _find_lab(labs: dict[str, Lab], text: str) -> Lab | None:
    key = text.strip()
    return labs.get(key) or labs.get(key.lower())


def _bool(text: str) -> bool | None:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    return None


def check_rows(institute: Institute, rows: list[Row]) -> ImportReport:
    """Validate every row; nothing is written."""
    report = ImportReport(rows=rows)
    labs = _labs_of(institute)
    known_serials = {
        s
        for s in db.session.scalars(
            select(Instrument.serial_number).where(
                Instrument.institute_id == institute.id, Instrument.serial_number.is_not(None)
            )
        )
        if s
    }
    seen_serials: dict[str, int] = {}
    for row in rows:
        cells = row.cells
        row_errors: list[RowError] = []
        lab = _find_lab(labs, cells.get("lab", ""))
        if lab is None:
            row_errors.append(
                RowError(
                    row.number,
                    "lab",
                    str(_l("No lab of this institute is called %(name)s.", name=cells.get("lab"))),
                )
            )
        qualification = _bool(cells.get("requires_qualification", ""))
        if qualification is None:
            row_errors.append(
                RowError(row.number, "requires_qualification", str(_l("Answer yes or no.")))
            )
        data = InstrumentData(
            name=cells.get("name", ""),
            name_en=cells.get("name_en"),
            description=cells.get("description"),
            field=cells.get("field", ""),
            status=cells.get("status") or "available",
            fee_per_hour=cells.get("fee_per_hour"),
            fee_waiver_percent=cells.get("fee_waiver_percent"),
            requires_qualification=bool(qualification),
            model=cells.get("model"),
            manufacturer=cells.get("manufacturer"),
            serial_number=cells.get("serial_number"),
            asset_number=cells.get("asset_number"),
            measurand=cells.get("measurand", ""),
            unit=cells.get("unit", ""),
            range_min=cells.get("range_min"),
            range_max=cells.get("range_max"),
            accuracy=cells.get("accuracy"),
            calibration_valid_until=cells.get("calibration_valid_until"),
            certificate_number=cells.get("certificate_number"),
        )
        _values, errors = catalogue_admin.instrument_errors(data)
        row_errors += [RowError(row.number, col, msg) for col, msg in errors.items()]
        serial = (cells.get("serial_number") or "").strip()
        if serial and "serial_number" not in errors:
            if serial in known_serials:
                row_errors.append(
                    RowError(
                        row.number,
                        "serial_number",
                        str(_l("An instrument with this serial number is already registered.")),
                    )
                )
            elif serial in seen_serials:
                row_errors.append(
                    RowError(
                        row.number,
                        "serial_number",
                        str(
                            _l(
                                "The same serial number is in row %(row)d.",
                                row=seen_serials[serial],
                            )
                        ),
                    )
                )
            seen_serials.setdefault(serial, row.number)
        if row_errors:
            report.errors += row_errors
        elif lab is not None:
            report.valid.append((row.number, lab, data))
    return report


# -- writing ------------------------------------------------------------------------------


def import_instruments(
    actor: User | None, institute: Institute, report: ImportReport
) -> list[Instrument]:
    """Create every instrument of a clean report; refuse the whole file otherwise.
    The caller commits (or rolls back, for a dry run)."""
    if report.errors or not report.valid:
        first = report.errors[0] if report.errors else None
        raise ValidationFailed(
            _l("Nothing was imported: the file has errors."),
            field="file",
            details={"row": first.row, "column": first.column} if first else None,
        )
    created: list[Instrument] = []
    for _number, lab, data in report.valid:
        if lab.institute_id != institute.id:
            raise ValidationFailed(_l("Choose one of the institute's labs."), field="lab")
        created.append(catalogue_admin.create_instrument(actor, lab, data))
    return created
