from __future__ import annotations

import datetime as dt
import secrets
from typing import TYPE_CHECKING

from flask import current_app, has_app_context
from sqlalchemy import CheckConstraint, ForeignKey, String, false
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from labshare.models.base import Base, UTCDateTime
from labshare.models.enums import Role, str_enum
from labshare.timeutil import utcnow

if TYPE_CHECKING:
    from labshare.models.company import Company
    from labshare.models.institute import Institute


def new_session_nonce() -> str:
    return secrets.token_hex(8)


def password_hash_method() -> str:
    """The app's PASSWORD_HASH_METHOD (config.py): scrypt but in the test configuration."""
    if has_app_context():
        return str(current_app.config.get("PASSWORD_HASH_METHOD", "scrypt"))
    return "scrypt"


class User(Base):
    """An account. ``email`` is stored lower-cased, so uniqueness is case-insensitive."""

    __tablename__ = "user_account"
    __table_args__ = (
        CheckConstraint("(role != 'sme') OR (company_id IS NOT NULL)", name="sme_has_company"),
        CheckConstraint(
            "(role != 'staff') OR (institute_id IS NOT NULL)", name="staff_has_institute"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(str_enum(Role, "role"), index=True)
    company_id: Mapped[int | None] = mapped_column(ForeignKey("company.id"), index=True)
    institute_id: Mapped[int | None] = mapped_column(ForeignKey("institute.id"), index=True)
    locale: Mapped[str] = mapped_column(String(10), default="zh_CN")
    active: Mapped[bool] = mapped_column(default=True)
    calendar_token: Mapped[str | None] = mapped_column(String(64), unique=True)
    # Part of every session's and remember-me cookie's id (get_id): replacing it
    # ends every session of the account, everywhere (accounts/passwords.py).
    session_nonce: Mapped[str] = mapped_column(String(32), default=new_session_nonce)
    # None until the owner opens the link mailed at self-registration; accounts made
    # by an admin, the CLI or code count as verified from the start.
    email_verified_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), default=utcnow)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_login_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime())
    # An SME member who manages the company's members; a staff member who manages the
    # institute's staff accounts. Flags rather than roles, so every sme/staff rule
    # keeps applying to them unchanged.
    company_admin: Mapped[bool] = mapped_column(default=False, server_default=false())
    institute_admin: Mapped[bool] = mapped_column(default=False, server_default=false())

    company: Mapped[Company | None] = relationship(lazy="joined")
    institute: Mapped[Institute | None] = relationship(lazy="joined")

    # Flask-Login protocol
    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def is_anonymous(self) -> bool:
        return False

    def get_id(self) -> str:
        """What Flask-Login keeps in the session and the remember-me cookie: the id and
        the session nonce, so a cookie dies when the nonce is replaced."""
        return f"{self.id}:{self.session_nonce}"

    @property
    def email_verified(self) -> bool:
        return self.email_verified_at is not None

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password, method=password_hash_method())

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)

    @staticmethod
    def normalize_email(email: str) -> str:
        return email.strip().lower()

    def __repr__(self) -> str:
        return f"<User {self.email} {self.role}>"
