"""Configuration classes. This module is the only reader of ``os.environ``.

Every setting is an environment variable, documented in README.md.
"""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
INSTANCE_DIR = Path(os.environ.get("LABSHARE_INSTANCE_DIR", BASE_DIR / "instance"))


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


class SettingError(ValueError):
    """An environment variable holds a value its setting cannot take. Raised while
    this module is imported, so a server with a mistyped setting does not start
    (``SQLITE_WRITE_LOCK=ture`` must not quietly turn the lock off)."""


def _bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    word = value.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise SettingError(
        f"{name}={value!r} is not a yes/no value: use one of " + ", ".join(sorted(_TRUE | _FALSE))
    )


def _int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise SettingError(f"{name}={value!r} is not a whole number") from None


def _list_int(name: str, default: list[int]) -> list[int]:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise SettingError(
            f"{name}={value!r} is not a comma-separated list of whole numbers"
        ) from None


class Config:
    SECRET_KEY: str | None = os.environ.get("SECRET_KEY")
    SQLALCHEMY_DATABASE_URI: str | None = os.environ.get("DATABASE_URL")
    # No pool_pre_ping (a round trip before every checkout): a connection is pinged
    # only after sitting idle in the pool (labshare/database.py), and replaced
    # after pool_recycle seconds whatever happens.
    SQLALCHEMY_ENGINE_OPTIONS: dict = {"pool_recycle": 1800}
    INSTANCE_DIR = str(INSTANCE_DIR)

    # Sessions and cookies
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = _bool("SESSION_COOKIE_SECURE", False)
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    REMEMBER_COOKIE_SECURE = _bool("SESSION_COOKIE_SECURE", False)
    # Werkzeug's method for new password hashes: scrypt, deliberately slow
    PASSWORD_HASH_METHOD = "scrypt"  # noqa: S105 - a method, not a password
    MAX_CONTENT_LENGTH = _int("MAX_CONTENT_LENGTH", 1024 * 1024)
    WTF_CSRF_ENABLED = True
    WTF_CSRF_TIME_LIMIT = None

    # Languages
    BABEL_DEFAULT_LOCALE = os.environ.get("BABEL_DEFAULT_LOCALE", "zh_CN")
    BABEL_DEFAULT_TIMEZONE = "UTC"
    LANGUAGES = ["zh_CN", "en"]
    DEFAULT_TIMEZONE = os.environ.get("LABSHARE_DEFAULT_TIMEZONE", "Asia/Shanghai")

    # API
    # Availability answered before Flask when its document is at hand (labshare/fastpath.py)
    CALENDAR_FAST_PATH = _bool("CALENDAR_FAST_PATH", True)
    SEARCH_FAST_PATH = _bool("SEARCH_FAST_PATH", True)
    CALENDAR_CACHE_SIZE = _int("CALENDAR_CACHE_SIZE", 4096)
    # Search answers kept per process (labshare/catalogue/search_cache.py); 0: none
    SEARCH_CACHE_BYTES = _int("SEARCH_CACHE_BYTES", 16 * 1024 * 1024)
    # Resources whose candidate columns and calendar rows the window searches keep
    # per process (labshare/catalogue/free_memo.py); 0: none
    FREE_TIME_MEMO_RESOURCES = _int("FREE_TIME_MEMO_RESOURCES", 5000)
    # Page rows (and their JSON) the searches keep per process at the catalogue's
    # version (labshare/catalogue/row_memo.py); 0: none
    SEARCH_ROW_MEMO = _int("SEARCH_ROW_MEMO", 5000)
    # Capability matches ranked from a per-version list per measurand
    # (labshare/catalogue/capability_index.py); off: ranked in SQL
    CAPABILITY_INDEX = _bool("CAPABILITY_INDEX", True)
    # Text searches (words only) ranked from the tokens each process keeps in memory
    # while the catalogue is unchanged (labshare/catalogue/text_index.py); off: in SQL
    TEXT_INDEX = _bool("TEXT_INDEX", True)
    API_TOKEN_TTL_HOURS = _int("API_TOKEN_TTL_HOURS", 24)
    PUBLIC_BASE_URL = os.environ.get("PUBLIC_BASE_URL", "http://127.0.0.1:5000")

    # Scheduler
    SCHEDULER_ENABLED = _bool("SCHEDULER_ENABLED", False)
    REMINDER_HOURS = _list_int("REMINDER_HOURS", [24, 1])
    PENDING_NUDGE_HOURS = _int("PENDING_NUDGE_HOURS", 24)
    NO_SHOW_GRACE_MINUTES = _int("NO_SHOW_GRACE_MINUTES", 30)
    # A request or job that loses a race (deadlock, serialization failure) runs again.
    DB_RETRY_ATTEMPTS = _int("DB_RETRY_ATTEMPTS", 4)
    # SQLite: writers queue on a flock next to the database file (labshare/database.py)
    # rather than polling in SQLite's busy handler.
    SQLITE_WRITE_LOCK = _bool("SQLITE_WRITE_LOCK", True)
    SCHEDULER_LEADER_RETRY_SECONDS = _int("SCHEDULER_LEADER_RETRY_SECONDS", 15)

    # Mail (the embedded default, MAIL_SERVER unset, logs messages and keeps them in-app)
    MAIL_SERVER = os.environ.get("MAIL_SERVER")
    MAIL_PORT = _int("MAIL_PORT", 25)
    MAIL_USE_TLS = _bool("MAIL_USE_TLS", False)
    MAIL_USE_SSL = _bool("MAIL_USE_SSL", False)
    MAIL_USERNAME = os.environ.get("MAIL_USERNAME")
    MAIL_PASSWORD = os.environ.get("MAIL_PASSWORD")
    MAIL_MAX_ATTEMPTS = _int("MAIL_MAX_ATTEMPTS", 8)
    MAIL_BACKOFF_SECONDS = _int("MAIL_BACKOFF_SECONDS", 60)
    MAIL_BACKOFF_CAP_SECONDS = _int("MAIL_BACKOFF_CAP_SECONDS", 6 * 3600)
    MAIL_CLAIM_LEASE_SECONDS = _int("MAIL_CLAIM_LEASE_SECONDS", 15 * 60)
    MAIL_DEFAULT_SENDER = os.environ.get("MAIL_DEFAULT_SENDER", "LabShare <noreply@labshare.local>")

    # Rate limits
    RATELIMIT_ENABLED = _bool("RATELIMIT_ENABLED", True)
    RATELIMIT_STORAGE_URI = os.environ.get("RATELIMIT_STORAGE_URI", "memory://")
    RATELIMIT_LOGIN = os.environ.get("RATELIMIT_LOGIN", "10/minute;100/hour")
    RATELIMIT_TOKEN = os.environ.get("RATELIMIT_TOKEN", "10/minute;100/hour")
    RATELIMIT_REGISTER = os.environ.get("RATELIMIT_REGISTER", "10/hour")
    RATELIMIT_BOOKING = os.environ.get("RATELIMIT_BOOKING", "30/minute")

    # Service orders: certificate PDFs (labshare/orders/storage.py)
    CERTIFICATE_DIR = os.environ.get("CERTIFICATE_DIR")  # default: INSTANCE_DIR/certificates
    CERTIFICATE_MAX_BYTES = _int("CERTIFICATE_MAX_BYTES", 10 * 1024 * 1024)
    RATELIMIT_VERIFY = os.environ.get("RATELIMIT_VERIFY", "10/minute;100/hour")

    LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO")

    # Behind N reverse proxies that each append to X-Forwarded-For/-Proto: trust the
    # last N hops (werkzeug's ProxyFix). 0: no proxy, the socket's address is the client.
    TRUSTED_PROXY_COUNT = _int("TRUSTED_PROXY_COUNT", 0)

    # Accounts: personal API tokens' default lifetime, the password reset and e-mail
    # verification links' lifetimes, and the login throttle per (account, address).
    PERSONAL_TOKEN_DAYS = _int("PERSONAL_TOKEN_DAYS", 90)
    PASSWORD_RESET_MINUTES = _int("PASSWORD_RESET_MINUTES", 30)
    EMAIL_VERIFY_HOURS = _int("EMAIL_VERIFY_HOURS", 72)
    LOGIN_THROTTLE_AFTER = _int("LOGIN_THROTTLE_AFTER", 5)
    LOGIN_THROTTLE_MAX_SECONDS = _int("LOGIN_THROTTLE_MAX_SECONDS", 15 * 60)
    IS_PRODUCTION = False


class DevelopmentConfig(Config):
    DEBUG = False
    # A development-only key, generated per instance directory: never used in production.
    SQLALCHEMY_DATABASE_URI = os.environ.get(
        "DATABASE_URL", f"sqlite:///{INSTANCE_DIR / 'labshare.db'}"
    )
    SCHEDULER_ENABLED = _bool("SCHEDULER_ENABLED", True)


class TestingConfig(Config):
    TESTING = True
    SECRET_KEY = "testing-only-secret"  # noqa: S105 - tests only
    SQLALCHEMY_DATABASE_URI = os.environ.get("TEST_DATABASE_URL", "sqlite://")
    WTF_CSRF_ENABLED = False
    RATELIMIT_ENABLED = False
    BABEL_DEFAULT_LOCALE = "en"
    # One PBKDF2 round instead of scrypt's ~0.2 s per hash and per check: the suite
    # makes and signs in thousands of users (tests/accounts/test_password_hashing.py keeps
    # the real method tested)
    PASSWORD_HASH_METHOD = "pbkdf2:sha256:1"  # noqa: S105 - a method, not a password
    # Read in a thread of its own when first asked, the text index would answer some of
    # a test's searches and not others: the tests that want it turn it on and read it
    # (tests/catalogue/test_text_index.py); the others test the database's search.
    TEXT_INDEX = False


#: The shortest SECRET_KEY production accepts (``python -c "import secrets;
#: print(secrets.token_hex(32))"`` gives 64 characters).
MIN_SECRET_KEY_LENGTH = 32


def secret_key_problem(key: str | None) -> str | None:
    """Why ``key`` must not sign production sessions and links, or None if it may."""
    if not key:
        return "Production configuration needs SECRET_KEY"
    if key.strip().lower().startswith(("change-me", "changeme", "change_me")):
        return "SECRET_KEY is still the placeholder from deploy/env.example; set a random one"
    if len(key) < MIN_SECRET_KEY_LENGTH:
        return f"SECRET_KEY must have at least {MIN_SECRET_KEY_LENGTH} characters"
    return None


class ProductionConfig(Config):
    SESSION_COOKIE_SECURE = _bool("SESSION_COOKIE_SECURE", True)
    REMEMBER_COOKIE_SECURE = _bool("SESSION_COOKIE_SECURE", True)
    IS_PRODUCTION = True

    @classmethod
    def check(cls) -> None:
        missing = [k for k in ("SECRET_KEY", "SQLALCHEMY_DATABASE_URI") if not getattr(cls, k)]
        if missing:
            names = {"SECRET_KEY": "SECRET_KEY", "SQLALCHEMY_DATABASE_URI": "DATABASE_URL"}
            raise RuntimeError(
                "Production configuration needs " + ", ".join(names[m] for m in missing)
            )
        problem = secret_key_problem(cls.SECRET_KEY)
        if problem:
            raise RuntimeError(problem)


CONFIGS: dict[str, type[Config]] = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}


def config_from_env() -> type[Config]:
    name = os.environ.get("LABSHARE_CONFIG", "development")
    try:
        return CONFIGS[name]
    except KeyError:
        raise SettingError(
            f"LABSHARE_CONFIG={name!r} is not a configuration: use one of " + ", ".join(CONFIGS)
        ) from None
