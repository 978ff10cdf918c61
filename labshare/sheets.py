"""What every spreadsheet LabShare writes shares: a column's title, width and number
format, the formats themselves, and CSV as chunks of bytes (UTF-8 with a BOM, so that
Excel reads Chinese text), each cell kept from being read as a formula."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from labshare.safety import spreadsheet_text

MONEY = "#,##0.00"
HOURS = "0.00"
PERCENT = "0.0%"
INTEGER = "0"
STAMP = "yyyy-mm-dd hh:mm"

Progress = Callable[[int], None]
CSV_CHUNK_ROWS = 2000
BOM = b"\xef\xbb\xbf"


@dataclass
class Column:
    title: str
    width: int
    number_format: str | None = None


def csv_cell(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    return "" if value is None else spreadsheet_text(value)


def csv_chunks(
    columns: Iterable[Column], rows: Iterable[list[Any]], progress: Progress | None = None
) -> Iterator[bytes]:
    """The header and ``rows`` as CSV, a chunk every ``CSV_CHUNK_ROWS`` rows, the first
    starting with the BOM; ``progress`` hears of each chunk's rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([c.title for c in columns])
    first = True
    count = 0
    for values in rows:
        writer.writerow([csv_cell(v) for v in values])
        count += 1
        if count % CSV_CHUNK_ROWS == 0:
            chunk = buffer.getvalue().encode("utf-8")
            yield (BOM + chunk) if first else chunk
            first = False
            buffer.seek(0)
            buffer.truncate()
            if progress is not None:
                progress(CSV_CHUNK_ROWS)
    chunk = buffer.getvalue().encode("utf-8")
    yield (BOM + chunk) if first else chunk
    if progress is not None:
        progress(count % CSV_CHUNK_ROWS)
