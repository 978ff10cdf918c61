"""The account's security page: the e-mail confirmation, the password, and signing
out the other devices."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user

from labshare.accounts import passwords
from labshare.errors import ValidationFailed
from labshare.extensions import db, limiter
from labshare.ratelimit import caller_key, login_limit
from labshare.web.account import bp
from labshare.web.account.forms import ConfirmForm
from labshare.web.auth.forms import ChangePasswordForm
from labshare.web.main.forms import apply_domain_error


def _page(form: ChangePasswordForm, status: int = 200) -> Any:
    return (
        render_template(
            "account/security.html",
            form=form,
            confirm=ConfirmForm(),
            needs_verification=current_user.email_verified_at is None,
        ),
        status,
    )


def _sign_in_again() -> None:
    """Keep this device signed in under the account's new session nonce."""
    locale = session.get("locale")
    session.clear()
    login_user(current_user._get_current_object())
    if locale:
        session["locale"] = locale


@bp.get("/account/security")
@login_required
def security() -> Any:
    return _page(ChangePasswordForm(formdata=None))


@bp.post("/account/password")
@limiter.limit(login_limit, methods=["POST"], key_func=caller_key)
@login_required
def change_password() -> Any:
    form = ChangePasswordForm()
    if not form.validate_on_submit():
        return _page(form, status=422)
    try:
        passwords.change_password(
            current_user, form.current_password.data or "", form.new_password.data or ""
        )
    except ValidationFailed as exc:
        db.session.rollback()
        apply_domain_error(form, exc)
        return _page(form, status=422)
    db.session.commit()
    _sign_in_again()
    flash(
        _(
            "Your password was changed. Your other devices are signed out and your API "
            "tokens revoked."
        ),
        "success",
    )
    return redirect(url_for("account.security"))


@bp.post("/account/sessions/end")
@login_required
def end_other_sessions() -> Any:
    if ConfirmForm().validate_on_submit():
        passwords.sign_out_everywhere(current_user, actor=current_user)
        db.session.commit()
        _sign_in_again()
        flash(_("Your other devices are signed out."), "success")
    return redirect(url_for("account.security"))


@bp.post("/account/verification")
@login_required
def resend_verification() -> Any:
    if ConfirmForm().validate_on_submit():
        passwords.send_verification(current_user)
        db.session.commit()
        if current_user.email_verified_at is None:
            flash(_("We have sent you a new confirmation link."), "info")
    return redirect(url_for("account.security"))
