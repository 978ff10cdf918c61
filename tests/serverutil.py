"""Helpers for tests that run the app as real servers: a free port, a fresh
PostgreSQL database, gunicorn started and stopped in its own process."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sibling_postgres_url(base_url: str, suffix: str) -> str:
    """``<database>_<suffix>`` on the server of ``base_url``."""
    u = make_url(base_url)
    return u.set(database=f"{u.database}_{suffix}").render_as_string(hide_password=False)


def fresh_postgres(url: str, *, drop_only: bool = False) -> None:
    """Drop the database of ``url`` (ending its sessions first) and create it anew
    (``drop_only``: just drop it)."""
    u = make_url(url)
    admin = create_engine(u.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :d AND pid <> pg_backend_pid()"
            ),
            {"d": u.database},
        )
        conn.execute(text(f'DROP DATABASE IF EXISTS "{u.database}"'))
        if not drop_only:
            conn.execute(text(f'CREATE DATABASE "{u.database}"'))
    admin.dispose()


def server_database(kind: str, tmp: Path, suffix: str) -> str:
    """An empty database for a test that runs real servers: a SQLite file in ``tmp``
    (``kind`` "sqlite"), or ``<test database>_<suffix>`` on the test PostgreSQL,
    dropped and created anew (skips the test when PostgreSQL is not reachable)."""
    import pytest

    from tests.conftest import PG_URL, postgres_available

    if kind == "sqlite":
        return f"sqlite:///{tmp / f'{suffix}.db'}"
    if not postgres_available():
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}")
    url = sibling_postgres_url(PG_URL, suffix)
    fresh_postgres(url)
    return url


def production_env(url: str, secret_key: str, **extra: str) -> dict[str, str]:
    """The environment of a production server on ``url`` for a test: no scheduler,
    quiet logs, plus ``extra``."""
    return {
        "LABSHARE_CONFIG": "production",
        "SECRET_KEY": secret_key,
        "DATABASE_URL": url,
        "SCHEDULER_ENABLED": "false",
        "LOG_LEVEL": "WARNING",
        **extra,
    }


def wait_until_up(
    base: str, proc: subprocess.Popen[bytes], log_path: Path, timeout: float = 90
) -> None:
    # Generous: a worker imports and warms the app in ~1.3 s of CPU, and on a loaded
    # 2-core host (CI runs two test workers next to the servers) that took over 30 s.
    # A server that died is reported at once (proc.poll), so the wait costs nothing then.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"gunicorn exited with {proc.returncode}:\n{tail}")
        try:
            requests.get(f"{base}/healthz", timeout=10)
            return
        except requests.RequestException:
            time.sleep(0.1)
    tail = log_path.read_text(errors="replace")[-3000:]
    raise RuntimeError(f"gunicorn did not answer in {timeout:.0f} s:\n{tail}")


@dataclass
class Server:
    base: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    log: IO[bytes]

    def wait(self) -> None:
        """Return once the server answers; stop it if it never does."""
        try:
            wait_until_up(self.base, self.proc, self.log_path)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> str:
        """Stop gunicorn and return its log."""
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        return self.log_path.read_text(errors="replace")


def start_gunicorn(
    env: dict[str, str], log_path: Path, workers: int = 2, *, wait: bool = True
) -> Server:
    """gunicorn on a free port with ``env`` added to this process's environment;
    returns once it answers /healthz (with ``wait=False`` at once: call
    ``server.wait()``)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            str(workers),
            "--bind",
            f"127.0.0.1:{port}",
            "--timeout",
            "60",
            "labshare:create_app()",
        ],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = Server(base, proc, log_path, log)
    if wait:
        server.wait()
    return server


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str:
        return next(v for k, v in self.headers if k.lower() == name.lower())


def fetch(base: str, method: str, path: str, headers: dict[str, str] | None = None) -> Answer:
    """One request on a connection of its own (http.client: the bytes as sent)."""
    host, port = urllib.parse.urlsplit(base).netloc.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return Answer(response.status, response.getheaders(), response.read())
    finally:
        conn.close()
