"""``python -m bench.run --only-search``: the search alone, in-process (p50/p99 per
kind, with every statement's plan) and over HTTP against hello world in the same
interleaved rounds, so that one engineer can measure it in a couple of minutes."""

from __future__ import annotations

import argparse
import os
import time
import urllib.parse
from collections import Counter
from pathlib import Path
from typing import Any

from bench import run


def http_paths() -> dict[str, list[str]]:
    params = run.search_params()

    def urls(*labels: str) -> list[str]:
        return [
            "/api/v1/resources?" + urllib.parse.urlencode(p)
            for label in labels
            for p in params[label]
        ]

    return {
        "search text": urls(*run.TEXT_QUERIES),
        "search capability": urls("capability"),
        "search capability + free window": urls("capability + free window"),
        "search capability + varied windows": urls("capability + varied windows"),
        "search text + facets": urls("text + facets (free this week)"),
        # the web catalogue's page (HTML, facets and the week's count on every visit)
        "catalogue page (text)": [
            "/catalogue?" + urllib.parse.urlencode({"q": q})
            for q in run.TEXT_QUERIES["text (zh, 2 chars)"]
        ],
    }


#: Searches whose answer starts now (the "free this week" facet): never cached,
#: measured once. A window search is kept while its calendars and the clock leave it
#: alone (labshare/catalogue/window_cache.py): the bench's windows are two weeks ahead.
def _never_cached(label: str) -> bool:
    return "facets" in label


def _db_cpu(url: str) -> float:
    """CPU seconds used so far by the PostgreSQL backends serving ``url``'s database
    (found in /proc by their process title; 0 elsewhere). With the app's own
    process time this is the work a search costs, which a loaded machine's
    queueing does not inflate as it inflates the wall-clock p50."""
    if not url.startswith("postgresql"):
        return 0.0
    name = url.rsplit("/", 1)[-1].split("?")[0]
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            title = (proc / "cmdline").read_bytes().decode(errors="replace")
            if not title.startswith("postgres: ") or f" {name} " not in title:
                continue
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def measure(app: Any, args: argparse.Namespace, labels: list[str], url: str = "") -> dict[str, Any]:
    """``--search-samples`` GETs of each kind (its variants in turn, after 10 warm
    ones), in-process through the WSGI stack (fast path included); with the CPU
    each took (this process and the database's backends) on average."""
    out: dict[str, Any] = {}
    client = app.test_client()
    params = run.search_params()
    for label in labels:
        variants = params[label]
        times: list[float] = []
        statuses: Counter[int] = Counter()
        totals = []
        cpu0, db0 = time.process_time(), _db_cpu(url)
        for i in range(args.search_samples + 10):
            t0 = time.perf_counter()
            status, body = run.api_get(client, "/api/v1/resources", variants[i % len(variants)])
            took = time.perf_counter() - t0
            statuses[status] += 1
            if i >= 10:
                times.append(took)
            if i < min(len(variants), 6) and isinstance(body, dict):
                totals.append(body.get("total"))
        n = args.search_samples + 10
        cpu = (time.process_time() - cpu0) / n
        out[label] = {
            "times": times,
            "statuses": statuses,
            "totals": totals,
            "cpu": cpu,
            "db_cpu": (_db_cpu(url) - db0) / n,
        }
    return out


def _cache_bytes(app: Any, budget: int) -> None:
    from labshare.catalogue import search_cache

    app.config["SEARCH_CACHE_BYTES"] = budget
    app.extensions.pop(search_cache.EXTENSION, None)


def run_search_only(label: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    from labshare.catalogue import search_cache

    run.log(f"\n=== {label}: search only, {run.generate.safe_url(url)}")
    run.ensure_data(url, args)
    app = run.bench_app(url)
    # A worker reads its text index in a thread within a second or two of its first
    # text search (labshare/catalogue/text_index.py), answering from the database
    # meanwhile: read here first, so that the samples measure what a worker then does.
    from labshare.catalogue import text_index

    with app.app_context():
        text_index.index_of(app).refresh(wait=True)
    summary: dict[str, Any] = {}
    labels = list(run.search_params())
    run.log("\n  -- search GET /api/v1/resources, in-process (test client)")
    # Uncached: the answer cache off, so every call computes its answer, as a
    # search nobody has asked since the last catalogue change does. Cached: the
    # same calls with the cache on, so all but the first of each are served from
    # it (by the fast path, labshare/fastpath.py).
    _cache_bytes(app, 0)
    uncached = measure(app, args, labels, url)
    _cache_bytes(app, search_cache.DEFAULT_BYTES)
    cached = measure(app, args, [x for x in labels if not _never_cached(x)], url)
    run.log(
        f"  {'kind':<30} {'uncached p50':>12} {'p99':>8} {'cpu app+db':>12}"
        f"   {'cached p50':>10} {'p99':>8}   statuses, totals (of the first variants)"
    )
    for what in labels:
        u = uncached[what]["times"]
        c = cached[what]["times"] if what in cached else None
        cells = (
            f"{run.pct(c, 50) * 1000:7.2f} ms {run.pct(c, 99) * 1000:7.2f}"
            if c
            else f"{'(never cached)':>18}"
        )
        cpu = f"{uncached[what]['cpu'] * 1000:5.1f}+{uncached[what]['db_cpu'] * 1000:4.1f} ms"
        run.log(
            f"  {what:<30} {run.pct(u, 50) * 1000:9.2f} ms {run.pct(u, 99) * 1000:7.2f} {cpu:>13}"
            f"   {cells}   {dict(uncached[what]['statuses'])} {uncached[what]['totals']}"
        )
        summary[f"search {what} (no cache) cpu ms"] = uncached[what]["cpu"] * 1000
        summary[f"search {what} (no cache) db cpu ms"] = uncached[what]["db_cpu"] * 1000
        summary[f"search {what} (no cache) p50 ms"] = run.pct(u, 50) * 1000
        summary[f"search {what} (no cache) p99 ms"] = run.pct(u, 99) * 1000
        if c:
            summary[f"search {what} (cached) p50 ms"] = run.pct(c, 50) * 1000
            summary[f"search {what} (cached) p99 ms"] = run.pct(c, 99) * 1000
    # The plans of what an uncached search sends (a cached one sends one
    # primary-key read of catalogue_version).
    _cache_bytes(app, 0)
    if args.plan_statements:
        run.log("\n  -- EXPLAIN of the SQL the searches send (slowest statements first)")
        calls: list[tuple[str, Any]] = []
        for what, variants in run.search_params().items():
            client = app.test_client()
            calls.append(
                (
                    f"search {what} {variants[0]}",
                    lambda p=variants[0], c=client: c.get("/api/v1/resources", query_string=p),
                )
            )
        for pp in run.explain_calls(app, calls):
            run.log(f"  [{pp.path}] {pp.seconds * 1000:.1f} ms, {len(pp.statements)} SELECTs")
            for st in sorted(pp.statements, key=lambda x: -x.seconds * x.sent)[
                : args.plan_statements
            ]:
                flat = " ".join(st.sql.split())
                run.log(f"    {st.seconds * 1000:7.2f} ms x {st.sent}")
                run.log(f"      SQL: {flat[:300]}{'…' if len(flat) > 300 else ''}")
                for line in st.plan.splitlines()[: args.plan_lines]:
                    run.log(f"        {line}")
    _cache_bytes(app, search_cache.DEFAULT_BYTES)
    if args.no_http:
        return summary
    use_wrk = run.shutil.which("wrk") is not None and not args.no_wrk
    run.log(
        f"\n  -- over HTTP: gunicorn, {args.workers} workers with gunicorn.conf.py's threads "
        "(LabShare: 2 on PostgreSQL, 1 (sync) on SQLite; hello world: 2), "
        f"{'wrk' if use_wrk else 'Python load generator'}, {args.http_clients} connections, "
        f"{args.duration:.0f} s per endpoint, {args.rounds} interleaved rounds"
    )
    rounds: list[dict[str, Any]] = []
    paths = http_paths()
    # The same text, capability and window URLs against a server with the answer
    # cache off: what searches nobody has asked before cost.
    uncached_paths = {
        f"{what} (no cache)": some
        for what, some in paths.items()
        if what
        in (
            "search text",
            "search capability",
            "search capability + free window",
            "search capability + varied windows",
            "catalogue page (text)",
        )
    }
    del paths["search capability + varied windows"]  # a cached answer would only miss
    no_cache_env = {**run.server_env(url), "SEARCH_CACHE_BYTES": "0"}
    with (
        run.gunicorn("bench.hello:create_app()", {}, args.workers, "/hello") as hello_host,
        run.gunicorn("labshare:create_app()", run.server_env(url), args.workers) as host,
        run.gunicorn("labshare:create_app()", no_cache_env, args.workers) as cold_host,
    ):
        run.get_load(hello_host, ["/hello"], 1, args.http_clients, use_wrk)
        # Long enough for each worker to compute (and cache) every URL once on a
        # loaded machine: one second left the first round measuring misses.
        for some in paths.values():
            run.get_load(host, some, max(1.0, args.duration), args.http_clients, use_wrk)
        for some in uncached_paths.values():
            run.get_load(cold_host, some, 1, args.http_clients, use_wrk)
        for n in range(args.rounds):
            results = {
                run.HELLO: run.get_load(
                    hello_host, ["/hello"], args.duration, args.http_clients, use_wrk
                )
            }
            for what, some in paths.items():
                results[what] = run.get_load(host, some, args.duration, args.http_clients, use_wrk)
            for what, some in uncached_paths.items():
                results[what] = run.get_load(
                    cold_host, some, args.duration, args.http_clients, use_wrk
                )
            rounds.append(results)
            line = " | ".join(f"{k} {v.rps:.0f}" for k, v in results.items())
            run.log(f"  round {n + 1} req/s: {line}")
    reads = run.Reads(rounds)
    reads.report(summary, width=34)
    return summary
