"""The booking pages' lookups: a resource or booking the caller may see, else 404."""

from __future__ import annotations

from flask import abort
from flask_login import current_user

from labshare.booking.permissions import can_view_booking
from labshare.extensions import db
from labshare.models import Booking, Resource


def resource_or_404(resource_id: int) -> Resource:
    resource = db.session.get(Resource, resource_id)
    if resource is None or not resource.institute.active:
        abort(404)
    return resource


def booking_or_404(booking_id: int) -> Booking:
    booking = db.session.get(Booking, booking_id)
    if booking is None or not can_view_booking(current_user, booking):
        abort(404)
    return booking
