"""Staff accounts and roles: an institute administrator (a staff member with
``institute_admin``) manages the staff of their own institute; the platform admin
manages staff of every institute and changes roles. Every change is audited;
nothing here commits."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from labshare.accounts import accounts
from labshare.errors import NotAllowed, NotFound, ValidationFailed
from labshare.extensions import db
from labshare.models import ApiToken, Institute, Role, User
from labshare.ops import audit
from labshare.timeutil import utcnow


def is_institute_admin(user: User) -> bool:
    return bool(
        user.active
        and user.role == Role.STAFF
        and user.institute_admin
        and user.institute_id is not None
    )


def can_manage_staff_of(actor: User, institute_id: int) -> bool:
    if not actor.active:
        return False
    if actor.role == Role.ADMIN:
        return True
    return is_institute_admin(actor) and actor.institute_id == institute_id


def staff_of(institute: Institute) -> list[User]:
    return list(
        db.session.scalars(
            select(User)
            .where(User.institute_id == institute.id, User.role == Role.STAFF)
            .order_by(User.active.desc(), User.name, User.id)
        )
    )


def staff_member(actor: User, user_id: int) -> User:
    """A staff account the actor manages; 404 for any other (no hint it exists)."""
    user = db.session.get(User, user_id)
    if (
        user is None
        or user.role != Role.STAFF
        or user.institute_id is None
        or not can_manage_staff_of(actor, user.institute_id)
    ):
        raise NotFound(_l("No such staff account of your institute."))
    return user


def create_staff(
    institute: Institute,
    *,
    email: str,
    name: str,
    password: str,
    locale: str,
    actor: User,
) -> User:
    if not can_manage_staff_of(actor, institute.id):
        raise NotAllowed(_l("Only the institute's administrator can create its staff accounts."))
    return accounts.create_user(
        email,
        name=name,
        role=Role.STAFF,
        password=password,
        institute=institute,
        locale=locale,
        actor=actor,
    )


def set_staff_active(user: User, active: bool, *, actor: User) -> User:
    """Deactivate (or reactivate) a staff account of the actor's institute; a
    deactivated account's API tokens are revoked too."""
    if user.role != Role.STAFF or user.institute_id is None:
        raise NotFound(_l("No such staff account of your institute."))
    if not can_manage_staff_of(actor, user.institute_id):
        raise NotFound(_l("No such staff account of your institute."))
    accounts.set_active(user, active, actor=actor)
    if not active:
        _revoke_tokens(user)
    return user


def _revoke_tokens(user: User) -> None:
    for token in db.session.scalars(
        select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
    ):
        token.revoked_at = utcnow()


def change_role(
    user: User,
    *,
    role: Role | str,
    institute: Institute | None,
    institute_admin: bool,
    actor: User,
) -> User:
    """The platform admin makes an account staff (of an institute, optionally its
    institute administrator) or a platform admin. SME accounts belong to a company
    and keep their role; nobody changes their own role (an admin always remains)."""
    if not (actor.active and actor.role == Role.ADMIN):
        raise NotAllowed(_l("Only platform admins change roles."))
    try:
        new_role = Role(role)
    except ValueError:
        raise ValidationFailed(_l("Unknown role."), field="role") from None
    if user.id == actor.id:
        raise ValidationFailed(_l("You cannot change your own role."), field="role")
    if user.role == Role.SME or new_role == Role.SME:
        raise ValidationFailed(
            _l("An SME account belongs to its company; its role cannot be changed."),
            field="role",
        )
    if new_role == Role.STAFF and institute is None:
        raise ValidationFailed(_l("A staff account needs an institute."), field="institute")
    before = f"{user.role}{'+institute_admin' if user.institute_admin else ''}"
    before_institute = user.institute_id
    user.role = new_role
    user.institute_id = institute.id if new_role == Role.STAFF and institute else None
    user.institute_admin = bool(institute_admin) and new_role == Role.STAFF
    after = f"{new_role}{'+institute_admin' if user.institute_admin else ''}"
    if before != after or user.institute_id != before_institute:
        audit.record(
            "role_changed",
            user,
            actor=actor,
            from_state=before,
            to_state=after,
            data={"institute_id": user.institute_id, "from_institute_id": before_institute},
        )
    return user
