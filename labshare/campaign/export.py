"""The monthly usage export: XLSX (Summary, Institutes, Instruments, Orders, Bookings;
``campaign/xlsx.py``) and CSV (the booking detail, UTF-8 with a BOM so that Excel reads
the Chinese text), both from the rows of ``campaign/export_rows.py``.

Both stream: the booking detail comes from a server-side cursor and goes out as
worksheet XML streamed into the zip or as a generator of CSV chunks, so exporting a
million bookings never holds them in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO

from labshare.campaign.export_rows import (
    HOURS,
    INTEGER,
    MONEY,
    PERCENT,
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
from labshare.sheets import Progress, csv_chunks

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


def iter_csv(period: Period, scope: Scope, progress: Progress | None = None) -> Iterator[bytes]:
    """The booking detail as CSV chunks, the first starting with the UTF-8 BOM."""
    return csv_chunks(booking_columns(), booking_rows(period, scope), progress)


def write_csv(
    target: IO[bytes], period: Period, scope: Scope, progress: Progress | None = None
) -> None:
    for chunk in iter_csv(period, scope, progress):
        target.write(chunk)
