"""Time and peak memory of the usage export over the bench database.

    .venv/bin/python -m bench.export_bench [--db URL] [--format xlsx|csv|both]
        [--from 2026-01-01 --to 2027-04-01] [--out bench/out]

Exports every booking starting in [from, to) (by default the whole generated year,
about 1,000,000 detail rows) for the whole country, in a child process per format,
and prints rows, seconds and the child's peak RSS (``ru_maxrss``). Target on the
2-core box: <= 60 s and <= 300 MB. Generate the data first (bench/README.md).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_DB = "postgresql+psycopg://postgres@127.0.0.1:5432/labshare_bench"


def child(url: str, fmt: str, start: str, end: str, out: str) -> None:
    from config import DevelopmentConfig
    from labshare import create_app
    from labshare.campaign import export
    from labshare.campaign.periods import Period, Scope

    app = create_app(
        DevelopmentConfig,
        SQLALCHEMY_DATABASE_URI=url,
        SCHEDULER_ENABLED=False,
        SQLALCHEMY_ECHO=False,
    )
    period = Period(dt.date.fromisoformat(start), dt.date.fromisoformat(end))
    path = Path(out) / f"export-bench.{fmt}"
    with app.app_context():
        t0 = time.perf_counter()
        if fmt == "xlsx":
            rows = export.write_xlsx(str(path), period, Scope.everything())
        else:
            rows = 0
            with path.open("wb") as fh:

                def tick(n: int) -> None:
                    nonlocal rows
                    rows += n

                export.write_csv(fh, period, Scope.everything(), tick)
        seconds = time.perf_counter() - t0
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "format": fmt,
                "rows": rows,
                "seconds": round(seconds, 1),
                "peak_rss_mb": round(peak_kb / 1024, 1),
                "file_mb": round(path.stat().st_size / 1e6, 1),
            }
        )
    )


def prepare(url: str) -> None:
    """Bring the schema up to date (the figures need nothing else: they are counted
    from the bookings when the export asks)."""
    import flask_migrate

    from config import DevelopmentConfig
    from labshare import create_app

    app = create_app(DevelopmentConfig, SQLALCHEMY_DATABASE_URI=url, SCHEDULER_ENABLED=False)
    with app.app_context():
        flask_migrate.upgrade()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default=DEFAULT_DB)
    parser.add_argument("--format", choices=["xlsx", "csv", "both"], default="both")
    parser.add_argument("--from", dest="start", default="2026-01-01")
    parser.add_argument("--to", dest="end", default="2027-04-01")
    parser.add_argument("--out", default="bench/out")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    if args.child:
        child(args.db, args.format, args.start, args.end, args.out)
        return
    prepare(args.db)
    formats = ["xlsx", "csv"] if args.format == "both" else [args.format]
    for fmt in formats:
        # A fresh process per format, so that ru_maxrss is this export's peak.
        cmd = [sys.executable, "-m", "bench.export_bench", "--child", "--format", fmt]
        cmd += ["--db", args.db, "--from", args.start, "--to", args.end, "--out", args.out]
        result = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
        if result.returncode != 0:
            sys.stderr.write(result.stderr)
            raise SystemExit(result.returncode)
        print(result.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
