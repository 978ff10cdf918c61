"""Realistic demo data, written idempotently.

Every row is keyed on a natural key (institute code, lab name within its
institute, instrument asset number, company credit code, user e-mail, closure and
booking by (resource, start)), so a second run adds nothing. Attributes come from
a random generator seeded per entity, so they do not depend on what the database
already holds.

Activity (closures, bookings, usage records, qualifications) is generated relative
to ``utcnow()`` and only while no demo account has a booking yet: a run on a later
day must not add a second, shifted set of bookings.

Nothing here commits; the caller (``flask seed-demo``) commits once.
"""

from __future__ import annotations

from sqlalchemy import func, select

from labshare.demo import catalogue as cat
from labshare.demo.activity import add_bookings, demo_bookings_exist
from labshare.demo.closures import add_closures
from labshare.demo.people import add_companies_and_users, add_staff_and_admin
from labshare.demo.places import add_institutes, add_labs_and_instruments
from labshare.demo.plan import DEFAULT_SEED, DEMO_ZONE, Plan, SeedReport
from labshare.extensions import db
from labshare.models import Institute, ServiceOrder, User
from labshare.timeutil import utcnow, zone

__all__ = ["DEFAULT_SEED", "SeedReport", "demo_data_present", "seed_demo"]


def demo_data_present() -> bool:
    return db.session.scalar(select(func.count()).select_from(Institute)) != 0


def seed_demo(*, seed: int = DEFAULT_SEED) -> SeedReport:
    """Add whatever part of the demo data is missing. Does not commit."""
    now = utcnow()
    plan = Plan(
        seed=seed,
        now=now,
        today=now.astimezone(zone(DEMO_ZONE)).date(),
        report=SeedReport(),
    )
    add_institutes(plan)
    add_labs_and_instruments(plan)
    add_companies_and_users(plan)
    add_staff_and_admin(plan)
    if not demo_bookings_exist():
        add_closures(plan)
        add_bookings(plan)
    _service_orders(plan)
    plan.report.logins = [
        ("admin", cat.ADMIN_EMAIL, cat.DEMO_PASSWORD),
        ("staff", cat.staff_email("NIM"), cat.DEMO_PASSWORD),
        ("sme", cat.SME_EMAIL, cat.DEMO_PASSWORD),
    ]
    return plan.report


def _service_orders(plan: Plan) -> None:
    """Offerings where an institute has none; demo orders in every status, once."""
    from labshare.demo.orders import seed_offerings, seed_orders

    institutes = sorted(plan.institutes.values(), key=lambda i: i.id)
    plan.report.created["service_offering"] += len(seed_offerings(institutes))
    demo_orders = (
        select(ServiceOrder.id)
        .join(User, User.id == ServiceOrder.user_id)
        .where(User.email.like(f"%{cat.DEMO_EMAIL_SUFFIX}"))
        .limit(1)
    )
    if db.session.scalar(demo_orders) is not None:
        return
    orders = seed_orders(
        institutes,
        plan.users_by_company,
        plan.companies,
        plan.now,
        plan.rng("orders"),
        plan.staff_by_institute,
    )
    plan.report.created["service_order"] += len(orders)
    plan.report.created["service_order_item"] += sum(len(o.items) for o in orders)
