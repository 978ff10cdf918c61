"""Enumerations of the domain, stored as strings with named check constraints."""

from __future__ import annotations

import enum

from sqlalchemy import Enum


class Role(enum.StrEnum):
    SME = "sme"
    STAFF = "staff"
    ADMIN = "admin"


class InstituteKind(enum.StrEnum):
    NATIONAL = "national"
    PROVINCIAL = "provincial"
    MUNICIPAL = "municipal"
    INDUSTRY_CENTRE = "industry_centre"
    OTHER = "other"


class ResourceKind(enum.StrEnum):
    LAB = "lab"
    INSTRUMENT = "instrument"


class ResourceStatus(enum.StrEnum):
    AVAILABLE = "available"
    MAINTENANCE = "maintenance"
    RETIRED = "retired"


class Field(enum.StrEnum):
    """The ten classical measurement fields."""

    GEOMETRIC = "geometric"
    THERMAL = "thermal"
    MECHANICAL = "mechanical"
    ELECTROMAGNETIC = "electromagnetic"
    RADIO = "radio"
    TIME_FREQUENCY = "time_frequency"
    IONIZING_RADIATION = "ionizing_radiation"
    CHEMICAL = "chemical"
    ACOUSTIC = "acoustic"
    OPTICAL = "optical"


class CompanyStatus(enum.StrEnum):
    """Whether someone has vouched for a company (from its licence number and name)."""

    PENDING = "pending"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"


class CompanySize(enum.StrEnum):
    MICRO = "micro"
    SMALL = "small"
    MEDIUM = "medium"


class BookingStatus(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    COMPLETED = "completed"
    NO_SHOW = "no_show"


#: Statuses that hold time on a resource.
HOLDING_STATUSES = (BookingStatus.PENDING, BookingStatus.APPROVED)


class ServiceType(enum.StrEnum):
    VERIFICATION = "verification"
    CALIBRATION = "calibration"
    TESTING = "testing"
    TRAINING = "training"
    CONSULTATION = "consultation"


class OrderServiceType(enum.StrEnum):
    """What an institute does with an item sent to it (service orders)."""

    VERIFICATION = "verification"
    CALIBRATION = "calibration"
    TESTING = "testing"


class OrderStatus(enum.StrEnum):
    SUBMITTED = "submitted"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    RECEIVED = "received"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    RETURNED = "returned"
    COLLECTED = "collected"


class DeliveryMethod(enum.StrEnum):
    DROP_OFF = "drop_off"
    COURIER = "courier"
    ON_SITE = "on_site"


class ItemResult(enum.StrEnum):
    CONFORMING = "conforming"
    NOT_CONFORMING = "not_conforming"
    CALIBRATED = "calibrated"


class ClosureKind(enum.StrEnum):
    MAINTENANCE = "maintenance"
    CALIBRATION = "calibration"
    HOLIDAY = "holiday"
    OTHER = "other"


class NotificationStatus(enum.StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    UNCERTAIN = "uncertain"


def str_enum(enum_cls: type[enum.StrEnum], name: str) -> Enum:
    """A portable enum column: VARCHAR plus a named CHECK constraint."""
    return Enum(
        enum_cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=32,
        values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
    )
