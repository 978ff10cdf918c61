"""The monthly usage export: XLSX (Summary, Institutes, Instruments, Orders, Bookings;
``campaign/xlsx.py``) and CSV (the booking detail, UTF-8 with a BOM so that Excel reads
the Chinese text), both from the rows of ``campaign/export_rows.py``.

Both stream: the booking detail comes from a server-side cursor and goes out as
worksheet XML streamed into the zip or as a generator of CSV chunks, so exporting a
million bookings never holds them in memory.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator
from decimal import Decimal
from typing import IO, Any

from labshare.campaign.export_rows import (
    HOURS,
    INTEGER,
    MONEY,
    PERCENT,
    Progress,
    Report,
    booking_columns,
    booking_rows,
    build_report,
    count_bookings,
    filename,
    parse_month,
    scope_for,
    summary_rows,
)
from labshare.campaign.periods import Period, Scope
from labshare.campaign.xlsx import write_xlsx, xml_text
from labshare.safety import spreadsheet_text

__all__ = [
    "HOURS",
    "INTEGER",
    "MONEY",
    "PERCENT",
    "Period",
    "Progress",
    "Report",
    "Scope",
    "booking_columns",
    "booking_rows",
    "build_report",
    "count_bookings",
    "filename",
    "iter_csv",
    "parse_month",
    "scope_for",
    "summary_rows",
    "write_csv",
    "write_xlsx",
    "xml_text",
]


def _csv_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    return "" if value is None else spreadsheet_text(value)


def iter_csv(period: Period, scope: Scope, progress: Progress | None = None) -> Iterator[bytes]:
    """The booking detail as CSV chunks, the first starting with the UTF-8 BOM."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([c.title for c in booking_columns()])
    first = True
    count = 0
    for values in booking_rows(period, scope):
        writer.writerow([_csv_value(v) for v in values])
        count += 1
        if count % 2000 == 0:
            chunk = buffer.getvalue().encode("utf-8")
            yield (b"\xef\xbb\xbf" + chunk) if first else chunk
            first = False
            buffer.seek(0)
            buffer.truncate()
            if progress is not None:
                progress(2000)
    chunk = buffer.getvalue().encode("utf-8")
    yield (b"\xef\xbb\xbf" + chunk) if first else chunk
    if progress is not None:
        progress(count % 2000)


def write_csv(
    target: IO[bytes], period: Period, scope: Scope, progress: Progress | None = None
) -> None:
    for chunk in iter_csv(period, scope, progress):
        target.write(chunk)
