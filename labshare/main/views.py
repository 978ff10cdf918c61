from __future__ import annotations

from typing import Any

from flask import jsonify, redirect, render_template, request, session, url_for
from flask_login import current_user
from sqlalchemy import text

from labshare.extensions import db
from labshare.main import bp
from labshare.safety import safe_next
from labshare.web import LANGUAGES


@bp.get("/")
def home() -> Any:
    return render_template("main/home.html")


@bp.post("/language")
def set_language() -> Any:
    locale = request.form.get("locale", "")
    if locale in LANGUAGES:
        session["locale"] = locale
        if current_user.is_authenticated:
            current_user.locale = locale
            db.session.commit()
    return redirect(safe_next(request.form.get("next")) or url_for("main.home"))


@bp.get("/healthz")
def healthz() -> Any:
    try:
        db.session.execute(text("SELECT 1"))
        db.session.rollback()
    except Exception:  # noqa: BLE001 - any failure means the database is not usable
        db.session.rollback()
        return jsonify({"status": "error", "database": "unreachable"}), 503
    return jsonify({"status": "ok", "database": "ok"})
