"""Register, log in, log out."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required, login_user, logout_user

from labshare.auth import bp
from labshare.auth.forms import LoginForm, RegisterForm
from labshare.errors import Unauthorized, ValidationFailed
from labshare.extensions import db, limiter
from labshare.main.forms import apply_domain_error
from labshare.ratelimit import login_limit, register_limit
from labshare.safety import safe_next
from labshare.services import accounts


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
        except ValidationFailed as exc:
            db.session.rollback()
            apply_domain_error(form, exc)
        else:
            db.session.commit()
            _start_session(user)
            flash(
                _(
                    "Welcome to LabShare! An institute will confirm your company; until "
                    "then you can search and read, but not book."
                ),
                "success",
            )
            return redirect(url_for("main.home"))
    status = 422 if form.is_submitted() else 200
    return render_template("auth/register.html", form=form), status


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
            user = accounts.authenticate(form.email.data or "", form.password.data or "")
        except Unauthorized as exc:
            db.session.commit()  # keep the failure count, the lock and the audit rows
            error = str(exc.message)
        else:
            db.session.commit()
            target = safe_next(form.next.data)
            _start_session(user)
            flash(_("You are signed in."), "success")
            return redirect(target or url_for("main.home"))
    status = 401 if error else (422 if form.is_submitted() else 200)
    form.password.data = ""
    return render_template("auth/login.html", form=form, error=error), status


@bp.post("/logout")
@login_required
def logout() -> Any:
    logout_user()
    locale = session.get("locale")
    session.clear()
    if locale:
        session["locale"] = locale
    flash(_("You are signed out."), "info")
    return redirect(url_for("main.home"))
