"""CPU per uncached search in-process: ``GET /api/v1/resources`` through the test
client (production config, answer cache off, as the bench's "no cache" server),
against the search function alone, with the statements each request sends.

    python -m bench.search_cpu --db <url> [--kind capability|window|text|page] [-n 300]
        [--profile out.prof] [--sql] [--cache]

``time.process_time()`` is this process's CPU (the database's is not in it);
compare before and after back to back: the machine is shared."""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import time
import urllib.parse
from typing import Any

from bench.create_cpu import wrap_cpu
from bench.run import TEXT_QUERIES, search_params, server_env
from bench.search_bench import _db_cpu


def _paths(kind: str) -> list[str]:
    params = search_params()
    if kind == "capability":
        chosen = params["capability"]
    elif kind == "window":
        chosen = params["capability + free window"]
    elif kind == "text":
        chosen = [p for label in TEXT_QUERIES for p in params[label]]
    else:
        chosen = [{"q": q} for q in ("压力", "pressure", "yali")]
    prefix = "/catalogue?" if kind == "page" else "/api/v1/resources?"
    return [prefix + urllib.parse.urlencode(p) for p in chosen]


#: Functions whose CPU --phases sums (inclusive: nested phases count in both).
PHASES = [
    ("labshare.fastpath.CalendarFastPath", "__call__"),
    ("flask.app.Flask", "wsgi_app"),
    ("flask.app.Flask", "full_dispatch_request"),
    ("flask.app.Flask", "preprocess_request"),
    ("flask.app.Flask", "process_response"),
    ("flask.app.Flask", "do_teardown_appcontext"),
    ("flask.app.Flask", "do_teardown_request"),
    ("flask.ctx.RequestContext", "push"),
    ("flask.ctx.RequestContext", "pop"),
    ("labshare.api.registry", "parse_query"),
    ("labshare.api.registry", "jsonify"),
    ("labshare.api.resource_routes", "jsonify"),
    ("labshare.api.resource_routes", "search_resources"),
    ("labshare.api.resource_routes", "resource_row_json"),
    ("labshare.catalogue.search", "_where"),
    ("labshare.catalogue.search", "_window"),
    ("labshare.catalogue.search", "_ranked"),
    ("labshare.catalogue.search", "_page"),
    ("labshare.catalogue.search_tiers", "text_page"),
    ("labshare.catalogue.search_index", "parse"),
    ("labshare.catalogue.search_pages", "load_rows"),
    ("labshare.catalogue.search_pages", "row_select"),
    ("labshare.catalogue.capability_index", "search_matches"),
    ("labshare.catalogue.capability_index", "ranked"),
    ("labshare.catalogue.search_cache", "version"),
    ("labshare.web.catalogue", "render_template"),
    ("sqlalchemy.orm.session.Session", "execute"),
    ("sqlalchemy.engine.base.Connection", "_execute_context"),
    ("sqlalchemy.orm.session.Session", "close"),
    ("psycopg.cursor.Cursor", "execute"),
    ("psycopg.cursor.Cursor", "fetchall"),
    ("labshare.catalogue.free_time", "scan"),
    ("labshare.catalogue.free_time", "_check"),
    ("labshare.catalogue.free_memo", "of_ids"),
    ("labshare.catalogue.free_memo", "_stamps"),
    ("labshare.catalogue.free_painted", "painted_of"),
    ("labshare.catalogue.search_free", "from_kept_list"),
    ("labshare.catalogue.search_reads", "kept_session"),
    ("labshare.api.search_answer", "_answer"),
]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--db", required=True)
    p.add_argument("--kind", default="capability", choices=("capability", "window", "text", "page"))
    p.add_argument("-n", type=int, default=300)
    p.add_argument("--warm", type=int, default=30)
    p.add_argument("--profile", default=None)
    p.add_argument("--sql", action="store_true", help="print the SQL of one request")
    p.add_argument("--calls", action="store_true", help="Python calls per request")
    p.add_argument("--phases", action="store_true", help="CPU per phase (wrapped functions)")
    p.add_argument(
        "--cache",
        action="store_true",
        help="the answer cache on (a page with facets keeps its catalogue part)",
    )
    args = p.parse_args()
    # the server's environment (bench.run), every answer computed unless --cache
    os.environ.update(server_env(args.db))
    if not args.cache:
        os.environ["SEARCH_CACHE_BYTES"] = "0"
    from sqlalchemy import event

    from labshare import create_app
    from labshare.extensions import db

    app = create_app()
    phases = wrap_cpu(PHASES) if args.phases else None
    paths = _paths(args.kind)
    client = app.test_client()
    seen: list[str] = []
    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", lambda c, cur, st, *a: seen.append(st))
    for k in range(args.warm):
        r = client.get(paths[k % len(paths)])
        assert r.status_code == 200, (r.status_code, r.data[:300])
    seen.clear()
    if phases is not None:
        for cell in phases.values():
            cell[0], cell[1] = 0, 0.0
    statements: list[int] = []
    prof = cProfile.Profile(time.process_time) if args.profile else None
    times: list[float] = []
    db0 = _db_cpu(args.db)
    for k in range(args.n):
        path = paths[k % len(paths)]
        before = len(seen)
        if prof:
            prof.enable()
        t0 = time.process_time()
        r = client.get(path)
        t1 = time.process_time()
        if prof:
            prof.disable()
        statements.append(len(seen) - before)
        times.append(t1 - t0)
    db_cpu = (_db_cpu(args.db) - db0) / args.n
    print(
        f"{args.kind}: CPU per request mean {statistics.mean(times) * 1000:.3f} ms, "
        f"median {statistics.median(times) * 1000:.3f} ms (n={len(times)}); "
        f"database CPU {db_cpu * 1000:.2f} ms; "
        f"statements per request {statistics.mean(statements):.2f}"
    )
    if phases is not None:
        n = len(times)
        for name, (count, spent) in sorted(phases.items(), key=lambda kv: -kv[1][1]):
            print(f"  {name:<45} {spent / n * 1000:6.3f} ms per request ({count / n:.1f} calls)")
    if args.kind != "page":
        _search_alone(app, args, paths)
    if args.sql:
        seen.clear()
        client.get(paths[0])
        for st in seen:
            print("---", " ".join(st.split())[:1500])
    if args.calls:
        counter = cProfile.Profile()
        counter.enable()
        for path in paths:
            client.get(path)
        counter.disable()
        total = pstats.Stats(counter).total_calls  # type: ignore[attr-defined]
        print(f"Python calls per request: {total / len(paths):.0f}")
    if prof:
        prof.dump_stats(args.profile)
        pstats.Stats(prof).sort_stats("cumulative").print_stats(70)


def _search_alone(app: Any, args: argparse.Namespace, paths: list[str]) -> None:
    """``search_resources`` alone, in a request context of the same URL (its session
    closed after each, as the request's teardown does)."""
    from labshare.api.schemas import ResourceQuery
    from labshare.catalogue.search import ResourceFilters, search_resources
    from labshare.extensions import db

    def filters_of(path: str) -> tuple[ResourceFilters, ResourceQuery]:
        query = ResourceQuery.model_validate(dict(urllib.parse.parse_qsl(path.split("?", 1)[1])))
        return (
            ResourceFilters(
                q=query.q, measurand=query.measurand, value=query.value, unit=query.unit
            ),
            query,
        )

    prepared = [filters_of(p) for p in paths]
    times: list[float] = []
    for k in range(args.n + args.warm):
        f, query = prepared[k % len(prepared)]
        with app.test_request_context(paths[k % len(paths)]):
            t0 = time.process_time()
            search_resources(f, page=query.page, per_page=query.per_page, plain=True)
            db.session.remove()
            t1 = time.process_time()
        if k >= args.warm:
            times.append(t1 - t0)
    print(
        f"  search_resources alone: mean {statistics.mean(times) * 1000:.3f} ms, "
        f"median {statistics.median(times) * 1000:.3f} ms"
    )


if __name__ == "__main__":
    main()
