"""The printable QR code of a lab's or instrument's check-in page."""

from __future__ import annotations

from typing import Any

from flask import render_template

from labshare.booking.rules import effective_rules
from labshare.web.bookings.checkin import kiosk_url, qr_svg
from labshare.web.manage.views import bp, own_resource


@bp.get("/resources/<int:resource_id>/check-in-code")
def checkin_code(resource_id: int) -> Any:
    resource = own_resource(resource_id)
    url = kiosk_url(resource)
    return render_template(
        "manage/checkin_code.html",
        resource=resource,
        url=url,
        qr=qr_svg(url),
        rules=effective_rules(resource),
    )
