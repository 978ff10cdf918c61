"""Staff set whether a lab follows the public holidays and make-up workdays
(``booking/holiday_admin``), from the lab's opening-hours page."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, url_for
from flask_babel import gettext as _
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import BooleanField

from labshare.booking import holiday_admin
from labshare.extensions import db
from labshare.web.manage.views import bp, own_lab


class LabHolidaysForm(FlaskForm):
    follows = BooleanField()


@bp.route("/labs/<int:lab_id>/holidays", methods=["POST"])
def lab_holidays(lab_id: int) -> Any:
    lab = own_lab(lab_id)
    form = LabHolidaysForm()
    if form.validate_on_submit():
        holiday_admin.set_lab_follows(current_user, lab, bool(form.follows.data))
        db.session.commit()
        flash(
            _("The lab follows the public holidays and make-up workdays.")
            if lab.follows_holidays
            else _("The lab works through public holidays and keeps its weekly hours."),
            "success",
        )
    return redirect(url_for("manage.hours", lab_id=lab_id))
