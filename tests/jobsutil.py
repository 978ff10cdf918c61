"""Helpers for the scheduler and mail tests: a real SMTP server (aiosmtpd) on a
free port (the ``smtp`` fixture of tests/conftest.py), a frozen clock, and child
processes that run jobs against the test database."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import threading
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from flask import Flask

from labshare.timeutil import set_clock

T0 = dt.datetime(2030, 1, 7, 1, 0, tzinfo=dt.UTC)  # 09:00 in Asia/Shanghai, a Monday


def freeze(when: dt.datetime) -> None:
    set_clock(lambda: when)


class Recorder:
    """An aiosmtpd handler that keeps what it accepts; ``mode`` "451"/"550" refuses."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.mode = "ok"
        self.lock = threading.Lock()

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if self.mode == "550":
            return "550 5.1.1 mailbox unavailable"
        if self.mode == "451":
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        with self.lock:
            self.messages.append(msg)  # type: ignore[arg-type]
        return "250 Message accepted"


class SmtpServer:
    def __init__(self, port: int) -> None:
        self.port = port
        self.recorder = Recorder()
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.recorder, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    @property
    def messages(self) -> list[EmailMessage]:
        return self.recorder.messages


def child_app(database_url: str, instance_dir: str, mail_port: int | None) -> Flask:
    from config import TestingConfig
    from labshare import create_app

    overrides: dict[str, Any] = {
        "SQLALCHEMY_DATABASE_URI": database_url,
        "INSTANCE_DIR": instance_dir,
    }
    if mail_port is not None:
        overrides.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=mail_port)
    return create_app(TestingConfig, **overrides)


def run_jobs_in_child(
    database_url: str,
    instance_dir: str,
    mail_port: int,
    now_iso: str,
    names: list[str],
    rounds: int,
) -> None:
    """Target of a child process: run ``names`` ``rounds`` times at a frozen time."""
    from labshare.jobs import run_job

    freeze(dt.datetime.fromisoformat(now_iso))
    app = child_app(database_url, instance_dir, mail_port)
    with app.app_context():
        for _ in range(rounds):
            for name in names:
                run_job(name)


def campaign_in_child(database_url: str, instance_dir: str, retry: float, queue: Any) -> None:
    """Target of a child process: campaign for leadership, report when leading."""
    import os
    import time

    from labshare.jobs.scheduler import SchedulerRunner

    app = child_app(database_url, instance_dir, None)
    runner = SchedulerRunner(app, retry_seconds=retry).start()
    runner.became_leader.wait()
    jobs = sorted(j.id for j in runner.scheduler.get_jobs()) if runner.scheduler else []
    queue.put((os.getpid(), time.monotonic(), jobs))
    threading.Event().wait(600)  # lead until killed
