"""The XLSX writer of the monthly usage export (Summary, Institutes, Instruments, Orders,
Bookings).

The workbook is written by hand: a zip of a few fixed XML parts and one worksheet
part per sheet, each streamed row by row into the zip entry (inline strings, no
shared-string table, a fixed styles part with the few number formats used). The
Bookings sheet of a million rows costs one pass over the cursor and a string join per
row, instead of a cell object per value."""

from __future__ import annotations

import datetime as dt
import queue
import re
import threading
import zipfile
from collections.abc import Callable
from decimal import Decimal
from typing import IO, Any

from flask_babel import gettext as _

from labshare.campaign.export_rows import (
    HOURS,
    INTEGER,
    MONEY,
    PERCENT,
    PROGRESS_EVERY,
    STAMP,
    Column,
    booking_columns,
    booking_rows,
    build_report,
    institute_columns,
    institute_rows,
    instrument_columns,
    instrument_rows,
    order_sheet_columns,
    summary_rows,
)
from labshare.campaign.periods import Period, Scope
from labshare.sheets import Progress

_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG = "http://schemas.openxmlformats.org/package/2006/relationships"
_CT = "application/vnd.openxmlformats-officedocument.spreadsheetml"
_HEAD = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'

# Cell styles (cellXfs indices): 0 plain, 1 bold header, then one per number format.
# "0", "0.00" and "#,##0.00" are built-in formats 1, 2 and 4; the others are custom.
_NUMFMT_IDS = {INTEGER: 1, HOURS: 2, MONEY: 4, PERCENT: 164, STAMP: 165}
_STYLE_OF = {fmt: 2 + n for n, fmt in enumerate(_NUMFMT_IDS)}
_BOLD = 1

_STYLES = (
    _HEAD + f'<styleSheet xmlns="{_MAIN}">'
    f'<numFmts count="2"><numFmt numFmtId="164" formatCode="{PERCENT}"/>'
    f'<numFmt numFmtId="165" formatCode="{STAMP}"/></numFmts>'
    '<fonts count="2"><font><sz val="11"/><name val="Calibri"/><family val="2"/></font>'
    '<font><b/><sz val="11"/><name val="Calibri"/><family val="2"/></font></fonts>'
    '<fills count="2"><fill><patternFill patternType="none"/></fill>'
    '<fill><patternFill patternType="gray125"/></fill></fills>'
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    f'<cellXfs count="{2 + len(_NUMFMT_IDS)}">'
    '<xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/>'
    + "".join(
        f'<xf numFmtId="{i}" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
        for i in _NUMFMT_IDS.values()
    )
    + '</cellXfs><cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/>'
    "</cellStyles></styleSheet>"
)

# Characters XML 1.0 does not allow at all (C0 controls but tab, LF, CR; U+FFFE/FFFF;
# lone surrogates): stripped. Then the three that need escaping in text.
_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"})
_EPOCH = dt.datetime(1899, 12, 30)
_DAY = 86400.0


def xml_text(text: str) -> str:
    """``text`` made safe for XML character data or an attribute value."""
    return _ILLEGAL.sub("", text).translate(_ESCAPES)


def _string_cell(text: str, style: int = 0) -> str:
    text = xml_text(text)
    s = f' s="{style}"' if style else ""
    if text != text.strip():
        return f'<c t="inlineStr"{s}><is><t xml:space="preserve">{text}</t></is></c>'
    return f'<c t="inlineStr"{s}><is><t>{text}</t></is></c>'


def _cell(value: Any, style: int = 0) -> str:
    """One cell of any value the export produces. Cells carry no reference (``r``):
    a reader places each after the previous one, so an empty value is an empty cell
    (keeping the column's number format)."""
    s = f' s="{style}"' if style else ""
    if value is None:
        return f"<c{s}/>"
    if isinstance(value, bool):
        return f'<c t="b"{s}><v>{int(value)}</v></c>'
    if isinstance(value, int | Decimal):
        return f"<c{s}><v>{value}</v></c>"
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return f"<c{s}/>"
        return f"<c{s}><v>{value!r}</v></c>"
    if isinstance(value, dt.datetime):
        serial = (value.replace(tzinfo=None) - _EPOCH).total_seconds() / _DAY
        return f"<c{s}><v>{serial!r}</v></c>"
    if isinstance(value, dt.date):
        return f"<c{s}><v>{(value - _EPOCH.date()).days}</v></c>"
    return _string_cell(str(value), style)


def _column_serialiser(column: Column) -> Callable[[Any], str]:
    """A fast serialiser for one column of a sheet: strings through a
    bounded cache of their XML, numbers and stamps formatted directly."""
    style = _STYLE_OF[column.number_format] if column.number_format else 0
    if column.number_format == STAMP:
        head = f'<c s="{style}"><v>'

        def stamp(value: Any) -> str:
            if value is None:
                return f'<c s="{style}"/>'
            serial = (value - _EPOCH).total_seconds() / _DAY
            return f"{head}{serial!r}</v></c>"

        return stamp
    if column.number_format is not None:
        head = f'<c s="{style}"><v>'

        def number(value: Any) -> str:
            if value is None:
                return f'<c s="{style}"/>'
            if isinstance(value, float | int | Decimal) and not isinstance(value, bool):
                return f"{head}{value}</v></c>"
            return _cell(value, style)

        return number
    cache: dict[Any, str] = {}

    def text(value: Any) -> str:
        hit = cache.get(value)
        if hit is None:
            if len(cache) > 50_000:
                cache.clear()
            hit = cache[value] = _cell(value)
        return hit

    return text


def _booking_renderer() -> Callable[[list[Any]], str]:
    """The cells of one booking detail row (the layout of ``booking_columns``), with
    every repeated value (names, labels, stamps on the half-hour grid, fees) rendered
    once and then looked up: a million rows repeat a few thousand distinct values."""
    i, h, m, t = (f'<c s="{_STYLE_OF[f]}"><v>' for f in (INTEGER, HOURS, MONEY, STAMP))
    empty_h, empty_i = (f'<c s="{_STYLE_OF[f]}"/>' for f in (HOURS, INTEGER))
    texts: dict[Any, str] = {}
    numbers: dict[Any, str] = {}

    def text(value: Any) -> str:
        if len(texts) > 200_000:
            texts.clear()
        hit = texts[value] = _cell(value)
        return hit

    def money(value: Any) -> str:
        if len(numbers) > 200_000:
            numbers.clear()
        hit = numbers[value] = (
            _cell(value, _STYLE_OF[MONEY]) if value is None else f"{m}{value}</v></c>"
        )
        return hit

    def stamp(value: dt.datetime) -> str:
        if len(numbers) > 200_000:
            numbers.clear()
        serial = (value - _EPOCH).total_seconds() / _DAY
        hit = numbers[value] = f"{t}{serial!r}</v></c>"
        return hit

    tg = texts.get
    ng = numbers.get

    def render(v: list[Any]) -> str:
        hours, samples = v[13], v[14]
        return "".join(
            (
                f"{i}{v[0]}</v></c>",
                tg(v[1]) or text(v[1]),
                tg(v[2]) or text(v[2]),
                tg(v[3]) or text(v[3]),
                tg(v[4]) or text(v[4]),
                tg(v[5]) or text(v[5]),
                tg(v[6]) or text(v[6]),
                tg(v[7]) or text(v[7]),
                tg(v[8]) or text(v[8]),
                ng(v[9]) or stamp(v[9]),
                ng(v[10]) or stamp(v[10]),
                tg(v[11]) or text(v[11]),
                tg(v[12]) or text(v[12]),
                empty_h if hours is None else f"{h}{hours!r}</v></c>",
                empty_i if samples is None else f"{i}{samples}</v></c>",
                tg(v[15]) or text(v[15]),
                ng(v[16]) or money(v[16]),
                ng(v[17]) or money(v[17]),
                ng(v[18]) or money(v[18]),
            )
        )

    return render


class _Background:
    """A write-only stream whose blocks a worker thread writes to ``out``; ``stop``
    waits for it and re-raises what it raised."""

    def __init__(self, out: IO[bytes] | _Background) -> None:
        self.target = out
        self.blocks: queue.Queue[bytes | None] = queue.Queue(maxsize=4)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._drain, name="xlsx-deflate", daemon=True)
        self.thread.start()

    def _drain(self) -> None:
        while (block := self.blocks.get()) is not None:
            if self.error is None:
                try:
                    self.target.write(block)
                except BaseException as exc:  # noqa: BLE001 - re-raised by stop()
                    self.error = exc

    def write(self, block: bytes) -> int:
        if self.error is not None:
            raise self.error
        self.blocks.put(block)
        return len(block)

    def stop(self) -> None:
        self.blocks.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error


class _SheetWriter:
    """One worksheet part, written into the open zip entry in blocks."""

    BLOCK = 1 << 20

    def __init__(self, out: IO[bytes], columns: list[Column], selected: bool) -> None:
        self.out: IO[bytes] | _Background = out
        self.parts: list[str] = []
        self.size = 0
        self.row = 1
        cols = "".join(
            f'<col min="{n}" max="{n}" width="{c.width}" customWidth="1"/>'
            for n, c in enumerate(columns, start=1)
        )
        tab = ' tabSelected="1"' if selected else ""
        header = "".join(_string_cell(c.title, _BOLD) for c in columns)
        self.write(
            _HEAD + f'<worksheet xmlns="{_MAIN}" xmlns:r="{_REL}">'
            f'<sheetViews><sheetView{tab} workbookViewId="0">'
            '<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>'
            '<selection pane="bottomLeft" activeCell="A2" sqref="A2"/>'
            '</sheetView></sheetViews><sheetFormatPr defaultRowHeight="15"/>'
            f'<cols>{cols}</cols><sheetData><row r="1">{header}</row>'
        )

    def write(self, text: str) -> None:
        self.parts.append(text)
        self.size += len(text)
        if self.size >= self.BLOCK:
            self.flush()

    def flush(self) -> None:
        self.out.write("".join(self.parts).encode("utf-8"))
        self.parts.clear()
        self.size = 0

    def background(self) -> _Background:
        """Hand the blocks to a thread that deflates them into the zip (zlib lets go
        of the GIL), so that compressing overlaps fetching and rendering rows."""
        background = _Background(self.out)
        self.out = background
        return background

    def add_row(self, cells: str) -> None:
        self.row += 1
        self.write(f'<row r="{self.row}">{cells}</row>')

    def close(self) -> None:
        self.write("</sheetData></worksheet>")
        self.flush()


def _package_parts(titles: list[str]) -> dict[str, str]:
    sheets = "".join(
        f'<sheet name="{xml_text(t)}" sheetId="{n}" r:id="rId{n}"/>'
        for n, t in enumerate(titles, start=1)
    )
    rels = "".join(
        f'<Relationship Id="rId{n}" Type="{_REL}/worksheet" Target="worksheets/sheet{n}.xml"/>'
        for n in range(1, len(titles) + 1)
    )
    overrides = "".join(
        f'<Override PartName="/xl/worksheets/sheet{n}.xml" ContentType="{_CT}.worksheet+xml"/>'
        for n in range(1, len(titles) + 1)
    )
    styles_id = len(titles) + 1
    return {
        "[Content_Types].xml": _HEAD
        + '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
        'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
        f'<Override PartName="/xl/workbook.xml" ContentType="{_CT}.sheet.main+xml"/>'
        f'<Override PartName="/xl/styles.xml" ContentType="{_CT}.styles+xml"/>'
        f"{overrides}</Types>",
        "_rels/.rels": _HEAD + f'<Relationships xmlns="{_PKG}">'
        f'<Relationship Id="rId1" Type="{_REL}/officeDocument" Target="xl/workbook.xml"/>'
        "</Relationships>",
        "xl/workbook.xml": _HEAD + f'<workbook xmlns="{_MAIN}" xmlns:r="{_REL}">'
        '<bookViews><workbookView activeTab="0"/></bookViews>'
        f"<sheets>{sheets}</sheets></workbook>",
        "xl/_rels/workbook.xml.rels": _HEAD + f'<Relationships xmlns="{_PKG}">{rels}'
        f'<Relationship Id="rId{styles_id}" Type="{_REL}/styles" Target="styles.xml"/>'
        "</Relationships>",
        "xl/styles.xml": _STYLES,
    }


def write_xlsx(
    target: IO[bytes] | str, period: Period, scope: Scope, progress: Progress | None = None
) -> int:
    """Write the workbook; returns the number of booking rows."""
    report = build_report(period, scope)
    # The booking detail stays last (DESIGN.md); the orders' items come before it.
    titles = [_("Summary"), _("Institutes"), _("Instruments"), _("Orders"), _("Bookings")]
    count = 0
    # Level 1: the detail sheet is hundreds of MB of very repetitive XML; the fastest
    # deflate level costs a fraction of the time for a slightly bigger file.
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name, text in _package_parts(titles).items():
            zf.writestr(name, text)

        def sheet(n: int, columns: list[Column]) -> tuple[IO[bytes], _SheetWriter]:
            entry = zf.open(f"xl/worksheets/sheet{n}.xml", "w", force_zip64=True)
            return entry, _SheetWriter(entry, columns, selected=n == 1)

        entry, ws = sheet(1, [Column(_("Figure"), 34), Column(_("Value"), 24)])
        with entry:
            for title, value, fmt in summary_rows(report):
                ws.add_row(_cell(title) + _cell(value, _STYLE_OF[fmt] if fmt else 0))
            ws.close()
        for n, columns, rows in (
            (2, institute_columns(), institute_rows(report)),
            (3, instrument_columns(), instrument_rows(report)),
        ):
            serialisers = [_column_serialiser(c) for c in columns]
            entry, ws = sheet(n, columns)
            with entry:
                for values in rows:
                    ws.add_row("".join([f(v) for f, v in zip(serialisers, values, strict=True)]))
                ws.close()
        _orders_sheet(sheet(4, order_sheet_columns()), period, scope)
        entry, ws = sheet(5, booking_columns())
        render = _booking_renderer()
        with entry:
            background = ws.background()
            try:
                for values in booking_rows(period, scope):
                    ws.add_row(render(values))
                    count += 1
                    if progress is not None and count % PROGRESS_EVERY == 0:
                        progress(PROGRESS_EVERY)
                ws.close()
            finally:
                background.stop()
    if progress is not None:
        progress(count % PROGRESS_EVERY)
    return count


def _orders_sheet(opened: tuple[IO[bytes], _SheetWriter], period: Period, scope: Scope) -> None:
    """The service orders' sheet (labshare/orders/export.py), streamed as the bookings'."""
    from labshare.orders.export import order_rows

    entry, ws = opened
    serialisers = [_column_serialiser(c) for c in order_sheet_columns()]
    with entry:
        for values in order_rows(period, scope):
            ws.add_row("".join([f(v) for f, v in zip(serialisers, values, strict=True)]))
        ws.close()
