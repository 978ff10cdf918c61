"""A sample production gunicorn configuration for LabShare.

    LABSHARE_CONFIG=production SECRET_KEY=... DATABASE_URL=postgresql+psycopg://... \\
        gunicorn -c gunicorn.conf.py 'labshare:create_app()'

Settings come from the environment, with defaults sized for a small host:
- ``WEB_CONCURRENCY``: worker processes (default 2 x CPU cores + 1, at most 8);
- ``GUNICORN_THREADS``: request threads per worker (default 2, on SQLite 1; 1 = a
  sync worker);
- ``GUNICORN_BIND``: address to listen on (default ``127.0.0.1:8000``: put a reverse
  proxy such as nginx in front for TLS and static files);
- ``GUNICORN_TIMEOUT``: seconds before a silent worker is killed and replaced (30);
- ``GUNICORN_CONTROL_SOCKET``: a path for gunicorn's control socket (``gunicornc``);
  unset, there is none.

The application is not preloaded: each worker builds its own app and its own
database connection pool after the fork (a pool or a SQLite handle shared across a
fork is corrupt). Jobs run in one elected process (PostgreSQL advisory lock) or in
``flask scheduler run``; never in every worker.
"""

import multiprocessing
import os


def _whole(name: str, default: int) -> int:
    """The environment's ``name`` as a whole number of at least 1 (else ``default``);
    anything else stops gunicorn with a message naming the variable."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise SystemExit(f"{name} must be a whole number of at least 1, not {raw!r}")
    return value


bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = _whole("WEB_CONCURRENCY", min(2 * multiprocessing.cpu_count() + 1, 8))
# Threads, because a booking's request mostly waits: its COMMIT waits for the WAL
# to reach the disk (synchronous_commit on: a confirmed booking survives a crash),
# ~2-20 ms on ordinary disks, while the worker's CPU sits idle. A sync worker
# serves one request at a time, so N sync workers cap creation at N / flush time
# (2 workers x 17 ms: ~110 bookings/s) however little the request computes.
# Threads keep several commits in flight, and PostgreSQL writes the WAL of
# concurrent commits in one flush (group commit), so throughput rises without
# giving up durability. The GIL is released while a thread waits on the database.
# Two threads, not more: a request's Python holds the GIL for most of its time, and
# with 4 threads a worker spent more CPU per booking on handing the GIL around
# (3.9 ms against 3.6) and created 10-25 % fewer bookings a second, while calendars
# answered the same share of hello world (bench/run.py, PostgreSQL, 2 workers).
# That bench books distinct instruments: where many requests wait on one lock (a
# popular instrument, a holiday edit locking many), a thread waiting holds its
# worker's slot; raise GUNICORN_THREADS or WEB_CONCURRENCY for such a load.
# Each thread takes its own pooled connection (SQLAlchemy's default pool: 5, plus
# 10 overflow), and the calendar keeps one per calendar read in flight (at most the
# pool's size: booking/calendar_cache.py), so a host opens at most about
# workers x 2 x threads connections to PostgreSQL: keep that under max_connections
# (or put PgBouncer in front).
# SQLite has one writer, and a booking's CPU is nearly all inside its lock: more
# threads add no throughput (measured when waiting writers still polled in SQLite's
# busy handler, before they queued on labshare.sqlite_lock.SQLiteWriteLock: fewer
# bookings/s than sync workers and a p99 of seconds), so sync workers there.
_SQLITE = os.environ.get("DATABASE_URL", "").startswith("sqlite")
threads = _whole("GUNICORN_THREADS", 1 if _SQLITE else 2)
worker_class = "gthread" if threads > 1 else "sync"  # no long polling: no async workers
timeout = _whole("GUNICORN_TIMEOUT", 30)
graceful_timeout = 30
# No keep-alive: a threaded worker closes an idle kept-alive connection after
# ``keepalive`` seconds, and a request the client sends on it just then is lost
# ("connection reset" for a POST nobody retries; seen with 100 clients in
# tests/e2e/test_scale_out.py). The proxy in front opens connections cheaply.
keepalive = 0
preload_app = False
# gunicorn's control socket defaults to one path per user (~/.gunicorn/gunicorn.ctl),
# so a second server of the same user (tests, bench, a second site) takes it over
# from the first. Off unless a path of the server's own is given.
_CONTROL = os.environ.get("GUNICORN_CONTROL_SOCKET")
if _CONTROL:
    control_socket = _CONTROL
else:
    control_socket_disable = True
# Recycle workers now and then: bounds any slow leak. Not too often: a new worker
# imports and builds the app (about 1.3 s of CPU), which at 5,000 requests cost a
# busy server about a fifth of its throughput.
max_requests = 50000
max_requests_jitter = 5000
limit_request_line = 8190
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")


def post_worker_init(worker):
    """Warm the worker (connection, mappers, compiled statements, locale data)
    before it accepts its first request: see labshare/warmup.py."""
    from labshare.warmup import warm

    warm(worker.wsgi)
