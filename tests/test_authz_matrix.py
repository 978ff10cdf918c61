"""Every route of ``app.url_map`` x every kind of caller, against a table of the
status each must get. A route missing from the table fails the test, so a new route
cannot ship without a decision about who may call it.

Callers: anonymous, an SME member (owner of the booking under test, and its company's
administrator), an SME member of another company, staff of the institute that owns the
resources, staff of another institute, an admin; then two derived callers: a plain
member of the first SME's company (expected: as the SME, except where DERIVED_EXCEPTIONS
says) and that institute's institute administrator (expected: as its staff, except
where DERIVED_EXCEPTIONS says). Web routes are called with the session cookie (CSRF is off in
the test configuration), API routes with a bearer token. POSTs carry an empty body,
so "allowed" shows as the handler's own answer to empty input (a 422, a redirect
with a flash, a 200 for a transition without parameters) and never as 401/403/404.
"""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask

from labshare.models import BookingStatus, Closure, Notification, Role, User
from labshare.timeutil import set_clock
from tests.helpers import NOW, bearer

DISCOVER = __import__("os").environ.get("AUTHZ_DISCOVER") == "1"
ROLES = ("anonymous", "sme", "other_sme", "staff", "other_staff", "admin")
#: Callers whose expected status is another caller's unless DERIVED_EXCEPTIONS says.
DERIVED = {"member": "sme", "institute_admin": "staff"}
ALL_ROLES = ROLES + tuple(DERIVED)

# The expected status per role, in the order of ROLES, keyed "endpoint METHOD".
# Web: 302 for anonymous on a protected page is the redirect to the login page.
# The policy it pins: /manage is for staff of the owning institute (others 404 on
# another institute's objects, admins 403: they administer accounts, not catalogues);
# /bookings/all is the admins'; another tenant's booking is a 404, never a 403.
# Regenerate the observed values with AUTHZ_DISCOVER=1 pytest -s, then REVIEW them.
MATRIX: dict[str, tuple[int, int, int, int, int, int]] = {
    "account.calendar_feed GET": (200, 200, 200, 200, 200, 200),  # the secret link is the key
    "account.calendar_reset POST": (302, 302, 302, 302, 302, 302),
    "account.token_create POST": (302, 422, 422, 422, 422, 422),
    "account.token_list GET": (302, 200, 200, 200, 200, 200),
    "account.token_revoke POST": (302, 302, 404, 404, 404, 404),
    "admin.mark_mail_delivered POST": (302, 403, 403, 403, 403, 302),
    "admin.requeue_mail POST": (302, 403, 403, 403, 403, 302),
    "admin.undelivered_mail GET": (302, 403, 403, 403, 403, 200),
    "admin.edit_institute GET": (302, 403, 403, 403, 403, 200),
    "admin.edit_institute POST": (302, 403, 403, 403, 403, 302),  # empty body: nothing changes
    "admin.institutes GET": (302, 403, 403, 403, 403, 200),
    "admin.new_institute GET": (302, 403, 403, 403, 403, 200),
    "admin.new_institute POST": (302, 403, 403, 403, 403, 422),
    "admin.new_user GET": (302, 403, 403, 403, 403, 200),
    "admin.new_user POST": (302, 403, 403, 403, 403, 422),
    "admin.set_active POST": (302, 403, 403, 403, 403, 302),
    "admin.users GET": (302, 403, 403, 403, 403, 200),
    "api.approve_booking POST": (401, 403, 404, 200, 404, 403),
    "api.campaign GET": (401, 403, 403, 200, 200, 200),
    "api.cancel_booking POST": (401, 200, 404, 200, 404, 403),
    "api.move_booking POST": (401, 200, 404, 200, 404, 403),
    "api.create_booking POST": (401, 422, 422, 403, 403, 403),
    "api.get_availability GET": (200, 200, 200, 200, 200, 200),
    "api.get_booking GET": (401, 200, 404, 200, 404, 200),
    "api.get_resource GET": (200, 200, 200, 200, 200, 200),
    "api.issue_token POST": (422, 422, 422, 422, 422, 422),
    "api.list_bookings GET": (401, 200, 200, 200, 200, 200),
    "api.list_resources GET": (200, 200, 200, 200, 200, 200),
    "api.me GET": (401, 200, 200, 200, 200, 200),
    "api.openapi GET": (200, 200, 200, 200, 200, 200),
    "api.record_usage POST": (401, 403, 404, 409, 404, 403),
    "api.reject_booking POST": (401, 403, 404, 200, 404, 403),
    "api.usage_report GET": (401, 403, 403, 200, 200, 200),  # staff: their own institute
    "auth.login GET": (200, 302, 302, 302, 302, 302),
    "auth.login POST": (422, 422, 422, 422, 422, 422),
    "auth.logout POST": (302, 302, 302, 302, 302, 302),
    "auth.register GET": (200, 302, 302, 302, 302, 302),
    "auth.register POST": (422, 302, 302, 302, 302, 302),
    "bookings.all GET": (302, 403, 403, 403, 403, 200),
    "bookings.calendar GET": (200, 200, 200, 200, 200, 200),
    "bookings.cancel POST": (302, 302, 404, 302, 404, 403),
    "bookings.move GET": (302, 200, 404, 200, 404, 403),
    "bookings.move POST": (302, 422, 404, 422, 404, 403),  # empty form: 422
    "bookings.detail GET": (302, 200, 404, 200, 404, 200),
    "bookings.mine GET": (302, 200, 200, 403, 403, 403),
    "bookings.new GET": (302, 200, 200, 403, 403, 403),
    "bookings.new POST": (302, 422, 422, 403, 403, 403),
    "catalogue.index GET": (200, 200, 200, 200, 200, 200),
    "catalogue.institute GET": (200, 200, 200, 200, 200, 200),
    "catalogue.institutes GET": (200, 200, 200, 200, 200, 200),
    "catalogue.resource GET": (200, 200, 200, 200, 200, 200),
    "main.healthz GET": (200, 200, 200, 200, 200, 200),
    "main.home GET": (200, 200, 200, 200, 200, 200),
    "main.set_language POST": (302, 302, 302, 302, 302, 302),
    "manage.approve POST": (302, 403, 403, 302, 404, 403),
    "manage.clear_rules POST": (302, 403, 403, 302, 404, 403),
    "manage.closures GET": (302, 403, 403, 200, 404, 403),
    "manage.closures POST": (302, 403, 403, 422, 404, 403),
    "manage.dashboard GET": (302, 403, 403, 200, 200, 403),
    "manage.delete_closure POST": (302, 403, 403, 302, 404, 403),
    "manage.quotas_page GET": (302, 403, 403, 200, 200, 403),  # booking policies
    "manage.quotas_page POST": (302, 403, 403, 422, 422, 403),  # own institute's page
    "manage.delete_quota POST": (302, 403, 403, 302, 404, 403),
    "manage.edit_instrument GET": (302, 403, 403, 200, 404, 403),
    "manage.edit_instrument POST": (302, 403, 403, 422, 404, 403),
    "manage.edit_lab GET": (302, 403, 403, 200, 404, 403),
    "manage.edit_lab POST": (302, 403, 403, 422, 404, 403),
    "manage.hours GET": (302, 403, 403, 200, 404, 403),
    "manage.hours POST": (302, 403, 403, 302, 404, 403),
    "manage.import_confirm POST": (302, 403, 403, 302, 302, 403),
    "manage.import_form GET": (302, 403, 403, 200, 200, 403),
    "manage.import_upload POST": (302, 403, 403, 422, 422, 403),
    "manage.instrument_qualifications GET": (302, 403, 403, 200, 404, 403),
    "manage.instrument_qualifications POST": (302, 403, 403, 422, 404, 403),
    "manage.new_instrument GET": (302, 403, 403, 200, 200, 403),
    "manage.new_instrument POST": (302, 403, 403, 422, 422, 403),
    "manage.new_lab GET": (302, 403, 403, 200, 200, 403),
    "manage.new_lab POST": (302, 403, 403, 422, 422, 403),
    "manage.reject GET": (302, 403, 403, 200, 404, 403),
    "manage.reject POST": (302, 403, 403, 422, 404, 403),
    "manage.resources GET": (302, 403, 403, 200, 200, 403),
    "manage.revoke_qualification POST": (302, 403, 403, 302, 404, 403),
    "manage.rules GET": (302, 403, 403, 200, 404, 403),
    "manage.rules POST": (302, 403, 403, 422, 404, 403),
    "manage.usage GET": (302, 403, 403, 200, 404, 403),
    "manage.usage POST": (302, 403, 403, 422, 404, 403),
    "notifications.index GET": (302, 200, 200, 200, 200, 200),
    "notifications.mark_all_read POST": (302, 302, 302, 302, 302, 302),
    "notifications.mark_read POST": (302, 302, 404, 404, 404, 404),
    "reports.download GET": (302, 403, 403, 200, 200, 200),  # staff: their own institute
    "reports.index GET": (302, 403, 403, 200, 200, 200),
    "static GET": (200, 200, 200, 200, 200, 200),
    # -- check-in: the booking's company or its institute's staff check in (the
    # booking under test is pending: 409 / a flash); only staff mark a no-show --
    "api.check_in POST": (401, 409, 404, 409, 404, 403),
    "api.mark_no_show POST": (401, 403, 404, 409, 404, 403),
    "bookings.check_in POST": (302, 302, 404, 302, 404, 403),
    "bookings.kiosk GET": (302, 200, 200, 200, 200, 200),  # others see no bookings
    "bookings.no_show POST": (302, 403, 404, 302, 404, 403),
    "manage.checkin_code GET": (302, 403, 403, 200, 404, 403),
    # -- end check-in --
    # -- booking groups: a group is tenant-scoped like its bookings --
    "api.create_group POST": (401, 422, 422, 403, 403, 403),
    "api.get_group GET": (401, 200, 404, 200, 404, 200),
    # -- end booking groups --
    # -- waitlist: an entry is its company's; others 404, non-SMEs 403 --
    "api.join_waitlist POST": (401, 422, 422, 403, 403, 403),
    "api.list_waitlist GET": (401, 200, 200, 403, 403, 403),
    "api.get_waitlist_entry GET": (401, 200, 404, 403, 403, 403),
    "api.accept_waitlist_offer POST": (401, 201, 404, 403, 403, 403),
    "api.decline_waitlist_offer POST": (401, 200, 404, 403, 403, 403),
    "api.leave_waitlist POST": (401, 200, 404, 403, 403, 403),
    "bookings.waitlist_join POST": (302, 302, 302, 403, 403, 403),  # empty form: back, flash
    "bookings.waitlist_mine GET": (302, 200, 200, 403, 403, 403),
    "bookings.waitlist_accept POST": (302, 302, 404, 403, 403, 403),
    "bookings.waitlist_decline POST": (302, 302, 404, 403, 403, 403),
    "bookings.waitlist_leave POST": (302, 302, 404, 403, 403, 403),
    # a resource's line: its institute's staff and admins; other staff 404, SMEs 403
    "api.list_resource_waitlist GET": (401, 403, 403, 200, 404, 200),
    "bookings.resource_waitlist GET": (302, 403, 403, 200, 404, 200),
    # -- end waitlist --
    # -- recurrence: a series is tenant-scoped like its bookings --
    "api.preview_series POST": (401, 422, 422, 403, 403, 403),
    "api.create_series POST": (401, 422, 422, 403, 403, 403),
    "api.get_series GET": (401, 200, 404, 200, 404, 200),
    "api.approve_series POST": (401, 403, 404, 200, 404, 403),
    "api.reject_series POST": (401, 403, 404, 200, 404, 403),
    "api.cancel_series POST": (401, 200, 404, 200, 404, 403),
    "bookings.new_series GET": (302, 200, 200, 403, 403, 403),
    "bookings.new_series POST": (302, 422, 422, 403, 403, 403),
    "bookings.series_detail GET": (302, 200, 404, 200, 404, 200),
    "bookings.series_approve POST": (302, 403, 404, 302, 404, 403),
    "bookings.series_reject POST": (302, 403, 404, 422, 404, 403),
    "bookings.series_cancel POST": (302, 302, 404, 302, 404, 403),
    # -- end recurrence --
    # -- security: the own account's password, sessions and tokens; the e-mailed links
    # are their own key (a made-up one is a 400 for everybody) --
    "account.security GET": (302, 200, 200, 200, 200, 200),
    "account.change_password POST": (302, 422, 422, 422, 422, 422),
    "account.end_other_sessions POST": (302, 302, 302, 302, 302, 302),
    "account.resend_verification POST": (302, 302, 302, 302, 302, 302),
    "api.change_password POST": (401, 422, 422, 422, 422, 422),
    "api.list_tokens GET": (401, 200, 200, 200, 200, 200),
    "api.revoke_token POST": (401, 200, 404, 404, 404, 404),  # the SME's token
    "auth.forgot_password GET": (200, 200, 200, 200, 200, 200),
    "auth.forgot_password POST": (422, 422, 422, 422, 422, 422),
    "auth.reset_password GET": (400, 400, 400, 400, 400, 400),
    "auth.reset_password POST": (400, 400, 400, 400, 400, 400),
    "auth.register_sent GET": (200, 200, 200, 200, 200, 200),
    "auth.verify_email GET": (400, 400, 400, 400, 400, 400),
    # -- end security --
    # -- companies and members: the "sme" is its company's administrator; a company's
    # pages are its members', the review of new companies is staff's and admins' --
    "admin.change_role GET": (302, 403, 403, 403, 403, 200),
    "admin.change_role POST": (302, 403, 403, 403, 403, 422),
    "api.confirm_company POST": (401, 403, 403, 200, 200, 200),
    "api.create_invitation POST": (401, 201, 403, 403, 403, 403),
    "api.list_companies GET": (401, 403, 403, 200, 200, 200),
    "api.list_invitations GET": (401, 200, 403, 403, 403, 403),
    "api.list_members GET": (401, 200, 403, 403, 403, 403),
    "api.my_company GET": (401, 200, 200, 403, 403, 403),
    "api.reject_company POST": (401, 403, 403, 200, 200, 200),
    "api.remove_member DELETE": (401, 422, 403, 403, 403, 403),  # the last admin stays
    "api.revoke_invitation DELETE": (401, 200, 403, 403, 403, 403),
    "api.set_member_admin POST": (401, 200, 403, 403, 403, 403),
    "company.accept_invitation GET": (200, 403, 403, 403, 403, 403),  # new accounts only
    "company.accept_invitation POST": (422, 403, 403, 403, 403, 403),
    "company.confirm POST": (302, 403, 403, 302, 302, 302),
    "company.reject POST": (302, 403, 403, 302, 302, 302),
    "company.invite POST": (302, 422, 403, 403, 403, 403),
    "company.new_staff POST": (302, 403, 403, 403, 403, 403),  # institute admins only
    "company.overview GET": (302, 200, 200, 403, 403, 403),
    "company.remove_member POST": (302, 302, 403, 403, 403, 403),  # flash: last admin
    "company.review GET": (302, 403, 403, 200, 200, 200),
    "company.revoke_invitation POST": (302, 302, 403, 403, 403, 403),
    "company.set_admin POST": (302, 302, 403, 403, 403, 403),
    "company.staff GET": (302, 403, 403, 403, 403, 403),
    "company.staff_active POST": (302, 403, 403, 403, 403, 403),
    # -- end companies and members --
    # -- service orders: tenant-scoped like bookings; the order under test is submitted --
    "api.accept_order POST": (401, 403, 404, 422, 404, 403),  # empty body: no date
    "api.cancel_order POST": (401, 200, 404, 403, 404, 403),
    "api.collect_order POST": (401, 403, 404, 409, 404, 403),
    "api.complete_item POST": (401, 403, 404, 422, 404, 403),
    "api.create_order POST": (401, 422, 422, 403, 403, 403),
    "api.download_certificate GET": (401, 404, 404, 404, 404, 404),  # none issued yet
    "api.get_order GET": (401, 200, 404, 200, 404, 200),
    "api.list_offerings GET": (200, 200, 200, 200, 200, 200),
    "api.create_offering POST": (401, 403, 403, 422, 422, 403),  # staff: their own
    "api.list_orders GET": (401, 200, 200, 200, 200, 200),  # each sees their own
    "api.receive_order POST": (401, 403, 404, 409, 404, 403),
    "api.reject_order POST": (401, 403, 404, 422, 404, 403),  # empty body: no reason
    "api.return_order POST": (401, 403, 404, 409, 404, 403),
    "api.start_order POST": (401, 403, 404, 409, 404, 403),
    "api.verify_certificate GET": (200, 200, 200, 200, 200, 200),  # public, rate-limited
    "orders.act POST": (302, 302, 404, 403, 404, 403),  # the cancel action
    "orders.certificate GET": (302, 404, 404, 404, 404, 404),  # none issued yet
    "orders.complete_item POST": (302, 403, 404, 422, 404, 403),
    "orders.detail GET": (302, 200, 404, 200, 404, 200),
    "orders.index GET": (302, 200, 200, 200, 200, 200),
    "orders.labels GET": (302, 200, 404, 200, 404, 200),
    "orders.new GET": (302, 200, 200, 403, 403, 403),
    "orders.new POST": (302, 422, 422, 403, 403, 403),
    "orders.verify GET": (200, 200, 200, 200, 200, 200),
    "orders.verify POST": (200, 200, 200, 200, 200, 200),
    "orders.services GET": (200, 200, 200, 200, 200, 200),
    "orders.offerings GET": (302, 403, 403, 200, 200, 403),  # staff: their own institute's
    "orders.offerings POST": (302, 403, 403, 422, 422, 403),
    "orders.offering_active POST": (302, 403, 403, 302, 404, 403),
    # -- end service orders --
    # -- ops: the audit log (staff: their institute's, admins all), the catalogue API
    # (staff of the owning institute; another's resource 404; an empty body is refused
    # before the resource is looked up, so other staff see 422 there), booking on behalf --
    "api.add_closure POST": (401, 403, 403, 422, 422, 403),
    "api.book_on_behalf POST": (401, 403, 403, 422, 422, 403),
    "api.book_group_on_behalf POST": (401, 403, 403, 422, 422, 403),
    "api.book_series_on_behalf POST": (401, 403, 403, 422, 422, 403),
    "api.clear_rules POST": (401, 403, 403, 200, 404, 403),
    "api.create_instrument POST": (401, 403, 403, 422, 422, 403),
    "api.create_lab POST": (401, 403, 403, 422, 422, 403),
    "api.create_quota POST": (401, 403, 403, 422, 422, 403),
    "api.delete_closure DELETE": (401, 403, 403, 200, 404, 403),
    "api.delete_quota DELETE": (401, 403, 403, 200, 404, 403),
    "api.list_audit GET": (401, 403, 403, 200, 200, 200),
    "api.retire_resource POST": (401, 403, 403, 200, 404, 403),
    "api.set_hours PUT": (401, 403, 403, 422, 422, 403),
    "api.set_rules PUT": (401, 403, 403, 422, 404, 403),
    "api.sync_instrument PUT": (401, 403, 403, 422, 422, 403),
    "api.sync_lab PUT": (401, 403, 403, 422, 422, 403),
    "api.update_instrument PUT": (401, 403, 403, 422, 404, 403),
    "api.update_lab PUT": (401, 403, 403, 422, 404, 403),
    "audit.download GET": (302, 403, 403, 200, 200, 200),
    "audit.index GET": (302, 403, 403, 200, 200, 200),
    "manage.book_for GET": (302, 403, 403, 200, 404, 403),
    "manage.book_for POST": (302, 403, 403, 422, 404, 403),
    # -- end ops --
    # -- holidays: anyone reads the calendar, admins keep it; an institute's administrator
    # (or an admin) opts the institute out, its staff (or an admin) a lab --
    "api.list_holidays GET": (200, 200, 200, 200, 200, 200),
    "api.holiday_coverage GET": (200, 200, 200, 200, 200, 200),
    "api.put_holiday POST": (401, 403, 403, 403, 403, 422),
    "api.delete_holiday DELETE": (401, 403, 403, 403, 403, 404),
    "api.load_holidays POST": (401, 403, 403, 403, 403, 422),
    "api.institute_follows PUT": (401, 403, 403, 403, 404, 200),
    "api.lab_follows PUT": (401, 403, 403, 200, 404, 200),
    "manage.lab_holidays POST": (302, 403, 403, 302, 404, 403),
    # -- end holidays --
}

#: Where a derived caller's status differs from the caller it derives from.
DERIVED_EXCEPTIONS: dict[str, dict[str, int]] = {
    # a plain member: the company's pages without managing it; others' own things 404
    "account.token_revoke POST": {"member": 404},
    "api.revoke_token POST": {"member": 404},
    "notifications.mark_read POST": {"member": 404},
    "api.create_invitation POST": {"member": 403},
    "api.list_invitations GET": {"member": 403},
    "api.list_members GET": {"member": 403},
    "api.remove_member DELETE": {"member": 403},
    "api.revoke_invitation DELETE": {"member": 403},
    "api.set_member_admin POST": {"member": 403},
    "company.invite POST": {"member": 403},
    "company.remove_member POST": {"member": 403},
    "company.revoke_invitation POST": {"member": 403},
    "company.set_admin POST": {"member": 403},
    # the same rights as the callers they derive from, meeting what those changed
    # before them (taken offer, deleted closure and quota)
    "api.accept_waitlist_offer POST": {"member": 409},
    "manage.delete_closure POST": {"institute_admin": 404},
    "manage.delete_quota POST": {"institute_admin": 404},
    "api.delete_closure DELETE": {"institute_admin": 404},
    "api.delete_quota DELETE": {"institute_admin": 404},
    # an institute administrator: its institute's staff accounts
    "company.new_staff POST": {"institute_admin": 422},
    "company.staff GET": {"institute_admin": 200},
    "company.staff_active POST": {"institute_admin": 302},
    "api.institute_follows PUT": {"institute_admin": 200},  # holidays
}


_WEEK = {"from": "2030-01-07T00:00:00+08:00", "to": "2030-01-14T00:00:00+08:00"}
#: Query strings and JSON bodies that pass validation, so the answer shows the rule.
QUERY: dict[str, dict[str, str]] = {
    "api.get_availability GET": _WEEK,
    "api.campaign GET": _WEEK,
    "api.usage_report GET": {"month": "2030-01"},
    "api.verify_certificate GET": {"number": "NO-SUCH", "code": "ABCDEFGHJK"},
    "reports.download GET": {"month": "2030-01", "format": "csv"},
    "reports.index GET": {"month": "2030-01"},
    "api.list_holidays GET": {"year": "2030"},  # holidays
}
BODY: dict[str, dict[str, Any]] = {
    "api.reject_booking POST": {"reason": "fully booked"},
    "api.move_booking POST": {  # moving a booking: a free time
        "start": "2030-01-11T14:00:00+08:00",
        "end": "2030-01-11T15:00:00+08:00",
    },
    "api.reject_series POST": {"reason": "fully booked"},  # recurrence
    "api.create_invitation POST": {"email": "matrix@example.com"},  # companies and members
    "api.set_member_admin POST": {"admin": True},
    "api.record_usage POST": {
        "checked_in_at": "2030-01-08T09:00:00+08:00",
        "checked_out_at": "2030-01-08T11:00:00+08:00",
        "service_type": "calibration",
        "samples_count": 1,
        "problem_solved": True,
    },
    "api.institute_follows PUT": {"follows": True},  # holidays
    "api.lab_follows PUT": {"follows": True},
}


def _routes(app: Flask) -> list[tuple[str, str, str]]:
    found = []
    for rule in app.url_map.iter_rules():
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.append((rule.endpoint, method, rule.rule))
    return sorted(found)


def _all_routes() -> list[str]:
    from config import TestingConfig
    from labshare import create_app

    app = create_app(TestingConfig, SQLALCHEMY_DATABASE_URI="sqlite://", INSTANCE_DIR="/tmp")
    return [f"{endpoint} {method}" for endpoint, method, _ in _routes(app)]


ROUTES = _all_routes()


def test_every_route_has_a_rule() -> None:
    missing = sorted(set(ROUTES) - set(MATRIX))
    assert missing == [], f"routes without a rule in MATRIX: {missing}"
    stale = sorted(set(MATRIX) - set(ROUTES))
    assert stale == [], f"rules for routes that no longer exist: {stale}"
    stale = sorted(set(DERIVED_EXCEPTIONS) - set(ROUTES))
    assert stale == [], f"exceptions for routes that no longer exist: {stale}"


def expected_statuses(route: str) -> tuple[int, ...]:
    base = dict(zip(ROLES, MATRIX[route], strict=True))
    extra = DERIVED_EXCEPTIONS.get(route, {})
    return tuple(
        extra.get(role, base[DERIVED[role]]) if role in DERIVED else base[role]
        for role in ALL_ROLES
    )


@pytest.fixture
def world(
    db: Any,
    make_instrument: Any,
    make_lab: Any,
    make_user: Any,
    make_booking: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> SimpleNamespace:
    set_clock(lambda: NOW)
    monkeypatch.setattr(User, "set_password", lambda self, _p: setattr(self, "password_hash", "!"))
    lab = make_lab()
    inst = make_instrument(lab=lab)
    users = {
        "sme": make_user(Role.SME, company_admin=True),
        "other_sme": make_user(Role.SME),
        "staff": make_user(Role.STAFF, institute=inst.institute),
        "other_staff": make_user(Role.STAFF),
        "admin": make_user(Role.ADMIN),
    }
    # companies and members: the derived callers
    users["member"] = make_user(Role.SME, company=users["sme"].company)
    users["institute_admin"] = make_user(Role.STAFF, institute=inst.institute, institute_admin=True)
    booking = make_booking(
        resource=inst,
        user=users["sme"],
        start=dt.datetime(2030, 1, 8, 1, 0, tzinfo=dt.UTC),
        end=dt.datetime(2030, 1, 8, 3, 0, tzinfo=dt.UTC),
        status=BookingStatus.PENDING,
    )
    series = _series_of(booking)  # recurrence
    entry = _waitlist_entry_of(inst, users["sme"])  # waitlist
    quota = _quota_of(inst)  # booking policies
    group = _group_of(lab, users["sme"])  # booking groups
    order = _order_of(inst, users["sme"])  # service orders
    closure = Closure(
        resource_id=inst.id,
        start_at=dt.datetime(2030, 2, 1, tzinfo=dt.UTC),
        end_at=dt.datetime(2030, 2, 2, tzinfo=dt.UTC),
    )
    note = Notification(
        dedupe_key="matrix",
        user_id=users["sme"].id,
        booking_id=booking.id,
        kind="booking_created",
        subject="s",
        body_text="b",
    )
    db.session.add_all([closure, note])
    db.session.flush()
    from labshare.accounts import tokens

    personal = tokens.create_personal_token(users["sme"], "matrix")
    invitation, secret, pending = _company_things(users["sme"])  # companies and members
    feed = tokens.calendar_token(users["sme"])
    db.session.commit()
    return SimpleNamespace(
        lab=lab,
        inst=inst,
        users=users,
        booking=booking,
        booking_times=(booking.start_at, booking.end_at),
        closure=closure,
        note=note,
        token=personal.token,
        feed=feed,
        group=group,  # booking groups
        entry=entry,  # waitlist
        series=series,  # recurrence
        quota=quota,  # booking policies
        invitation=invitation,  # companies and members
        invitation_secret=secret,
        pending_company=pending,
        order=order,  # service orders
    )


def _company_things(sme: Any) -> tuple[Any, str, Any]:
    """An open invitation of the SME's company, and a company waiting for
    confirmation (companies and members)."""
    from labshare.accounts import invitations
    from labshare.models import CompanyStatus
    from tests import factories

    issued = invitations.invite("invited@example.com", actor=sme)
    pending = factories.make_company(status=CompanyStatus.PENDING)
    return issued.invitation, issued.secret, pending


def _series_of(booking: Any) -> Any:
    """A one-occurrence series around the booking under test (recurrence)."""
    from labshare.extensions import db
    from labshare.models import BookingSeries

    series = BookingSeries(
        user_id=booking.user_id,
        company_id=booking.company_id,
        resource_id=booking.resource_id,
        institute_id=booking.institute_id,
        freq="daily",
        interval_n=1,
        count_n=1,
        start_at=booking.start_at,
        end_at=booking.end_at,
        timezone="Asia/Shanghai",
        purpose=booking.purpose,
    )
    db.session.add(series)
    db.session.flush()
    booking.series_id = series.id
    return series


def _waitlist_entry_of(inst: Any, user: Any) -> Any:
    """An open offer to the SME's company for a free slot of the instrument (waitlist)."""
    from labshare.extensions import db
    from labshare.models import WaitlistEntry, WaitlistStatus

    entry = WaitlistEntry(
        resource_id=inst.id,
        company_id=user.company_id,
        user_id=user.id,
        start_at=dt.datetime(2030, 1, 10, 1, 0, tzinfo=dt.UTC),
        end_at=dt.datetime(2030, 1, 10, 3, 0, tzinfo=dt.UTC),
        purpose="matrix",
        status=WaitlistStatus.OFFERED,
        offered_at=NOW,
        offer_expires_at=NOW + dt.timedelta(days=1),
    )
    db.session.add(entry)
    db.session.flush()
    return entry


def _group_of(lab: Any, user: Any) -> Any:
    """A booking group of the SME's company with one member on the lab (groups)."""
    from labshare.extensions import db
    from labshare.models import Booking, BookingGroup, ResourceKind

    group = BookingGroup(
        lab_id=lab.id,
        institute_id=lab.institute_id,
        company_id=user.company_id,
        user_id=user.id,
        purpose="matrix",
    )
    db.session.add(group)
    db.session.flush()
    db.session.add(
        Booking(
            resource_id=lab.id,
            resource_kind=ResourceKind.LAB,
            institute_id=lab.institute_id,
            company_id=user.company_id,
            user_id=user.id,
            start_at=dt.datetime(2030, 1, 9, 1, 0, tzinfo=dt.UTC),
            end_at=dt.datetime(2030, 1, 9, 3, 0, tzinfo=dt.UTC),
            status=BookingStatus.PENDING,
            purpose="matrix",
            group_id=group.id,
        )
    )
    db.session.flush()
    return group


def _order_of(inst: Any, user: Any) -> Any:
    """A submitted service order of the SME's company at the instrument's institute."""
    from labshare.extensions import db
    from labshare.models import (
        DeliveryMethod,
        Field,
        OrderServiceType,
        OrderStatus,
        ServiceOffering,
        ServiceOrder,
        ServiceOrderItem,
    )

    offering = ServiceOffering(
        institute_id=inst.institute_id,
        field=Field.MECHANICAL,
        service_type=OrderServiceType.CALIBRATION,
        name="matrix",
    )
    db.session.add(offering)
    db.session.flush()
    order = ServiceOrder(
        institute_id=inst.institute_id,
        company_id=user.company_id,
        user_id=user.id,
        status=OrderStatus.SUBMITTED,
        delivery=DeliveryMethod.DROP_OFF,
        items=[
            ServiceOrderItem(
                position=1,
                offering_id=offering.id,
                service_type=offering.service_type,
                field=offering.field,
                name="matrix",
            )
        ],
    )
    db.session.add(order)
    db.session.flush()
    return order


def _quota_of(inst: Any) -> Any:
    """A quota of the instrument (booking policies)."""
    from labshare.extensions import db
    from labshare.models import BookingQuota

    quota = BookingQuota(
        institute_id=inst.institute_id, resource_id=inst.id, period="week", max_bookings=5
    )
    db.session.add(quota)
    db.session.flush()
    return quota


def _url(endpoint: str, rule: str, w: SimpleNamespace) -> str:
    values = {
        "booking_id": w.booking.id,
        "resource_id": w.inst.id,
        "instrument_id": w.inst.id,
        "lab_id": w.lab.id,
        "closure_id": w.closure.id,
        "user_id": w.users["sme"].id,
        "notification_id": w.note.id,
        "token_id": w.token.id,
        "feed_token": w.feed,
        "code": w.inst.institute.code,
        "institute_id": w.inst.institute.id,
        "filename": "css/app.css",
        "series_id": w.series.id,  # recurrence
        "group_id": w.group.id,  # booking groups
        "entry_id": w.entry.id,  # waitlist
        "quota_id": w.quota.id,  # booking policies
        "token": "not-a-signed-link",  # security: reset and verification links
        "invitation_id": w.invitation.id,  # companies and members
        "secret": w.invitation_secret,
        "company_id": w.pending_company.id,
        "order_id": w.order.id,  # service orders
        "item_id": w.order.items[0].id,
        "any(accept,reject,cancel,receive,start,return,collect):action": "cancel",
        "offering_id": w.order.items[0].offering_id,
        "any(withdraw,activate):change": "activate",
        "external_id": "LIMS-1",  # catalogue API: an id no resource has yet
        "day_id": 999_999,  # holidays: no such day
    }
    if endpoint == "company.staff_active":  # a staff account of the institute
        values["user_id"] = w.users["staff"].id
    url = rule
    for name, value in values.items():
        for conv in ("int:", "path:", ""):
            url = url.replace(f"<{conv}{name}>", str(value))
    assert "<" not in url, f"no value for a parameter of {endpoint}: {rule}"
    return url


@pytest.mark.parametrize("route", ROUTES)
def test_route_status_per_role(app: Flask, world: SimpleNamespace, route: str) -> None:
    endpoint, method = route.split(" ")
    if route not in MATRIX:
        pytest.fail(f"{route} has no rule in MATRIX")
    expected = expected_statuses(route)
    rule = next(r.rule for r in app.url_map.iter_rules() if r.endpoint == endpoint)
    url = _url(endpoint, rule, world)
    got = []
    for role in ALL_ROLES:
        _reset(world)
        client = app.test_client()
        headers: dict[str, str] = {}
        user = world.users.get(role)
        if user is not None:
            if url.startswith("/api/"):
                headers = bearer(user)
            else:
                with client.session_transaction() as sess:
                    sess["_user_id"] = user.get_id()
                    sess["_fresh"] = True
        if method == "GET":
            response = client.get(url, headers=headers, query_string=QUERY.get(route, {}))
        elif method == "DELETE":
            response = client.delete(url, headers=headers)
        elif method == "PUT":
            response = client.put(url, json=BODY.get(route, {}), headers=headers)
        elif url.startswith("/api/"):
            response = client.post(url, json=BODY.get(route, {}), headers=headers)
        else:
            response = client.post(url, data={}, headers=headers)
        assert response.status_code < 500, (role, response.get_data(as_text=True)[:500])
        got.append(response.status_code)
    if DISCOVER:
        print(f'DISCOVER    "{route}": {tuple(got)},')
        return
    assert tuple(got) == expected, f"{route}: got {tuple(got)} for {ALL_ROLES}"


def _reset(w: SimpleNamespace) -> None:
    """Undo what an allowed caller changed, so each role meets the same state."""
    from labshare.extensions import db

    db.session.rollback()
    db.session.refresh(w.booking)
    w.booking.status = BookingStatus.PENDING
    w.booking.decision_reason = None
    w.booking.start_at, w.booking.end_at = w.booking_times  # moving a booking: back again
    for role, user in w.users.items():
        db.session.refresh(user)
        user.active = True
        user.company_admin = role == "sme"  # companies and members
        user.institute_admin = role == "institute_admin"
    db.session.refresh(w.invitation)  # companies and members: open, pending again
    w.invitation.revoked_at = None
    db.session.refresh(w.pending_company)
    w.pending_company.status = "pending"
    db.session.refresh(w.token)
    w.token.revoked_at = None
    db.session.refresh(w.entry)  # waitlist: the offer is open again
    w.entry.status = "offered"
    db.session.refresh(w.order)  # service orders: submitted again
    w.order.status = "submitted"
    db.session.commit()
