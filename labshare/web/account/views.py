"""Personal API tokens (shown once, stored only as a hash), the calendar feed link,
and the feed behind it."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import Response, current_app, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from labshare.accounts import tokens
from labshare.errors import ValidationFailed
from labshare.extensions import db
from labshare.messaging.calendar_feed import build_feed
from labshare.web.account import bp
from labshare.web.account.forms import ConfirmForm, CreateTokenForm


def _feed_url() -> str:
    base = str(current_app.config["PUBLIC_BASE_URL"]).rstrip("/")
    return f"{base}/calendar/{tokens.calendar_token(current_user)}.ics"


def _page(form: CreateTokenForm, new_secret: str | None = None, status: int = 200) -> Any:
    had_link = bool(current_user.calendar_token)
    feed_url = _feed_url()
    if not had_link:
        db.session.commit()
    return (
        render_template(
            "account/tokens.html",
            form=form,
            confirm=ConfirmForm(),
            tokens=tokens.list_personal_tokens(current_user),
            new_secret=new_secret,
            feed_url=feed_url,
            token_days=tokens.personal_token_days(),
        ),
        status,
    )


@bp.route("/account/tokens", methods=["GET"])
@login_required
def token_list() -> Any:
    return _page(CreateTokenForm())


@bp.route("/account/tokens", methods=["POST"])
@login_required
def token_create() -> Any:
    form = CreateTokenForm()
    if not form.validate_on_submit():
        return _page(form, status=422)
    try:
        issued = tokens.create_personal_token(current_user, form.name.data or "")
    except ValidationFailed as exc:
        db.session.rollback()
        form.name.errors = [str(exc.message)]
        return _page(form, status=422)
    db.session.commit()
    # Shown in this response only, never put in the session or a redirect.
    response = _page(CreateTokenForm(formdata=None), new_secret=issued.secret)
    return response


@bp.route("/account/tokens/<int:token_id>/revoke", methods=["POST"])
@login_required
def token_revoke(token_id: int) -> Any:
    form = ConfirmForm()
    if form.validate_on_submit():
        token = tokens.revoke_token(current_user, token_id)  # NotFound: another user's
        db.session.commit()
        flash(_("Token “%(name)s” revoked.", name=token.name), "success")
    return redirect(url_for("account.token_list"))


@bp.route("/account/calendar/reset", methods=["POST"])
@login_required
def calendar_reset() -> Any:
    form = ConfirmForm()
    if form.validate_on_submit():
        tokens.reset_calendar_token(current_user)
        db.session.commit()
        flash(_("Your calendar link was replaced; the old one no longer works."), "success")
    return redirect(url_for("account.token_list"))


@bp.route("/calendar/<feed_token>.ics", methods=["GET"])
def calendar_feed(feed_token: str) -> Response:
    user = tokens.user_for_calendar_token(feed_token)  # NotFound for an unknown link
    domain = urlsplit(str(current_app.config["PUBLIC_BASE_URL"])).hostname or "labshare"
    body = build_feed(user, domain=domain)
    response = Response(body, mimetype="text/calendar")
    response.headers["Content-Disposition"] = 'inline; filename="labshare.ics"'
    response.headers["Cache-Control"] = "private, max-age=300"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
