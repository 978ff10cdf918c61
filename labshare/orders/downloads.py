"""The certificate upload read from a request, and the download answer: shared by
the web pages and the API."""

from __future__ import annotations

import re
from dataclasses import dataclass

from flask import Response, current_app, request
from flask_babel import lazy_gettext as _l
from werkzeug.exceptions import RequestEntityTooLarge

from labshare.errors import NotFound, ValidationFailed
from labshare.models import ServiceOrder
from labshare.orders.certificates import PayloadTooLarge, check_file_name, max_bytes
from labshare.orders.storage import certificate_store

#: Room for the form's other fields and the multipart framing around the file.
FORM_OVERHEAD = 64 * 1024


@dataclass
class Upload:
    result: str | None
    certificate_number: str | None
    interval_months: int | None
    data: bytes | None


def allow_certificate_size() -> None:
    """Raise this request's body limit (the app's is 1 MB) to the certificate limit;
    call before anything reads the form."""
    request.max_content_length = max_bytes() + FORM_OVERHEAD


def _too_large() -> PayloadTooLarge:
    limit = max_bytes()
    return PayloadTooLarge(
        _l("The file is larger than %(n)d MB.", n=max(1, limit // (1024 * 1024))), field="file"
    )


def upload_from_request() -> Upload:
    allow_certificate_size()
    try:
        form, files = request.form, request.files
    except RequestEntityTooLarge:
        raise _too_large() from None
    raw_interval = (form.get("interval_months") or "").strip()
    interval: int | None = None
    if raw_interval:
        # str.isdigit() also takes "²", which int() refuses: ask int() itself.
        try:
            interval = int(raw_interval) if raw_interval.isdecimal() else None
        except ValueError:
            interval = None
        if interval is None:
            raise ValidationFailed(
                _l("The interval is from 1 to 120 months."), field="interval_months"
            )
    file = files.get("file")
    data: bytes | None = None
    if file is not None and (file.filename or file.content_length):
        check_file_name(file.filename)
        data = file.stream.read(max_bytes() + 1)
        if len(data) > max_bytes():
            raise _too_large()
    return Upload(
        result=form.get("result"),
        certificate_number=form.get("certificate_number"),
        interval_months=interval,
        data=data,
    )


def certificate_response(order: ServiceOrder, item_id: int) -> Response:
    """The item's PDF; the caller has checked that the user may see ``order``."""
    item = next((i for i in order.items if i.id == item_id), None)
    if item is None or item.certificate_key is None:
        raise NotFound(_l("No certificate for this item."))
    try:
        data = certificate_store().load(item.certificate_key)
    except (KeyError, FileNotFoundError):
        # The row outlived its file (a restore without the files, a cleaned folder):
        # the user can do nothing about it, and no path goes into the answer.
        current_app.logger.error("certificate file missing for item %s", item.id)
        raise NotFound(_l("No certificate for this item.")) from None
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", item.certificate_number or f"item-{item.id}")
    response = Response(data, mimetype="application/pdf")
    response.headers["Content-Disposition"] = f'attachment; filename="{safe}.pdf"'
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "private, no-store"
    return response
