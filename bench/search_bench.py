"""``python -m bench.run --only-search``: the search alone, in-process (p50/p99 per
kind, with every statement's plan) and over HTTP against hello world in the same
interleaved rounds, so that one engineer can measure it in a couple of minutes."""

from __future__ import annotations

import argparse
import statistics
import urllib.parse
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
        "search text + facets": urls("text + facets (free this week)"),
    }


def run_search_only(label: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    run.log(f"\n=== {label}: search only, {run.generate.safe_url(url)}")
    run.ensure_data(url, args)
    app = run.bench_app(url)
    summary: dict[str, Any] = {}
    run.log("\n  -- search GET /api/v1/resources, in-process (test client)")
    for what, r in run.bench_search(app, args).items():
        run.log(
            f"  {what:<30} {run.ms(r['times'])}  statuses {dict(r['statuses'])}  "
            f"totals {r['totals']}"
        )
        summary[f"search {what} p50 ms"] = run.pct(r["times"], 50) * 1000
        summary[f"search {what} p99 ms"] = run.pct(r["times"], 99) * 1000
    # The same searches with the answer cache off: what a search nobody asked
    # since the last catalogue change costs.
    from labshare.catalogue import search_cache

    app.config["SEARCH_CACHE_BYTES"] = 0
    app.extensions.pop(search_cache.EXTENSION, None)
    run.log("  with the answer cache off (SEARCH_CACHE_BYTES=0):")
    for what, r in run.bench_search(app, args).items():
        if "window" in what or "facets" in what or "2 h" in what:
            continue  # never cached: measured above
        run.log(f"  {what:<30} {run.ms(r['times'])}")
        summary[f"search {what} (no cache) p50 ms"] = run.pct(r["times"], 50) * 1000
        summary[f"search {what} (no cache) p99 ms"] = run.pct(r["times"], 99) * 1000
    app.extensions.pop(search_cache.EXTENSION, None)
    app.config["SEARCH_CACHE_BYTES"] = search_cache.DEFAULT_BYTES
    if args.plan_statements:
        run.log("\n  -- EXPLAIN of the SQL the searches send (slowest statements first)")
        paths = []
        for what, variants in run.search_params().items():
            client = app.test_client()
            paths.append(
                (
                    f"search {what} {variants[0]}",
                    lambda p=variants[0], c=client: c.get("/api/v1/resources", query_string=p),
                )
            )
        for pp in run.explain_calls(app, paths):
            run.log(f"  [{pp.path}] {pp.seconds * 1000:.1f} ms, {len(pp.statements)} SELECTs")
            for st in sorted(pp.statements, key=lambda x: -x.seconds * x.sent)[
                : args.plan_statements
            ]:
                flat = " ".join(st.sql.split())
                run.log(f"    {st.seconds * 1000:7.2f} ms x {st.sent}")
                run.log(f"      SQL: {flat[:300]}{'…' if len(flat) > 300 else ''}")
                for line in st.plan.splitlines()[: args.plan_lines]:
                    run.log(f"        {line}")
    if args.no_http:
        return summary
    use_wrk = run.shutil.which("wrk") is not None and not args.no_wrk
    run.log(
        f"\n  -- over HTTP: gunicorn, {args.workers} sync workers, "
        f"{'wrk' if use_wrk else 'Python load generator'}, {args.http_clients} connections, "
        f"{args.duration:.0f} s per endpoint, {args.rounds} interleaved rounds"
    )
    rounds: list[dict[str, Any]] = []
    paths = http_paths()
    with (
        run.gunicorn("bench.hello:create_app()", {}, args.workers, "/hello") as hello_host,
        run.gunicorn("labshare:create_app()", run.server_env(url), args.workers) as host,
    ):
        run.get_load(hello_host, ["/hello"], 1, args.http_clients, use_wrk)
        for some in paths.values():
            run.get_load(host, some, 1, args.http_clients, use_wrk)
        for n in range(args.rounds):
            results = {
                run.HELLO: run.get_load(
                    hello_host, ["/hello"], args.duration, args.http_clients, use_wrk
                )
            }
            for what, some in paths.items():
                results[what] = run.get_load(host, some, args.duration, args.http_clients, use_wrk)
            rounds.append(results)
            line = " | ".join(f"{k} {v.rps:.0f}" for k, v in results.items())
            run.log(f"  round {n + 1} req/s: {line}")
    reads = run.Reads(rounds)
    for what in rounds[0]:
        r = reads.merged(what)
        ratios = reads.ratios(what)
        share = (
            f"{statistics.median(ratios):5.0%} [{min(ratios):.0%}-{max(ratios):.0%}]"
            if what != run.HELLO
            else "  (the ceiling)"
        )
        run.log(
            f"  {what:<34} {r.rps:8.0f} req/s  {share:<16} "
            f"{run.latency(r.latencies)}  {dict(r.statuses)}"
        )
        summary[f"http {what} req/s"] = r.rps
        if what != run.HELLO:
            summary[f"http {what} / hello"] = statistics.median(ratios)
    return summary
