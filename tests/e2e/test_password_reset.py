"""A forgotten password in a real browser: the reset mail arrives over real SMTP
(aiosmtpd), Chromium follows its link, sets a new password and signs in with it;
the old password no longer works. The account security page at phone width."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from labshare.extensions import db
from labshare.jobs import run_job
from labshare.models import Role
from tests import factories
from tests.e2e.conftest import screenshot
from tests.jobsutil import SmtpServer

pytestmark = pytest.mark.browser

NEW_PASSWORD = "a fresh browser passphrase 31"


@pytest.fixture(scope="module")
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="en-US")
    yield context.new_page()
    context.close()


def _submit(page: Any) -> None:
    page.locator("main form button[type=submit]").first.click()
    page.wait_for_load_state()


def test_browser_follows_the_mailed_reset_link_and_signs_in(
    live_app: tuple[Flask, str], mail_server: SmtpServer, page: Any
) -> None:
    app, base = live_app
    with app.app_context():
        factories.make_user(Role.SME, email="forgetful@example.com", name="健忘的用户")
        db.session.commit()
    page.goto(base + "/login")
    page.locator("a", has_text="Forgot your password?").click()
    page.wait_for_load_state()
    page.fill("input[name=email]", "forgetful@example.com")
    screenshot(page, "password-forgot")
    _submit(page)
    assert "If an account uses this address" in page.locator(".flashes").inner_text()

    with app.app_context():
        run_job("deliver")
    assert len(mail_server.messages) == 1
    msg = mail_server.messages[0]
    assert msg["To"] == "forgetful@example.com"
    text = str(msg.get_body(preferencelist=("plain",)).get_content())
    link = re.search(r"https?://\S+/password/reset/\S+", text)
    assert link, text
    assert link.group(0).startswith(base)

    page.goto(link.group(0))
    page.fill("input[name=new_password]", NEW_PASSWORD)
    page.fill("input[name=confirm]", NEW_PASSWORD)
    screenshot(page, "password-reset")
    _submit(page)
    assert page.url.endswith("/login")
    assert "Your password was changed" in page.locator(".flashes").inner_text()

    # The old password is refused, the new one signs in.
    page.fill("input[name=email]", "forgetful@example.com")
    page.fill("input[name=password]", factories.PASSWORD)
    _submit(page)
    assert "Wrong email address or password" in page.locator("main").inner_text()
    page.fill("input[name=email]", "forgetful@example.com")
    page.fill("input[name=password]", NEW_PASSWORD)
    _submit(page)
    assert page.locator(".user-name").inner_text().strip() == "健忘的用户"

    # The link was used: opening it again says so.
    page.goto(link.group(0))
    assert "This link does not work" in page.locator("main").inner_text()

    page.goto(base + "/account/security")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, width
    screenshot(page, "account-security")
