"""The booker is judged as the database holds it under the resource's lock. Its
token (with the user and company) is read before the lock, so an account
deactivated, a company refused or a user moved out of the company while the
request waited must not book; an unchanged booker costs no statement more.
Another process commits the change between the token read and the lock."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, text

from labshare.extensions import db
from labshare.models import Booking, Role
from labshare.timeutil import set_clock
from tests import factories
from tests.helpers import END, NOW, START, bearer, sent_statements

CHANGES = {
    "deactivated": "UPDATE user_account SET active = false WHERE id = :user",
    "company refused": "UPDATE company SET status = 'rejected' WHERE id = :company",
    "e-mail unconfirmed": "UPDATE user_account SET email_verified_at = NULL WHERE id = :user",
}


def _book_after(
    client: Any,
    monkeypatch: pytest.MonkeyPatch,
    change: str,
    ids: dict[str, Any],
    resource_id: int,
    headers: dict[str, str],
) -> Any:
    """POST a booking whose token lookup is followed by ``change`` committed by
    another connection (another worker), before the resource's lock is taken."""
    from labshare.api import auth

    other = create_engine(db.engine.url)
    lookup = auth.user_for_token

    def then_changed(secret: str) -> Any:
        user = lookup(secret)
        with other.begin() as conn:
            conn.execute(text(change), ids)
        return user

    monkeypatch.setattr(auth, "user_for_token", then_changed)
    body = {"resource_id": resource_id, "start": START, "end": END, "purpose": "p"}
    try:
        return client.post("/api/v1/bookings", json=body, headers=headers)
    finally:
        other.dispose()


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_booker_changed_while_waiting_for_the_lock_does_not_book(
    client: Any, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    set_clock(lambda: NOW)
    inst = factories.make_instrument()
    sme = factories.make_user(Role.SME)
    db.session.commit()
    ids = {"user": sme.id, "company": sme.company_id}
    resource_id = inst.id
    headers = bearer(sme)
    db.session.remove()
    response = _book_after(client, monkeypatch, CHANGES[change], ids, resource_id, headers)
    assert response.status_code == 403, response.get_json()
    db.session.rollback()
    assert db.session.scalar(select(func.count(Booking.id))) == 0


def test_an_unchanged_booker_is_not_read_again(client: Any) -> None:
    set_clock(lambda: NOW)
    inst = factories.make_instrument()
    sme = factories.make_user(Role.SME)
    db.session.commit()
    headers = bearer(sme)
    resource_id = inst.id
    db.session.remove()
    body = {"resource_id": resource_id, "start": START, "end": END, "purpose": "p"}
    with sent_statements() as sent:
        response = client.post("/api/v1/bookings", json=body, headers=headers)
    assert response.status_code == 201, response.get_json()
    reads_of_the_user = [s for s in sent if s.startswith("SELECT user_account.")]
    assert reads_of_the_user == []


def test_a_booker_moved_to_another_company_meanwhile_books_for_that_one(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_clock(lambda: NOW)
    inst = factories.make_instrument()
    sme = factories.make_user(Role.SME)
    moved_to = factories.make_company()
    db.session.commit()
    ids = {"user": sme.id, "company": moved_to.id}
    resource_id = inst.id
    headers = bearer(sme)
    db.session.remove()
    move = "UPDATE user_account SET company_id = :company WHERE id = :user"
    response = _book_after(client, monkeypatch, move, ids, resource_id, headers)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["company_id"] == ids["company"]
