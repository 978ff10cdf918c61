"""The unread count beside the notifications link: counted once per page, gone when
everything is read, mail-only messages never counted."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event

from labshare.extensions import db as _db
from labshare.messaging import notify
from labshare.models import Role


def _queue(user: Any, n: int, kind: str = "booking_event") -> None:
    for i in range(n):
        notify.enqueue(user, kind, subject=f"s{i}", body_text="b", dedupe_key=f"t:{kind}:{i}")


def _nav_count(html: str) -> str | None:
    marker = 'class="badge nav-count">'
    if marker not in html:
        return None
    return html.split(marker, 1)[1].split("<", 1)[0]


def test_count_shown_and_cleared(app: Any, client: Any, login: Any, make_user: Any) -> None:
    user = make_user(Role.SME)
    _queue(user, 3)
    _queue(user, 1, kind="password_reset")  # mail only: not in the inbox, not counted
    _db.session.commit()
    login(user)
    html = client.get("/").get_data(as_text=True)
    assert _nav_count(html) == "3"
    page = client.get("/notifications").get_data(as_text=True)
    token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    client.post("/notifications/read-all", data={"csrf_token": token})
    assert _nav_count(client.get("/").get_data(as_text=True)) is None


def test_counted_once_per_page(app: Any, client: Any, login: Any, make_user: Any) -> None:
    user = make_user(Role.STAFF)
    _queue(user, 2)
    _db.session.commit()
    login(user)
    counts: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_a: Any) -> None:
        if "count(notification.id)" in statement.lower():
            counts.append(statement)

    engine = _db.engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        html = client.get("/notifications").get_data(as_text=True)
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert _nav_count(html) == "2"
    # the page's own unread figure, its list total and the link's count: the link adds one
    assert len(counts) <= 3
