"""CPU per booking creation in-process (``POST /api/v1/bookings`` through the
test client, production config, rate limits off): ``time.process_time()`` per
creation, and optionally a cProfile of the run.

    python -m bench.create_cpu --db <url> [-n 400] [--profile out.prof]

Runs against a copy of the bench data (it books free slots). Compare before and
after back to back: the machine is shared."""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import time
from typing import Any

from bench.run import free_slots, issue_tokens, server_env, some_smes

#: What ``--phases`` times.
PHASES = [
    ("labshare.api.auth", "user_for_token"),
    ("labshare.api.registry", "parse_body"),
    ("labshare.api.registry", "jsonify"),
    ("labshare.api.booking_routes", "booking_json"),
    ("labshare.booking.booking_path", "create"),
    ("labshare.booking.booking_path", "lock_and_load"),
    ("labshare.booking.booking_path", "load_policy"),
    ("labshare.booking.booking_path", "_judge"),
    ("labshare.booking.booking_path", "read_around"),
    ("labshare.booking.booking_path", "queue_new_booking_events"),
    ("labshare.booking.booking_path", "new_booking"),
    ("labshare.booking.booking_path.checks", "validate_request"),
    ("labshare.booking.booking_path.audit", "insert_one"),
    ("labshare.booking.booking_path", "insert_booking"),
    ("labshare.database.db.Session", "connection"),
    ("labshare.booking.booking_path.signals.booking_created", "send"),
    ("flask.app.Flask", "full_dispatch_request"),
    ("flask.app.Flask", "wsgi_app"),
    ("flask.app.Flask", "preprocess_request"),
    ("flask.app.Flask", "process_response"),
    ("flask.app.Flask", "do_teardown_request"),
    ("flask.app.Flask", "do_teardown_appcontext"),
    ("sqlalchemy.orm.session.Session", "flush"),
    ("sqlalchemy.orm.session.Session", "commit"),
    ("sqlalchemy.orm.session.Session", "execute"),
    ("sqlalchemy.orm.session.Session", "close"),
    ("sqlalchemy.engine.base.Connection", "_execute_context"),
    ("psycopg.cursor.Cursor", "execute"),
    ("sqlite3.Cursor", "execute"),
]


def wrap_cpu(targets: list[tuple[str, str]]) -> dict[str, list[float]]:
    """Wrap each function where it is looked up, summing its CPU time and calls
    (inclusive; nested phases count in both)."""
    import functools
    import importlib

    spent: dict[str, list[float]] = {}
    for where, name in targets:
        parts = where.split(".")
        obj: Any = None
        for i in range(len(parts), 0, -1):
            try:
                obj = importlib.import_module(".".join(parts[:i]))
            except ImportError:
                continue
            for attr in parts[i:]:
                obj = getattr(obj, attr, None)
            break
        if obj is None or not hasattr(obj, name):
            continue
        fn = getattr(obj, name)
        if not callable(fn) or isinstance(fn, type):
            continue
        key = f"{where.rsplit('.', 1)[-1]}.{name}"
        cell = spent.setdefault(key, [0, 0.0])

        def wrapped(*a: Any, _fn: Any = fn, _cell: list[float] = cell, **k: Any) -> Any:
            t0 = time.process_time()
            try:
                return _fn(*a, **k)
            finally:
                _cell[0] += 1
                _cell[1] += time.process_time() - t0

        try:
            setattr(obj, name, functools.wraps(fn)(wrapped))
        except (TypeError, AttributeError):
            del spent[key]
    return spent


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--db", required=True)
    p.add_argument("-n", type=int, default=400)
    p.add_argument("--warm", type=int, default=50)
    p.add_argument("--profile", default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--phases", action="store_true", help="CPU per phase (wrapped functions)")
    p.add_argument("--calls", type=int, default=0, help="count calls over this many more")
    p.add_argument("--sql", action="store_true", help="print the SQL of the last creation")
    args = p.parse_args()
    os.environ.update(server_env(args.db))  # the server's (bench.run)
    from labshare import create_app

    app = create_app()
    phases = wrap_cpu(PHASES) if args.phases else None
    seed = args.seed if args.seed is not None else time.time_ns()
    slots = free_slots(app, args.n + args.warm, seed=seed)
    tokens = issue_tokens(app, some_smes(app, 40))
    client = app.test_client()
    bodies = []
    for k, (rid, start, end) in enumerate(slots):
        bodies.append(
            (
                {"resource_id": rid, "start": start, "end": end, "purpose": "bench"},
                {"Authorization": f"Bearer {tokens[k % len(tokens)]}"},
            )
        )
    if args.sql:
        from sqlalchemy import event

        from labshare.extensions import db

        seen: list[str] = []
        with app.app_context():
            event.listen(db.engine, "before_cursor_execute", lambda c, cur, st, *a: seen.append(st))
        body, headers = bodies.pop()
        client.post("/api/v1/bookings", json=body, headers=headers)
        seen.clear()
        body, headers = bodies.pop()
        r = client.post("/api/v1/bookings", json=body, headers=headers)
        print(r.status_code, r.get_json())
        for st in seen:
            print("---", st[:3000])
        return
    for body, headers in bodies[: args.warm]:
        client.post("/api/v1/bookings", json=body, headers=headers)
    if phases is not None:
        for cell in phases.values():
            cell[0], cell[1] = 0, 0.0
    prof = cProfile.Profile(time.process_time) if args.profile else None
    times: list[float] = []
    statuses: dict[int, int] = {}
    for body, headers in bodies[args.warm :]:
        if prof:
            prof.enable()
        t0 = time.process_time()
        r = client.post("/api/v1/bookings", json=body, headers=headers)
        t1 = time.process_time()
        if prof:
            prof.disable()
        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
        if r.status_code == 201:
            times.append(t1 - t0)
    p10 = sorted(times)[len(times) // 10]
    print(
        f"CPU per creation: mean {statistics.mean(times) * 1000:.2f} ms, "
        f"median {statistics.median(times) * 1000:.2f} ms, p10 {p10 * 1000:.2f} ms "
        f"(n={len(times)}) statuses {statuses}"
    )
    if args.calls:  # a deterministic proxy of the CPU: Python calls per creation
        counter = cProfile.Profile()
        extra = bodies[-args.calls :]
        slots_left = free_slots(app, len(extra), seed=seed + 1)
        counter.enable()
        for k, (rid, start, end) in enumerate(slots_left):
            client.post(
                "/api/v1/bookings",
                json={"resource_id": rid, "start": start, "end": end, "purpose": "bench"},
                headers=bodies[k][1],
            )
        counter.disable()
        total = pstats.Stats(counter).total_calls  # type: ignore[attr-defined]
        print(f"Python calls per creation: {total / max(len(slots_left), 1):.0f}")
    if phases is not None:
        n = max(len(times), 1)
        for name, (count, spent) in sorted(phases.items(), key=lambda kv: -kv[1][1]):
            print(f"  {name:<45} {spent / n * 1000:6.3f} ms per creation ({count / n:.1f} calls)")
    if prof:
        prof.dump_stats(args.profile)
        pstats.Stats(prof).sort_stats("cumulative").print_stats(60)


if __name__ == "__main__":
    main()
