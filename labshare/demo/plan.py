"""What the steps of one demo seeding share: the run's state (``Plan``), its
report, the time frame of the generated activity and two small conversions."""

from __future__ import annotations

import datetime as dt
import random
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from werkzeug.security import generate_password_hash

from labshare.demo import catalogue as cat
from labshare.extensions import db
from labshare.models import Company, Institute, Instrument, Lab, User
from labshare.timeutil import localize

DEFAULT_SEED = 2026
DEMO_ZONE = "Asia/Shanghai"
#: A year of history, so a fresh install's monthly trend has twelve months to show;
#: the quarter before today is the busiest.
PAST_DAYS = 365
RECENT_DAYS = 91
FUTURE_DAYS = 30

CENT = Decimal("0.01")


@dataclass
class SeedReport:
    skipped: bool = False
    created: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    unnormalised_units: list[str] = field(default_factory=list)
    logins: list[tuple[str, str, str]] = field(default_factory=list)


@dataclass
class Plan:
    """State shared by the steps of one run."""

    seed: int
    now: dt.datetime
    today: dt.date
    report: SeedReport
    password_hash: str | None = None
    institutes: dict[str, Institute] = field(default_factory=dict)
    labs: list[Lab] = field(default_factory=list)
    instruments: list[Instrument] = field(default_factory=list)
    companies: list[Company] = field(default_factory=list)
    users_by_company: dict[int, list[User]] = field(default_factory=dict)
    staff_by_institute: dict[int, list[User]] = field(default_factory=dict)

    def rng(self, *key: object) -> random.Random:
        # Reproducible demo data, not secrets.
        return random.Random(":".join([str(self.seed), *map(str, key)]))  # noqa: S311

    def hash_password(self) -> str:
        if self.password_hash is None:
            # One hash for every demo account (same password): scrypt per user
            # would make the seed take tens of seconds.
            self.password_hash = generate_password_hash(cat.DEMO_PASSWORD, method="scrypt")
        return self.password_hash

    def add(self, table: str, objs: Iterable[object]) -> None:
        items = list(objs)
        db.session.add_all(items)
        self.report.created[table] += len(items)


def money(value: float | int | Decimal) -> Decimal:
    return Decimal(str(value)).quantize(CENT, rounding=ROUND_HALF_UP)


def local_at(day: dt.date, at: dt.time, tz: str) -> dt.datetime:
    return localize(dt.datetime.combine(day, at), tz).astimezone(dt.UTC)
