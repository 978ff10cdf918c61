"""Passwords are hashed with scrypt everywhere but in the test configuration, whose
one-round PBKDF2 keeps the suite fast; the real method stays tested here."""

from __future__ import annotations

from typing import Any

from werkzeug.security import check_password_hash

from config import Config, DevelopmentConfig, ProductionConfig, TestingConfig
from labshare.accounts import accounts
from labshare.models.user import password_hash_method
from tests.factories import PASSWORD


def test_only_the_test_configuration_hashes_cheaply() -> None:
    assert Config.PASSWORD_HASH_METHOD == "scrypt"
    assert DevelopmentConfig.PASSWORD_HASH_METHOD == "scrypt"
    assert ProductionConfig.PASSWORD_HASH_METHOD == "scrypt"
    assert TestingConfig.PASSWORD_HASH_METHOD == "pbkdf2:sha256:1"


def test_outside_an_app_the_method_is_scrypt() -> None:
    assert password_hash_method() == "scrypt"


def test_real_hash_is_scrypt_and_signs_in(
    db: Any, real_password_hash: None, make_user: Any, login: Any
) -> None:
    user = make_user(email="real@example.com")
    assert user.password_hash.startswith("scrypt:")
    assert user.check_password(PASSWORD)
    assert not user.check_password(PASSWORD + "!")
    db.session.commit()
    login("real@example.com")


def test_test_configuration_hash_is_cheap_and_signs_in(
    app: Any, db: Any, make_user: Any, login: Any
) -> None:
    user = make_user(email="cheap@example.com")
    assert user.password_hash.startswith("pbkdf2:sha256:1$")
    assert user.check_password(PASSWORD)
    assert not user.check_password(PASSWORD + "!")
    db.session.commit()
    login("cheap@example.com")


def test_unknown_address_is_checked_against_a_hash_of_the_same_method(app: Any) -> None:
    # A refused unknown address costs as much as a wrong password for a real one
    assert accounts._dummy_hash("scrypt").startswith("scrypt:")
    assert accounts._dummy_hash(password_hash_method()).startswith("pbkdf2:sha256:1$")
    assert not check_password_hash(accounts._dummy_hash("scrypt"), PASSWORD)
