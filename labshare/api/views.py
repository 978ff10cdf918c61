"""API routes, one module per area; importing them registers them on ``bp``."""

import labshare.api.account_routes
import labshare.api.audit_routes
import labshare.api.booking_routes
import labshare.api.catalogue_routes
import labshare.api.checkin_routes  # check-in
import labshare.api.company_routes
import labshare.api.group_routes  # booking groups
import labshare.api.holiday_routes
import labshare.api.meta_routes
import labshare.api.move_routes
import labshare.api.offering_routes  # the service catalogue of orders
import labshare.api.on_behalf_routes
import labshare.api.order_routes  # service orders
import labshare.api.password_routes
import labshare.api.report_routes
import labshare.api.resource_routes
import labshare.api.series_routes  # recurrence
import labshare.api.stats_routes
import labshare.api.waitlist_routes  # noqa: F401  (waitlist)
