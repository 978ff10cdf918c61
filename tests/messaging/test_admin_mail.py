"""Admins see the messages the sender could not deliver (failed) or cannot know
about (uncertain), and decide: send again, or mark as delivered. Nobody else may."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from labshare.errors import InvalidTransition, NotAllowed
from labshare.messaging import mail
from labshare.models import AuditLog, Notification, NotificationStatus, Role


def _note(db: Any, user: Any, key: str, status: NotificationStatus, **extra: Any) -> Notification:
    note = Notification(
        dedupe_key=key,
        user_id=user.id,
        kind="booking_confirmed",
        subject=f"subject {key}",
        body_text="body",
        status=status,
        attempts=extra.pop("attempts", 3),
        **extra,
    )
    db.session.add(note)
    db.session.flush()
    return note


@pytest.fixture
def setup(db: Any, make_user: Any) -> Any:
    admin = make_user(Role.ADMIN)
    sme = make_user(Role.SME)
    notes = {
        s: _note(db, sme, s.value, s, last_error=f"error {s.value}")
        for s in (
            NotificationStatus.FAILED,
            NotificationStatus.UNCERTAIN,
            NotificationStatus.SENT,
            NotificationStatus.PENDING,
        )
    }
    db.session.commit()
    return admin, sme, notes


def test_page_lists_only_failed_and_uncertain(client: Any, login: Any, setup: Any) -> None:
    admin, sme, _notes = setup
    login(admin)
    page = client.get("/admin/mail").get_data(as_text=True)
    assert "subject failed" in page and "error failed" in page
    assert "subject uncertain" in page
    assert "subject sent" not in page and "subject pending" not in page
    assert sme.email in page


def test_requeue_makes_the_row_due_again_and_is_audited(
    client: Any, db: Any, login: Any, setup: Any
) -> None:
    admin, _sme, notes = setup
    login(admin)
    note = notes[NotificationStatus.UNCERTAIN]
    response = client.post(f"/admin/mail/{note.id}/requeue")
    assert response.status_code == 302
    db.session.expire_all()
    row = db.session.get(Notification, note.id)
    assert row.status == NotificationStatus.PENDING and row.attempts == 0
    entry = db.session.scalar(select(AuditLog).where(AuditLog.action == "mail.requeue"))
    assert entry is not None and entry.actor_id == admin.id
    assert (entry.from_state, entry.to_state) == ("uncertain", "pending")


def test_mark_delivered(client: Any, db: Any, login: Any, setup: Any) -> None:
    admin, _sme, notes = setup
    login(admin)
    note = notes[NotificationStatus.FAILED]
    assert client.post(f"/admin/mail/{note.id}/delivered").status_code == 302
    db.session.expire_all()
    row = db.session.get(Notification, note.id)
    assert row.status == NotificationStatus.SENT and row.sent_at is not None
    assert "subject failed" not in client.get("/admin/mail").get_data(as_text=True)


def test_a_sent_or_pending_row_cannot_be_handled(
    client: Any, db: Any, login: Any, setup: Any
) -> None:
    admin, _sme, notes = setup
    for status in (NotificationStatus.SENT, NotificationStatus.PENDING):
        note = notes[status]
        with pytest.raises(InvalidTransition):
            mail.requeue(note, admin)
        db.session.rollback()
    login(admin)
    sent = notes[NotificationStatus.SENT]
    client.post(f"/admin/mail/{sent.id}/requeue", follow_redirects=False)
    db.session.expire_all()
    assert db.session.get(Notification, sent.id).status == NotificationStatus.SENT
    assert db.session.scalar(select(AuditLog).where(AuditLog.action == "mail.requeue")) is None


def test_only_admins(client: Any, db: Any, login: Any, make_user: Any, setup: Any) -> None:
    _admin, sme, notes = setup
    note = notes[NotificationStatus.FAILED]
    with pytest.raises(NotAllowed):
        mail.requeue(note, sme)
    db.session.rollback()
    staff = make_user(Role.STAFF)
    db.session.commit()
    for user in (sme, staff):
        login(user)
        assert client.get("/admin/mail").status_code == 403
        assert client.post(f"/admin/mail/{note.id}/requeue").status_code == 403
    db.session.expire_all()
    assert db.session.get(Notification, note.id).status == NotificationStatus.FAILED


def test_unknown_message_is_404(client: Any, login: Any, setup: Any) -> None:
    admin, _sme, _notes = setup
    login(admin)
    assert client.post("/admin/mail/999999/requeue").status_code == 404
    assert client.post("/admin/mail/1/other").status_code == 404
