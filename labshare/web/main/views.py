from __future__ import annotations

from typing import Any

from flask import jsonify, redirect, render_template, request, session, url_for
from flask_login import current_user
from sqlalchemy import func, select, text

from labshare.extensions import db
from labshare.labels import choices
from labshare.models import Field, Institute, Instrument, Lab, ResourceStatus
from labshare.safety import safe_next
from labshare.web import LANGUAGES
from labshare.web.main import bp


@bp.get("/")
def home() -> Any:
    stats = {
        "institutes": db.session.scalar(
            select(func.count(Institute.id)).where(Institute.active.is_(True))
        ),
        "labs": db.session.scalar(
            select(func.count(Lab.id)).where(Lab.status != ResourceStatus.RETIRED)
        ),
        "instruments": db.session.scalar(
            select(func.count(Instrument.id)).where(Instrument.status != ResourceStatus.RETIRED)
        ),
    }
    return render_template(
        "main/home.html",
        stats=stats if stats["instruments"] else None,
        field_choices=choices(Field),
    )


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
