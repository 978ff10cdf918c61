"""``python -m bench.run --only-calendar``: the calendar alone, in-process (the API's
path, a first render and the cache hit that follows) and over HTTP against hello
world in the same interleaved rounds; and the side-by-side table of the figures at
the demo scale and at 1M bookings (``--small-bookings``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import statistics
import time
from typing import Any

from bench import generate, run

#: The demo-scale copies next to the 1M ones (``--small-bookings``).
DEFAULT_PG_SMALL = os.environ.get(
    "BENCH_PG_SMALL_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/labshare_bench_10k"
)
DEFAULT_SQLITE_SMALL = os.environ.get(
    "BENCH_SQLITE_SMALL_URL", f"sqlite:///{run.OUT / 'bench_10k.db'}"
)
CALENDAR_LABELS = ("availability (1 week)", "availability (50 popular)")


def small_url(label: str, url: str, args: argparse.Namespace) -> str | None:
    """The demo-scale database to compare ``url`` with: ``--small-db``, else the
    default copy of the database kind (only when ``url`` is that kind's default)."""
    if args.small_db:
        return str(generate.absolute_url(args.small_db))
    if url == run.DEFAULT_PG:
        return DEFAULT_PG_SMALL
    if url == run.DEFAULT_SQLITE:
        return DEFAULT_SQLITE_SMALL
    return None


def api_path(app: Any, sample: run.Sample, n: int) -> dict[str, list[float]]:
    """The API's path without HTTP: a first render with nothing cached, then the
    same calendar again (a cache hit); seconds each, and statements each."""
    from labshare.booking.calendar_cache import cache, calendar_document
    from labshare.extensions import db

    rng = random.Random(7)
    out: dict[str, list[float]] = {"cold": [], "hit": [], "cold n": [], "hit n": []}
    with app.app_context(), run.capture_sql(app) as cap:
        store = cache()
        ids = [rng.choice(sample.instruments) for _ in range(n + 50)]
        for i, (rid, start) in enumerate(zip(ids, run.week_starts(rng, len(ids)), strict=True)):
            end = start + dt.timedelta(days=7)
            store.clear()
            cap.statements.clear()
            cap.on = True
            t0 = time.perf_counter()
            calendar_document(rid, start, end)
            t1 = time.perf_counter()
            cold_n = len(cap.statements)
            calendar_document(rid, start, end)
            t2 = time.perf_counter()
            cap.on = False
            hit_n = len(cap.statements) - cold_n
            db.session.rollback()
            if i >= 50:
                out["cold"].append(t1 - t0)
                out["hit"].append(t2 - t1)
                out["cold n"].append(cold_n)
                out["hit n"].append(hit_n)
    return out


def http_rounds(url: str, sample: run.Sample, args: argparse.Namespace) -> run.Reads:
    """Hello world, then the two calendar loads, ``--rounds`` times, as
    ``run.bench_http_reads`` does for every read."""
    use_wrk = run.shutil.which("wrk") is not None and not args.no_wrk
    run.log(
        f"  load generator: {'wrk' if use_wrk else 'Python threads + http.client'}, "
        f"{args.http_clients} connections, {args.duration:.0f} s per endpoint, "
        f"{args.rounds} interleaved rounds"
    )
    rounds: list[dict[str, run.Load]] = []
    with (
        run.gunicorn(
            "bench.hello:create_app()", {"DATABASE_URL": url}, args.workers, "/hello", args.threads
        ) as hello_host,
        run.gunicorn(
            "labshare:create_app()", run.server_env(url), args.workers, threads=args.threads
        ) as host,
    ):
        run.get_load(hello_host, ["/hello"], 1, args.http_clients, use_wrk)
        popular = run.http_paths(sample)["availability (50 popular)"]
        run.get_load(host, popular, 1, args.http_clients, use_wrk)  # warm every worker
        for n in range(args.rounds):
            paths = run.http_paths(sample, n)
            results = {
                run.HELLO: run.get_load(
                    hello_host, ["/hello"], args.duration, args.http_clients, use_wrk
                )
            }
            for label in CALENDAR_LABELS:
                results[label] = run.get_load(
                    host, paths[label], args.duration, args.http_clients, use_wrk
                )
            rounds.append(results)
            line = " | ".join(f"{label} {r.rps:.0f}" for label, r in results.items())
            run.log(f"  round {n + 1} req/s: {line}")
    return run.Reads(rounds)


def run_calendar_only(label: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    run.log(f"\n=== {label}: calendar only, {generate.safe_url(url)}")
    run.ensure_data(url, args)
    app = run.bench_app(url)
    sample = run.sample_ids(app, random.Random(3))
    summary: dict[str, Any] = {}
    run.log(
        f"  {len(sample.instruments):,} available instruments; {run.booking_count(url):,} bookings"
    )
    run.log("\n  -- the API's path in-process (calendar_cache.calendar_document)")
    api = api_path(app, sample, args.samples)
    run.log(
        f"  first render   {run.ms(api['cold'])}  statements {statistics.mean(api['cold n']):.1f}"
    )
    run.log(
        f"  cache hit      {run.ms(api['hit'])}  statements {statistics.mean(api['hit n']):.1f}"
    )
    summary["availability API path cold p50 ms"] = run.pct(api["cold"], 50) * 1000
    summary["availability API path hit p50 ms"] = run.pct(api["hit"], 50) * 1000
    summary["statements: availability, first render"] = statistics.mean(api["cold n"])
    summary["statements: availability, cache hit"] = statistics.mean(api["hit n"])
    if not args.no_http:
        run.log(
            f"\n  -- over HTTP: gunicorn, {run.server_shape(args, url)}, RATELIMIT_ENABLED=false"
        )
        reads = http_rounds(url, sample, args)
        reads.report(summary)
        for what, wanted in run.TARGET_RATIOS.items():
            ratio = summary[f"http {what} / hello"]
            run.log(
                f"  target {what} >= {wanted:.0%} of hello: "
                f"{'MET' if ratio >= wanted else 'MISSED'} ({ratio:.0%})"
            )
    with app.app_context():
        from labshare.extensions import db

        db.engine.dispose()
    return summary


#: What the scale table compares (the summary's keys), and how each is read.
SCALE_KEYS = (
    "http availability (50 popular) / hello",
    "http availability (1 week) / hello",
    "http availability (50 popular) req/s",
    "http availability (1 week) req/s",
    "create booking, 1 client / hello",
    "create booking, 10 clients / hello",
    "create booking, 1 client p99 ms",
    "create booking, 10 clients p99 ms",
    "availability API path cold p50 ms",
    "availability API path hit p50 ms",
    "statements: availability, first render",
    "statements: availability, cache hit",
    "statements: create booking",
)


def scale_table(label: str, small: dict[str, Any], large: dict[str, Any], n_small: int) -> None:
    """The figures at ``n_small`` bookings and at the full scale side by side, and how
    far the full scale's is from the small one's (the target: within 20 %)."""
    run.log(f"\n  {label}: {n_small:,} bookings vs the full scale")
    run.log(f"    {'figure':<42} {'small':>10} {'full':>10} {'full/small':>11}")
    for key in SCALE_KEYS:
        if key not in small or key not in large:
            continue
        a, b = float(small[key]), float(large[key])
        rel = f"{b / a:10.0%}" if a else "       n/a"
        fmt = (lambda v: f"{v:10.1%}") if key.endswith("/ hello") else (lambda v: f"{v:10.2f}")
        flag = ""
        if key.endswith("/ hello") or key.endswith("req/s"):
            flag = "  within 20 %" if a and b >= 0.8 * a else "  NOT within 20 %"
        run.log(f"    {key:<42} {fmt(a)} {fmt(b)} {rel}{flag}")
