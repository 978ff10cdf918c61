"""What the search keeps per process (its page rows and their JSON, row_memo.py; each
resource's candidate and calendar rows, free_memo.py) under gunicorn, against
another process that changes the catalogue: two servers on one database without
the answer cache keeping them, one keeping nothing, and one keeping them with the
answer cache on. Four threads search (capability, text, capability with a free
window) the first and the third while another process renames every instrument, one
generation per transaction: no answer holds a name older than the generation
committed before its request was sent, a page without a window holds one generation
(its rows are one state of the catalogue, as a page read in one statement), and
afterwards the three servers give the same bytes. On SQLite and on PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine, text

from config import TestingConfig
from tests.serverutil import Server, fetch, production_env, server_database, start_gunicorn

pytestmark = pytest.mark.slow

SH = ZoneInfo("Asia/Shanghai")
INSTRUMENTS = 6
GENERATIONS = 12
NAME = re.compile(r"压力计 第(\d+)代")
_DAY = dt.date.today() + dt.timedelta(days=21 - dt.date.today().weekday())  # a Monday
WINDOW = {
    "available_from": dt.datetime.combine(_DAY, dt.time(9), SH).isoformat(),
    "available_to": dt.datetime.combine(_DAY, dt.time(12), SH).isoformat(),
}
CAPABILITY = {"measurand": "pressure", "value": "5", "unit": "MPa"}
SEARCHES = [
    "/api/v1/resources?" + urllib.parse.urlencode(p)
    for p in (CAPABILITY, {"q": "压力计"}, {**CAPABILITY, **WINDOW}, {**CAPABILITY, "per_page": 3})
]


@dataclass
class Pair:
    url: str
    kept: Server
    plain: Server
    cached: Server
    ids: list[int]


def build(url: str, instance: Path) -> list[int]:
    import flask_migrate

    from labshare import create_app
    from labshare.extensions import db
    from tests import factories

    app = create_app(TestingConfig, SQLALCHEMY_DATABASE_URI=url, INSTANCE_DIR=str(instance))
    with app.app_context():
        flask_migrate.upgrade()
        lab = factories.make_lab(
            capacity=INSTRUMENTS, hours=factories.weekday_hours("08:00", "18:00")
        )
        made = [
            factories.make_instrument(lab=lab, name=f"压力计 第0代 {n}", model=None)
            for n in range(INSTRUMENTS)
        ]
        db.session.commit()
        ids = [i.id for i in made]
        db.engine.dispose()
    return ids


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def pair(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pair]:
    tmp = tmp_path_factory.mktemp(f"search-memo-{request.param}")
    url = server_database(request.param, tmp, "search_memo")
    ids = build(url, tmp / "instance")
    env = production_env(
        url,
        "search-memo-test-secret-key-of-at-least-32-characters",
        LABSHARE_INSTANCE_DIR=str(tmp / "instance"),
        RATELIMIT_ENABLED="false",
        SEARCH_CACHE_BYTES="0",
    )
    kept = start_gunicorn(env, tmp / "kept.log", wait=False)
    plain = start_gunicorn(
        {**env, "SEARCH_ROW_MEMO": "0", "FREE_TIME_MEMO_RESOURCES": "0"},
        tmp / "plain.log",
        wait=False,
    )
    cached = start_gunicorn(
        {**env, "SEARCH_CACHE_BYTES": "16777216"}, tmp / "cached.log", wait=False
    )
    try:
        kept.wait()
        plain.wait()
        cached.wait()
        yield Pair(url, kept, plain, cached, ids)
    finally:
        logs = kept.stop() + plain.stop() + cached.stop()
        if request.param == "postgresql":
            create_engine(url).dispose()
    assert "Traceback" not in logs, logs[-4000:]


def fetch_ok(base: str, path: str) -> bytes:
    answer = fetch(base, "GET", path)
    assert answer.status == 200, answer.body[:500]
    return answer.body


def generations(body: bytes) -> list[int]:
    found = []
    for item in json.loads(body)["items"]:
        match = NAME.match(item["name"])
        assert match is not None, item["name"]
        found.append(int(match.group(1)))
    return found


def test_no_answer_is_older_than_the_catalogue_and_both_agree_after(pair: Pair) -> None:
    committed = 0  # the generation committed last (before an answer's request: its floor)
    lock = threading.Lock()
    stop = threading.Event()
    failed: list[BaseException] = []
    answered = [0]

    def search(n: int) -> None:
        try:
            k = n
            while not stop.is_set():
                path = SEARCHES[k % len(SEARCHES)]
                server = (pair.kept, pair.cached)[n % 2]
                k += 1
                with lock:
                    floor = committed
                got = generations(fetch_ok(server.base, path))
                assert got, path
                assert min(got) >= floor, (path, floor, got)
                if "available_from" not in path:
                    assert len(set(got)) == 1, (path, got)
                with lock:
                    answered[0] += 1
        except BaseException as exc:  # re-raised below
            failed.append(exc)
            stop.set()

    threads = [threading.Thread(target=search, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    engine = create_engine(pair.url)
    try:
        for generation in range(1, GENERATIONS + 1):
            if stop.wait(0.15):
                break
            with engine.begin() as conn:  # one generation per transaction
                for n, rid in enumerate(pair.ids):
                    conn.execute(
                        text("UPDATE resource SET name = :name WHERE id = :id"),
                        {"name": f"压力计 第{generation}代 {n}", "id": rid},
                    )
            with lock:
                committed = generation
        stop.wait(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
        engine.dispose()
    assert not failed, failed
    assert answered[0] > 4 * len(SEARCHES)
    for path in SEARCHES:
        body = fetch_ok(pair.kept.base, path)
        assert set(generations(body)) == {GENERATIONS}, path
        assert body == fetch_ok(pair.plain.base, path) == fetch_ok(pair.cached.base, path), path
