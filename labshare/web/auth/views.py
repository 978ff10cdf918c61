"""Register, log in, log out; forgotten passwords and e-mail confirmation."""

from __future__ import annotations

from typing import Any

from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user

from labshare.accounts import accounts, passwords
from labshare.errors import Unauthorized, ValidationFailed
from labshare.extensions import db, limiter
from labshare.ratelimit import login_limit, register_limit
from labshare.safety import safe_next
from labshare.web.auth import bp
from labshare.web.auth.forms import ForgotPasswordForm, LoginForm, NewPasswordForm, RegisterForm
from labshare.web.main.forms import apply_domain_error


def _start_session(user: Any) -> None:
    """A new session at login: nothing from before survives (no session fixation)."""
    session.clear()
    login_user(user)
    session["locale"] = user.locale


@bp.route("/register", methods=["GET", "POST"])
@limiter.limit(register_limit, methods=["POST"])
def register() -> Any:
    if current_user.is_authenticated:
        return redirect(url_for("main.home"))
    form = RegisterForm()
    if form.validate_on_submit():
        try:
            user = accounts.register_sme(
                email=form.email.data or "",
                name=form.name.data or "",
                password=form.password.data or "",
                company_name=form.company_name.data or "",
                credit_code=form.credit_code.data or "",
                province=form.province.data or None,
                industry=form.industry.data or None,
                size=form.size.data or None,
                locale=form.locale.data or "zh_CN",
            )
        except accounts.EmailTaken as exc:
            # Answer as for a new account, and tell the address's owner instead: the
            # page must not reveal which addresses have accounts.
            db.session.rollback()
            existing = accounts.user_by_email(exc.address)
            if existing is not None:
                passwords.notify_existing_account(existing)
            db.session.commit()
            return redirect(url_for("auth.register_sent"))
        except ValidationFailed as exc:
            db.session.rollback()
            apply_domain_error(form, exc)
        else:
            passwords.send_verification(user)
            db.session.commit()
            return redirect(url_for("auth.register_sent"))
    status = 422 if form.is_submitted() else 200
    return render_template("auth/register.html", form=form), status


@bp.get("/register/sent")
def register_sent() -> Any:
    return render_template("auth/register_sent.html")


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(login_limit, methods=["POST"])
def login() -> Any:
    form = LoginForm()
    if request.method == "GET":
        form.next.data = safe_next(request.args.get("next")) or ""
    if current_user.is_authenticated and request.method == "GET":
        return redirect(safe_next(form.next.data) or url_for("main.home"))
    error = None
    if form.validate_on_submit():
        try:
            user = accounts.authenticate(
                form.email.data or "", form.password.data or "", client=request.remote_addr or ""
            )
        except Unauthorized as exc:
            db.session.commit()  # keep the failure count and the audit rows
            error = str(exc.message)
        else:
            db.session.commit()
            target = safe_next(form.next.data)
            _start_session(user)
            flash(_("You are signed in."), "success")
            if passwords.needs_verification(user):
                flash(
                    _(
                        "Open the link we mailed you to confirm the address. "
                        "Booking needs a confirmed address."
                    ),
                    "info",
                )
            return redirect(target or url_for("main.home"))
    status = 401 if error else (422 if form.is_submitted() else 200)
    form.password.data = ""
    return render_template("auth/login.html", form=form, error=error), status


@bp.post("/logout")
@login_required
def logout() -> Any:
    # The account's session nonce changes: this cookie, any copy of it and the
    # account's other sessions are all dead from now on (accounts/passwords.py).
    passwords.sign_out_everywhere(current_user, actor=current_user)
    db.session.commit()
    logout_user()
    locale = session.get("locale")
    session.clear()
    if locale:
        session["locale"] = locale
    flash(_("You are signed out."), "info")
    return redirect(url_for("main.home"))


@bp.route("/password/forgot", methods=["GET", "POST"])
@limiter.limit(register_limit, methods=["POST"])
def forgot_password() -> Any:
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        passwords.request_reset(form.email.data or "")
        db.session.commit()
        # The same answer whether or not the address has an account.
        flash(
            _(
                "If an account uses this address, we have sent it a link to choose a new "
                "password. It works for %(n)d minutes.",
                n=int(current_app.config["PASSWORD_RESET_MINUTES"]),
            ),
            "info",
        )
        return redirect(url_for("auth.login"))
    status = 422 if form.is_submitted() else 200
    return render_template("auth/forgot_password.html", form=form), status


@bp.route("/password/reset/<token>", methods=["GET", "POST"])
@limiter.limit(login_limit, methods=["POST"])
def reset_password(token: str) -> Any:
    form = NewPasswordForm()
    try:
        passwords.user_for_reset_token(token)
    except ValidationFailed as exc:
        return render_template("auth/link_invalid.html", message=str(exc.message)), 400
    if form.validate_on_submit():
        try:
            passwords.reset_password(token, form.new_password.data or "")
        except ValidationFailed as exc:
            db.session.rollback()
            apply_domain_error(form, exc)
        else:
            db.session.commit()
            if current_user.is_authenticated:
                logout_user()
                session.clear()
            flash(_("Your password was changed. Please sign in with it."), "success")
            return redirect(url_for("auth.login"))
    status = 422 if form.is_submitted() else 200
    return render_template("auth/reset_password.html", form=form, token=token), status


@bp.get("/verify/<token>")
def verify_email(token: str) -> Any:
    try:
        passwords.verify_email(token)
    except ValidationFailed as exc:
        db.session.rollback()
        return render_template("auth/link_invalid.html", message=str(exc.message)), 400
    db.session.commit()
    flash(_("Thank you: your e-mail address is confirmed. You can book now."), "success")
    return redirect(url_for("main.home"))
