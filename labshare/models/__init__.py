"""The domain model, one class per module; importing this package registers all."""

from labshare.models.api_token import ApiToken
from labshare.models.audit_log import AuditLog
from labshare.models.base import Base, UTCDateTime
from labshare.models.booking import Booking
from labshare.models.booking_group import BookingGroup
from labshare.models.booking_quota import BookingQuota, QuotaPeriod
from labshare.models.booking_rules import DEFAULT_RULES, BookingRules
from labshare.models.booking_series import BookingSeries
from labshare.models.calendar_day import CalendarDay, CalendarState
from labshare.models.catalogue_version import CatalogueVersion
from labshare.models.closure import Closure
from labshare.models.company import Company
from labshare.models.company_invitation import CompanyInvitation
from labshare.models.enums import (
    HOLDING_STATUSES,
    BookingStatus,
    ClosureKind,
    CompanySize,
    CompanyStatus,
    DeliveryMethod,
    Field,
    InstituteKind,
    ItemResult,
    NotificationStatus,
    OrderServiceType,
    OrderStatus,
    ResourceKind,
    ResourceStatus,
    Role,
    ServiceType,
)
from labshare.models.institute import Institute
from labshare.models.instrument import Instrument
from labshare.models.job_marker import JobMarker
from labshare.models.lab import Lab, OpeningPeriod
from labshare.models.login_throttle import LoginThrottle
from labshare.models.notification import Notification
from labshare.models.qualification import Qualification
from labshare.models.resource import Resource
from labshare.models.search_doc import SearchDoc
from labshare.models.service_offering import ServiceOffering
from labshare.models.service_order import ServiceOrder
from labshare.models.service_order_item import ServiceOrderItem
from labshare.models.stats_daily import (
    ANY_INSTITUTE,
    STATS_DAILY_COUNTS,
    StatsDaily,
    StatsDirty,
    StatsFirstUse,
    StatsUsed,
    StatsWait,
)
from labshare.models.usage_record import UsageRecord
from labshare.models.user import User
from labshare.models.waitlist import OPEN_WAITLIST_STATUSES, WaitlistEntry, WaitlistStatus

__all__ = [
    "ANY_INSTITUTE",
    "DEFAULT_RULES",
    "HOLDING_STATUSES",
    "OPEN_WAITLIST_STATUSES",
    "STATS_DAILY_COUNTS",
    "ApiToken",
    "AuditLog",
    "Base",
    "Booking",
    "BookingGroup",
    "BookingQuota",
    "BookingRules",
    "BookingSeries",
    "BookingStatus",
    "CalendarDay",
    "CalendarState",
    "CatalogueVersion",
    "Closure",
    "ClosureKind",
    "Company",
    "CompanyInvitation",
    "CompanySize",
    "CompanyStatus",
    "DeliveryMethod",
    "Field",
    "Institute",
    "InstituteKind",
    "Instrument",
    "ItemResult",
    "JobMarker",
    "Lab",
    "LoginThrottle",
    "Notification",
    "NotificationStatus",
    "OpeningPeriod",
    "OrderServiceType",
    "OrderStatus",
    "Qualification",
    "QuotaPeriod",
    "Resource",
    "ResourceKind",
    "ResourceStatus",
    "Role",
    "SearchDoc",
    "ServiceOffering",
    "ServiceOrder",
    "ServiceOrderItem",
    "ServiceType",
    "StatsDaily",
    "StatsDirty",
    "StatsFirstUse",
    "StatsUsed",
    "StatsWait",
    "UTCDateTime",
    "UsageRecord",
    "User",
    "WaitlistEntry",
    "WaitlistStatus",
]
