"""End-to-end fixtures: the app served by a real WSGI server in a thread over a
temporary SQLite file, and headless Debian Chromium driven by Playwright.

CI installs the browser with ``apt-get install -y chromium``; without it these
tests skip, and CI (LABSHARE_NO_SKIP=1) turns the skip into a failure.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from config import TestingConfig
from labshare import create_app
from labshare.extensions import db
from tests import factories
from tests.jobsutil import SmtpServer
from tests.serverutil import free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
VIEWPORTS = {"desktop": (1280, 800), "phone": (390, 844)}


@pytest.fixture(scope="module")
def live_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Flask, str]]:
    import flask_migrate

    folder = tmp_path_factory.mktemp("e2e")
    app = create_app(
        TestingConfig,
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{folder / 'e2e.db'}",
        INSTANCE_DIR=str(folder / "instance"),
        WTF_CSRF_ENABLED=True,
        RATELIMIT_ENABLED=False,
        BABEL_DEFAULT_LOCALE="en",
    )
    with app.app_context():
        flask_migrate.upgrade()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    base = f"http://127.0.0.1:{server.server_port}"
    app.config["PUBLIC_BASE_URL"] = base
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield app, base
    finally:
        server.shutdown()
        thread.join(timeout=10)
        with app.app_context():
            db.engine.dispose()


@pytest.fixture(scope="module")
def mail_server(live_app: tuple[Flask, str]) -> Iterator[SmtpServer]:
    """A real SMTP server (aiosmtpd) the live app sends its mail to."""
    app, _base = live_app
    server = SmtpServer(free_port())
    server.start()
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=server.port)
    yield server
    server.stop()
    app.config.update(MAIL_SERVER=None)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip("Debian chromium is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield instance
        finally:
            instance.close()


def screenshot(page: Any, name: str) -> None:
    """Save the page at desktop and phone size under tests/artifacts/."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    original = page.viewport_size
    for width, height in VIEWPORTS.values():
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(ARTIFACTS / f"{name}-{width}x{height}.png"), full_page=True)
    if original:
        page.set_viewport_size(original)


def login_page(browser: Any, base: str, email: str, viewport: tuple[int, int] = (1280, 800)) -> Any:
    """A fresh browser context signed in as ``email`` (factories.PASSWORD), in English."""
    width, height = viewport
    context = browser.new_context(viewport={"width": width, "height": height}, locale="en-US")
    page = context.new_page()
    page.goto(base + "/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", factories.PASSWORD)
    page.locator("main form button[type=submit]").click()
    page.wait_for_load_state()
    return page
