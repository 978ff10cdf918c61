"""Rate limits on login, token, registration and booking creation (Flask-Limiter).

The test configuration switches the limiter off; these tests build an app of their
own with it on and small limits ("N per day", so no window boundary falls inside a
test). The limiter object is process-global: the fixture re-binds it to the session
app (limits off) afterwards.
"""

from __future__ import annotations

from typing import Any

import pytest

from labshare.extensions import db as _db
from labshare.models import Role
from labshare.timeutil import set_clock
from tests.factories import PASSWORD
from tests.helpers import END, NOW, START, bearer, error_of

REDIS_URI = "redis://127.0.0.1:6379/15"


def _login(client: Any, email: str, password: str = "wrong password 123") -> Any:
    return client.post("/login", data={"email": email, "password": password})


def test_the_test_configuration_switches_limits_off(client: Any, make_user: Any, db: Any) -> None:
    user = make_user(Role.SME)
    db.session.commit()
    statuses = {_login(client, user.email).status_code for _ in range(15)}
    assert statuses == {401}


def test_login_posts_are_limited_per_address(limited: Any, make_user: Any, db: Any) -> None:
    user = make_user(Role.SME)
    db.session.commit()
    client = limited().test_client()
    assert client.get("/login").status_code == 200  # GETs do not count
    assert [_login(client, user.email).status_code for _ in range(3)] == [401, 401, 401]
    refused = _login(client, user.email, PASSWORD)  # even the right password
    assert refused.status_code == 429
    assert "text/html" in refused.content_type
    assert "Traceback" not in refused.get_data(as_text=True)
    assert client.get("/login").status_code == 200
    other = client.post(
        "/login",
        data={"email": user.email, "password": PASSWORD},
        environ_base={"REMOTE_ADDR": "10.0.0.9"},
    )
    assert other.status_code == 302  # another address is not affected


def test_token_endpoint_answers_429_with_the_api_error(
    limited: Any, make_user: Any, db: Any
) -> None:
    user = make_user(Role.SME)
    db.session.commit()
    client = limited().test_client()
    body = {"email": user.email, "password": "wrong password 123"}
    assert [client.post("/api/v1/auth/token", json=body).status_code for _ in range(3)] == [
        401,
        401,
        401,
    ]
    response = client.post("/api/v1/auth/token", json={**body, "password": PASSWORD})
    assert response.status_code == 429
    error = error_of(response)
    assert error["code"] == "rate_limited"
    assert error["message"]


def test_registration_is_limited(limited: Any) -> None:
    client = limited().test_client()
    statuses = [
        client.post("/register", data={"email": f"x{i}@example.com"}).status_code for i in range(3)
    ]
    assert statuses == [422, 422, 429]


def test_api_booking_creation_is_limited_per_caller(
    limited: Any, make_instrument: Any, make_user: Any, db: Any
) -> None:
    from labshare.timeutil import set_clock

    set_clock(lambda: NOW)
    inst = make_instrument()
    first, second = make_user(Role.SME), make_user(Role.SME)
    headers_first, headers_second = bearer(first), bearer(second)
    client = limited().test_client()
    payload = {"resource_id": inst.id, "start": START, "end": END, "purpose": "test"}
    statuses = [
        client.post("/api/v1/bookings", json=payload, headers=headers_first).status_code
        for _ in range(3)
    ]
    assert statuses[0] == 201 and statuses[1] == 409  # the second one overlaps
    assert statuses[2] == 429
    assert (
        error_of(client.post("/api/v1/bookings", json=payload, headers=headers_first))["code"]
        == "rate_limited"
    )
    # Another company's token has its own budget, though it shares the address.
    other = client.post("/api/v1/bookings", json=payload, headers=headers_second)
    assert other.status_code == 409


def test_web_booking_form_posts_are_limited(
    limited: Any, make_instrument: Any, make_user: Any, db: Any
) -> None:
    inst = make_instrument()
    user = make_user(Role.SME)
    db.session.commit()
    client = limited(RATELIMIT_LOGIN="10 per day").test_client()
    assert _login(client, user.email, PASSWORD).status_code == 302
    url = f"/resources/{inst.id}/book"
    assert client.get(url).status_code == 200
    statuses = [client.post(url, data={}).status_code for _ in range(3)]
    assert statuses == [422, 422, 429]
    assert client.get(url).status_code == 200  # looking at the form is not limited


def _redis() -> Any:
    redis = pytest.importorskip("redis")
    conn = redis.Redis.from_url(REDIS_URI)
    try:
        conn.ping()
    except redis.exceptions.ConnectionError:
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    conn.flushdb()
    return conn


def _token_attempt(client: Any, email: str) -> int:
    body = {"email": email, "password": "wrong password 123"}
    return int(client.post("/api/v1/auth/token", json=body).status_code)


def test_redis_storage_counts_across_app_instances(limited: Any, make_user: Any, db: Any) -> None:
    conn = _redis()
    user = make_user(Role.SME)
    db.session.commit()
    first = limited(REDIS_URI).test_client()
    assert [_token_attempt(first, user.email) for _ in range(2)] == [401, 401]
    # A second app instance (as on another host) binds a storage of its own to the same
    # Redis: it sees the two attempts already made.
    second = limited(REDIS_URI).test_client()
    assert _token_attempt(second, user.email) == 401
    assert _token_attempt(second, user.email) == 429
    assert _token_attempt(first, user.email) == 429
    assert any(b"LIMITER" in key for key in conn.keys("*"))
    conn.flushdb()


def test_memory_storage_counts_only_per_instance(limited: Any, make_user: Any, db: Any) -> None:
    """The contrast: with memory:// a fresh instance starts from zero (PITFALLS: N
    workers allow N x the limit), which is why production uses Redis."""
    user = make_user(Role.SME)
    db.session.commit()
    first = limited().test_client()
    assert [_token_attempt(first, user.email) for _ in range(3)] == [401, 401, 401]
    assert _token_attempt(first, user.email) == 429
    second = limited().test_client()
    assert _token_attempt(second, user.email) == 401


# -- the booking rate-limit key -----------------------------------------------------------


def test_made_up_bearer_headers_share_the_address_bucket(
    limited: Any, make_instrument: Any, db: Any
) -> None:
    inst = make_instrument()
    db.session.commit()
    client = limited().test_client()
    payload = {"resource_id": inst.id, "start": START, "end": END, "purpose": "x"}
    statuses = [
        client.post(
            "/api/v1/bookings", json=payload, headers={"Authorization": f"Bearer made-up-{n}"}
        ).status_code
        for n in range(3)
    ]
    assert statuses == [401, 401, 429]


def test_two_tokens_of_one_user_share_a_bucket(
    limited: Any, make_instrument: Any, make_user: Any, db: Any
) -> None:
    set_clock(lambda: NOW)
    inst = make_instrument()
    user = make_user(Role.SME)
    db.session.commit()
    first, second = bearer(user), bearer(user)
    client = limited().test_client()
    payload = {"resource_id": inst.id, "start": START, "end": END, "purpose": "x"}
    assert client.post("/api/v1/bookings", json=payload, headers=first).status_code == 201
    assert client.post("/api/v1/bookings", json=payload, headers=second).status_code == 409
    assert client.post("/api/v1/bookings", json=payload, headers=second).status_code == 429


def test_the_rate_limit_key_and_the_handler_share_one_token_lookup(
    limited: Any, make_instrument: Any, make_user: Any, db: Any
) -> None:
    """Keying the limit on the token's user costs no second query."""
    from sqlalchemy import event

    set_clock(lambda: NOW)
    inst = make_instrument()
    user = make_user(Role.SME)
    db.session.commit()
    headers = bearer(user)
    limited_app = limited(RATELIMIT_BOOKING="10 per day")
    client = limited_app.test_client()
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    with limited_app.app_context():
        engine = _db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        payload = {"resource_id": inst.id, "start": START, "end": END, "purpose": "x"}
        assert client.post("/api/v1/bookings", json=payload, headers=headers).status_code == 201
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert sum("FROM api_token" in s for s in statements) == 1
