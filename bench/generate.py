"""Generate campaign-scale data into the database ``DATABASE_URL`` names.

    DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/labshare_bench \\
        python -m bench.generate --bookings 1000000 --reset

The schema comes from the migrations (``flask db upgrade``); the rows are written
by bulk insert, bypassing the ORM: PostgreSQL through psycopg's ``COPY``, SQLite
through SQLAlchemy Core ``insert()`` executemany in chunks of 10,000.

What it makes (one year of a nationwide campaign): ~300 institutes over all 31
provinces, 5,240 labs with weekday opening hours, 37,000 instruments of the 60 kinds
in ``instruments.csv``, 66,000 companies with valid credit codes and one SME user
each (all with the password ``BENCH_PASSWORD``, hashed once), staff for every
institute, a holiday closure per lab, and N bookings in every status over the year
around "now": never overlapping on one resource, on the 30-minute grid, inside
opening hours in the institute's zone, outside closures and calibration expiry.
"""

from __future__ import annotations

import argparse
import bisect
import csv
import datetime as dt
import functools
import itertools
import math
import os
import random
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, Engine, make_url

ROOT = Path(__file__).resolve().parent.parent
BENCH_PASSWORD = "bench-password-2026"  # benchmark accounts only
ADMIN_EMAIL = "admin@bench.labshare.cn"
CHUNK = 10_000
UTC = dt.UTC

# GB/T 2260 province-level divisions.
PROVINCES = [
    ("110000", "北京市", "北京"),
    ("120000", "天津市", "天津"),
    ("130000", "河北省", "石家庄"),
    ("140000", "山西省", "太原"),
    ("150000", "内蒙古自治区", "呼和浩特"),
    ("210000", "辽宁省", "沈阳"),
    ("220000", "吉林省", "长春"),
    ("230000", "黑龙江省", "哈尔滨"),
    ("310000", "上海市", "上海"),
    ("320000", "江苏省", "南京"),
    ("330000", "浙江省", "杭州"),
    ("340000", "安徽省", "合肥"),
    ("350000", "福建省", "福州"),
    ("360000", "江西省", "南昌"),
    ("370000", "山东省", "济南"),
    ("410000", "河南省", "郑州"),
    ("420000", "湖北省", "武汉"),
    ("430000", "湖南省", "长沙"),
    ("440000", "广东省", "广州"),
    ("450000", "广西壮族自治区", "南宁"),
    ("460000", "海南省", "海口"),
    ("500000", "重庆市", "重庆"),
    ("510000", "四川省", "成都"),
    ("520000", "贵州省", "贵阳"),
    ("530000", "云南省", "昆明"),
    ("540000", "西藏自治区", "拉萨"),
    ("610000", "陕西省", "西安"),
    ("620000", "甘肃省", "兰州"),
    ("630000", "青海省", "西宁"),
    ("640000", "宁夏回族自治区", "银川"),
    ("650000", "新疆维吾尔自治区", "乌鲁木齐"),
]
# Xinjiang's institutes keep Urumqi time: exercises a second zone at scale.
PROVINCE_TZ = {"650000": "Asia/Urumqi"}

FIELD_ZH = {
    "geometric": "几何量",
    "thermal": "热学",
    "mechanical": "力学",
    "electromagnetic": "电磁学",
    "radio": "无线电",
    "time_frequency": "时间频率",
    "ionizing_radiation": "电离辐射",
    "chemical": "化学",
    "acoustic": "声学",
    "optical": "光学",
}
FIELD_EN = {
    "geometric": "Length and geometry",
    "thermal": "Thermal",
    "mechanical": "Mechanical",
    "electromagnetic": "Electromagnetic",
    "radio": "Radio",
    "time_frequency": "Time and frequency",
    "ionizing_radiation": "Ionizing radiation",
    "chemical": "Chemical",
    "acoustic": "Acoustic",
    "optical": "Optical",
}

# Fallback when labshare.catalogue.capability.to_base is not there: factor (and offset)
# to the measurand's SI base unit.
UNIT_TO_BASE: dict[str, tuple[float, float]] = {
    "mm": (1e-3, 0),
    "m": (1, 0),
    "µm": (1e-6, 0),
    "nm": (1e-9, 0),
    "g": (1e-3, 0),
    "kN": (1e3, 0),
    "MPa": (1e6, 0),
    "kPa": (1e3, 0),
    "°C": (1, 273.15),
    "Hz": (1, 0),
    "MHz": (1e6, 0),
    "GHz": (1e9, 0),
    "W": (1, 0),
    "mW": (1e-3, 0),
    "V": (1, 0),
    "kV": (1e3, 0),
    "Ω": (1, 0),
    "GΩ": (1e9, 0),
    "A": (1, 0),
    "s": (1, 0),
    "N·m": (1, 0),
    "m/s²": (1, 0),
    "Bq": (1, 0),
    "Bq/m³": (1, 0),
    "Gy": (1, 0),
    "µSv/h": (1e-6 / 3600, 0),
    "µmol/mol": (1e-6, 0),
    "µS/cm": (1e-4, 0),
    "L/min": (1e-3 / 60, 0),
    "m³/h": (1 / 3600, 0),
    "lx": (1, 0),
    "cd/m²": (1, 0),
    "mg/L": (1e-3, 0),
    "%": (1e-2, 0),
    "pH": (1, 0),
    "rpm": (2 * math.pi / 60, 0),
    "dB": (1, 0),
}

# Local opening hours (Mon-Fri) and the disjoint bins bookings are drawn from, in
# minutes after midnight. Bins never cross the lunch break, so every booking fits
# one opening period; distinct bins never overlap, so no two bookings do.
OPENING = [((8, 30), (12, 0)), ((13, 0), (17, 30))]
BINS = [(510, 600), (600, 720), (780, 900), (900, 1050)]
SLOT = 30
WINDOW_PAST_DAYS = 275
WINDOW_FUTURE_DAYS = 89  # inside the default 90-day horizon

PURPOSES = [
    "产品出厂检验",
    "零件尺寸复测",
    "来料检验比对",
    "研发样品测试",
    "内部校准比对",
    "质量问题排查",
    "客户投诉复核",
    "工艺验证",
    "Incoming inspection",
    "Prototype testing",
]
SAMPLES = [None, None, "3 件样品", "10 件样品", "样件 1 套", "2 samples"]
INDUSTRY = ["机械制造", "汽车零部件", "电子信息", "新材料", "医疗器械", "食品", "化工", "纺织"]
COMPANY_WORDS = ["精密", "智能", "科技", "机电", "新材料", "仪器", "电子", "模具", "光电", "自动化"]
MAKERS = ["Hexagon", "Zeiss", "Keysight", "Fluke", "Mitutoyo", "Rohde & Schwarz", "中航", "航天"]


# ----------------------------------------------------------------------------- helpers
def log(msg: str) -> None:
    print(msg, flush=True)


class Timer:
    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.last = self.t0

    def lap(self, what: str, rows: int | None = None) -> None:
        now = time.perf_counter()
        took = now - self.last
        rate = f"  ({rows / took:,.0f} rows/s)" if rows and took > 0 else ""
        count = f" {rows:,}" if rows is not None else ""
        log(f"  {what:<34}{count:>12} in {took:7.1f} s{rate}")
        self.last = now

    def total(self) -> float:
        return time.perf_counter() - self.t0


def instruments_csv() -> Path:
    for path in (ROOT / "labshare/demo/data/instruments.csv", ROOT / "bench/data/instruments.csv"):
        if path.exists():
            return path
    raise SystemExit("instruments.csv not found in labshare/demo/data/ nor bench/data/")


def to_base_function() -> Callable[[float, str, str], float]:
    """The app's own unit normaliser if it exists (so capability search matches),
    else the factor table above."""

    def table(value: float, unit: str, _measurand: str) -> float:
        factor, offset = UNIT_TO_BASE[unit]
        return (value + offset) * factor if offset else value * factor

    try:
        from labshare.catalogue.capability import to_base
    except ImportError:
        return table

    @functools.cache
    def app(value: float, unit: str, measurand: str) -> float:
        try:
            return to_base(value, unit, measurand)
        except Exception as exc:  # a unit the app refuses: say so, use the table
            log(f"  to_base({value}, {unit!r}, {measurand!r}) failed ({exc}); table used")
            return table(value, unit, measurand)

    return app


def absolute_url(url: str) -> str:
    """SQLite paths made absolute (Flask-SQLAlchemy would put a relative one under
    the instance folder, while a plain engine would put it under the cwd)."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite" and u.database and u.database != ":memory:":
        u = u.set(database=str(Path(u.database).resolve()))
    return u.render_as_string(hide_password=False)


def reset_database(url: str) -> None:
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        if u.database:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(u.database + suffix).unlink(missing_ok=True)
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        return
    admin = create_engine(u.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :d AND pid <> pg_backend_pid()"
            ),
            {"d": u.database},
        )
        conn.execute(text(f'DROP DATABASE IF EXISTS "{u.database}"'))
        conn.execute(text(f'CREATE DATABASE "{u.database}"'))
    admin.dispose()


def ensure_database(url: str) -> None:
    """Create the PostgreSQL database if it does not exist yet (SQLite creates itself)."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        if u.database:
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        return
    admin = create_engine(u.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.scalar(
            text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": u.database}
        )
        if not exists:
            conn.execute(text(f'CREATE DATABASE "{u.database}"'))
    admin.dispose()


def migrate(url: str) -> None:
    """``flask db upgrade`` on ``url``."""
    import flask_migrate

    from config import DevelopmentConfig
    from labshare import create_app
    from labshare.extensions import db

    app = create_app(
        DevelopmentConfig,
        SQLALCHEMY_DATABASE_URI=url,
        SCHEDULER_ENABLED=False,
        SECRET_KEY="bench-generator",
    )
    with app.app_context():
        flask_migrate.upgrade()
        db.engine.dispose()


def aggregate(url: str) -> None:
    """Fill the statistics' stored days (``stats_daily``): the bulk load ran with the
    triggers off, so nothing marked its days, and the figures would count them from
    stored rows that are not there."""
    from config import DevelopmentConfig
    from labshare import create_app
    from labshare.campaign import stats_store
    from labshare.extensions import db

    app = create_app(
        DevelopmentConfig,
        SQLALCHEMY_DATABASE_URI=url,
        SCHEDULER_ENABLED=False,
        SECRET_KEY="bench-generator",
    )
    with app.app_context():
        stats_store.rebuild()
        db.session.commit()
        db.engine.dispose()


# ----------------------------------------------------------------------------- writer
class Writer:
    """Bulk rows into one table: COPY on PostgreSQL, executemany on SQLite."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.pg = conn.dialect.name == "postgresql"
        from labshare.models import Base

        self.tables = Base.metadata.tables

    def write(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        n = 0
        if self.pg:
            raw = self.conn.connection.driver_connection
            assert raw is not None
            with raw.cursor() as cur:
                cols = ", ".join(columns)
                with cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
                        n += 1
            return n
        stmt = self.tables[table].insert()
        for chunk in batched(rows, CHUNK):
            self.conn.execute(stmt, [dict(zip(columns, r, strict=True)) for r in chunk])
            n += len(chunk)
        return n


def batched(rows: Iterable[Any], size: int) -> Iterator[list[Any]]:
    it = iter(rows)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


# ----------------------------------------------------------------------------- generator
class Generator:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.now = dt.datetime.now(UTC).replace(second=0, microsecond=0)
        self.to_base = to_base_function()
        with instruments_csv().open(encoding="utf-8") as fh:
            self.kinds = list(csv.DictReader(fh))
        self.kinds_by_field: dict[str, list[dict[str, str]]] = {}
        for kind in self.kinds:
            self.kinds_by_field.setdefault(kind["field"], []).append(kind)
        self.fields = sorted(self.kinds_by_field)
        # filled as we go
        self.institutes: list[tuple[int, str, str]] = []  # id, province, tz
        self.staff_by_institute: dict[int, list[int]] = {}
        # resource id -> (kind, institute id, fee per hour, waiver %, tz, cutoff date|None, status)
        self.resources: list[tuple[int, str, int, int, int, str, dt.date | None, str]] = []
        self.lab_capacity: dict[int, int] = {}
        self.company_user: list[int] = []  # index = company id - 1
        self.holiday = (dt.date(self.now.year - 1, 10, 1), dt.date(self.now.year - 1, 10, 8))
        if self.now.date() >= dt.date(self.now.year, 10, 8):
            self.holiday = (dt.date(self.now.year, 10, 1), dt.date(self.now.year, 10, 8))

    # -- reference rows
    def institute_rows(self) -> Iterator[tuple[Any, ...]]:
        n = self.args.institutes
        created = self.now - dt.timedelta(days=400)
        for i in range(1, n + 1):
            code, province, city = PROVINCES[(i - 1) % len(PROVINCES)]
            tz = PROVINCE_TZ.get(code, "Asia/Shanghai")
            kind = (
                "national"
                if i == 1
                else (
                    "provincial"
                    if i <= len(PROVINCES)
                    else self.rng.choice(["municipal", "industry_centre", "other"])
                )
            )
            self.institutes.append((i, province, tz))
            yield (
                i,
                f"B{i:04d}",
                f"{city}第{i}计量测试研究院",
                f"Metrology and Testing Institute {i}, {city}",
                kind,
                code,
                province,
                city,
                f"{city}市计量路 {i} 号",
                f"0{i:03d}-8888{i % 10000:04d}",
                f"contact{i}@inst{i}.bench.labshare.cn",
                tz,
                True,
                created,
            )

    def lab_and_instrument_rows(
        self,
    ) -> tuple[
        list[tuple[Any, ...]],
        list[tuple[Any, ...]],
        list[tuple[Any, ...]],
        list[tuple[Any, ...]],
        list[tuple[Any, ...]],
        list[tuple[Any, ...]],
        list[tuple[Any, ...]],
    ]:
        """resource, lab, instrument, opening_period, booking_rules, closure rows."""
        rng = self.rng
        n_labs, n_inst = self.args.labs, self.args.instruments
        created = self.now - dt.timedelta(days=380)
        resource: list[tuple[Any, ...]] = []
        lab: list[tuple[Any, ...]] = []
        instrument: list[tuple[Any, ...]] = []
        opening: list[tuple[Any, ...]] = []
        rules: list[tuple[Any, ...]] = []
        closure: list[tuple[Any, ...]] = []
        lab_field: list[str] = []
        rid = 0
        # Labs, spread over institutes (bigger ones get more)
        inst_weights = [1.0 / (1 + (i % 37)) ** 0.5 for i in range(len(self.institutes))]
        lab_inst = rng.choices(self.institutes, weights=inst_weights, k=n_labs)
        period_id = 0
        lab_ids: list[int] = []
        for k in range(n_labs):
            rid += 1
            inst_id, _prov, tz = lab_inst[k]
            field = self.fields[k % len(self.fields)]
            capacity = rng.choice([1, 1, 1, 2, 3, 4])
            resource.append(
                (
                    rid,
                    "lab",
                    inst_id,
                    f"{FIELD_ZH[field]}开放实验室 {k + 1}",
                    f"{FIELD_EN[field]} open laboratory {k + 1}",
                    f"面向中小企业开放的{FIELD_ZH[field]}计量实验室",
                    field,
                    "available",
                    False,
                    Decimal(rng.choice([0, 100, 200])),
                    rng.choice([0, 50, 100]),
                    created,
                )
            )
            lab.append(
                (
                    rid,
                    f"{rng.choice('ABCDEF')} 栋 {rng.randint(1, 6)}0{rng.randint(1, 9)}",
                    capacity,
                )
            )
            for weekday in range(5):
                for (oh, om), (ch, cm) in OPENING:
                    period_id += 1
                    opening.append((period_id, rid, weekday, dt.time(oh, om), dt.time(ch, cm)))
            rules.append((rid, rid, 30, 30, 480, 24, 90, rng.random() < 0.6, 5, 24))
            lo = dt.datetime.combine(self.holiday[0], dt.time(), ZoneInfo(tz)).astimezone(UTC)
            hi = dt.datetime.combine(self.holiday[1], dt.time(), ZoneInfo(tz)).astimezone(UTC)
            closure.append((rid, rid, lo, hi, "holiday", "国庆假期"))
            self.resources.append(
                (rid, "lab", inst_id, int(resource[-1][9]), resource[-1][10], tz, None, "available")
            )
            self.lab_capacity[rid] = capacity
            lab_ids.append(rid)
            lab_field.append(field)
        # Instruments: ~7 per lab, of kinds from the lab's field
        lab_index = [rng.randrange(n_labs) for _ in range(n_inst)]
        cal_late = dt.date(self.now.year + 1, 12, 31)
        for j in range(n_inst):
            rid += 1
            li = lab_index[j]
            lab_id = lab_ids[li]
            inst_id = resource[li][2]
            tz = self.resources[li][5]
            kind = rng.choice(self.kinds_by_field[lab_field[li]])
            scale = rng.choice([0.5, 1, 1, 1, 2])
            rmin, rmax = float(kind["range_min"]), float(kind["range_max"]) * scale
            r = rng.random()
            status = "maintenance" if r < 0.02 else ("retired" if r < 0.03 else "available")
            # 4 % expire inside the booking window: nothing is booked past that date
            cutoff: dt.date | None = None
            cal = cal_late
            if rng.random() < 0.04:
                cal = (self.now + dt.timedelta(days=rng.randint(-60, 80))).date()
                cutoff = cal
            fee = int(kind["fee_per_hour_cny"])
            waiver = rng.choice([0, 30, 50, 100])
            resource.append(
                (
                    rid,
                    "instrument",
                    inst_id,
                    kind["name_zh"],
                    kind["name_en"],
                    None,
                    kind["field"],
                    status,
                    kind["requires_qualification"] == "yes",
                    Decimal(fee),
                    waiver,
                    created,
                )
            )
            instrument.append(
                (
                    rid,
                    lab_id,
                    f"M-{rng.randint(100, 9999)}",
                    rng.choice(MAKERS),
                    f"SN{rid:08d}",
                    f"ZC-{inst_id:04d}-{rid:06d}",
                    kind["measurand"],
                    kind["unit"],
                    rmin,
                    rmax,
                    kind["accuracy"],
                    self.to_base(rmin, kind["unit"], kind["measurand"]),
                    self.to_base(rmax, kind["unit"], kind["measurand"]),
                    cal,
                    f"JZ{rid:09d}",
                )
            )
            if rng.random() < 0.2:  # own rules for a fifth of the instruments
                rules.append((len(rules) + 1, rid, 30, 60, 240, 48, 90, True, 3, 48))
            self.resources.append((rid, "instrument", inst_id, fee, waiver, tz, cutoff, status))
        # renumber rules ids densely
        rules = [(i + 1, *row[1:]) for i, row in enumerate(rules)]
        closure = [(i + 1, *row[1:]) for i, row in enumerate(closure)]
        return resource, lab, instrument, opening, rules, closure, lab_field  # type: ignore[return-value]

    def company_rows(self) -> Iterator[tuple[Any, ...]]:
        from labshare.accounts.credit_code import make_credit_code

        rng = self.rng
        created = self.now - dt.timedelta(days=500)
        for c in range(1, self.args.companies + 1):
            code, province, city = PROVINCES[c % len(PROVINCES)]
            division = code[:2] + f"{1 + c % 20:02d}00"
            yield (
                c,
                f"{city}{rng.choice(COMPANY_WORDS)}{rng.choice(COMPANY_WORDS)}有限公司{c}",
                make_credit_code(division, f"{c:08d}"),
                province,
                rng.choice(INDUSTRY),
                rng.choice(["micro", "small", "small", "medium"]),
                created,
            )

    def user_rows(self, password_hash: str) -> Iterator[tuple[Any, ...]]:
        created = self.now - dt.timedelta(days=400)
        uid = 0
        uid += 1
        yield (
            uid,
            ADMIN_EMAIL,
            "平台管理员",
            password_hash,
            "admin",
            None,
            None,
            "zh_CN",
            True,
            None,
            "bench",
            created,
            created,
            None,
        )
        for inst_id, _p, _tz in self.institutes:
            ids = []
            for k in range(self.args.staff_per_institute):
                uid += 1
                ids.append(uid)
                yield (
                    uid,
                    f"staff{k + 1}@inst{inst_id}.bench.labshare.cn",
                    f"工作人员{inst_id}-{k + 1}",
                    password_hash,
                    "staff",
                    None,
                    inst_id,
                    "zh_CN",
                    True,
                    None,
                    "bench",
                    created,
                    created,
                    None,
                )
            self.staff_by_institute[inst_id] = ids
        for c in range(1, self.args.companies + 1):
            uid += 1
            self.company_user.append(uid)
            yield (
                uid,
                sme_email(c),
                f"企业用户{c}",
                password_hash,
                "sme",
                c,
                None,
                "zh_CN" if c % 5 else "en",
                True,
                None,
                "bench",
                created,
                created,
                None,
            )

    # -- bookings
    def booking_plan(self) -> list[tuple[int, int, int, int, int, int]]:
        """Compact booking tuples (created_min, resource index, start_min, end_min,
        status index, company id), sorted by creation like a real table."""
        rng = self.rng
        total = self.args.bookings
        today = self.now.date()
        first = today - dt.timedelta(days=WINDOW_PAST_DAYS)
        days = [
            first + dt.timedelta(days=i)
            for i in range(WINDOW_PAST_DAYS + WINDOW_FUTURE_DAYS + 1)
            if (first + dt.timedelta(days=i)).weekday() < 5
            and not (self.holiday[0] <= first + dt.timedelta(days=i) < self.holiday[1])
        ]
        positions = len(days) * len(BINS)
        epoch = dt.datetime(2000, 1, 1, tzinfo=UTC)
        now_min = int((self.now - epoch).total_seconds() // 60)
        day_start: dict[tuple[str, dt.date], int] = {}

        def local_midnight_min(tz: str, day: dt.date) -> int:
            key = (tz, day)
            if key not in day_start:
                local = dt.datetime.combine(day, dt.time(), ZoneInfo(tz))
                day_start[key] = int((local.astimezone(UTC) - epoch).total_seconds() // 60)
            return day_start[key]

        # Popularity: heavy-tailed; labs get about 5 % of the bookings.
        weights = []
        for res in self.resources:
            w = rng.paretovariate(1.3)
            if res[1] == "lab":
                w *= 0.7
            weights.append(min(w, 40.0))
        scale = total / sum(weights)
        cap = int(positions * 0.85)
        counts = [min(cap, int(w * scale)) for w in weights]
        short = total - sum(counts)
        idx = list(range(len(counts)))
        while short > 0:
            for i in rng.sample(idx, min(short, len(idx))):
                if counts[i] < cap:
                    counts[i] += 1
                    short -= 1
        n_companies = self.args.companies
        # Companies: a few very active ones, most book rarely.
        company_cum = list(itertools.accumulate(1.0 / (k + 1) ** 0.6 for k in range(n_companies)))
        company_perm = list(range(1, n_companies + 1))
        rng.shuffle(company_perm)
        plan: list[tuple[int, int, int, int, int, int]] = []
        for ri, res in enumerate(self.resources):
            n = counts[ri]
            if n == 0:
                continue
            _rid, _kind, _inst, _fee, _w, tz, cutoff, status = res
            usable = positions
            if cutoff is not None:
                usable = len(
                    days[: bisect.bisect_right(days, cutoff - dt.timedelta(days=1))]
                ) * len(BINS)
            if status != "available":  # maintenance/retired: only history
                usable = bisect.bisect_right(days, today - dt.timedelta(days=1)) * len(BINS)
            n = min(n, int(usable * 0.9))
            if n <= 0:
                continue
            for pos in rng.sample(range(usable), n):
                day = days[pos // len(BINS)]
                b0, b1 = BINS[pos % len(BINS)]
                slots = (b1 - b0) // SLOT
                length = rng.randint(1, min(slots, 6))
                offset = rng.randint(0, slots - length)
                base = local_midnight_min(tz, day)
                start = base + b0 + offset * SLOT
                end = start + length * SLOT
                if end <= now_min:
                    st = rng.choices(PAST_STATUS_IDX, PAST_WEIGHTS)[0]
                else:
                    st = rng.choices(FUTURE_STATUS_IDX, FUTURE_WEIGHTS)[0]
                created = min(start - rng.randint(60 * 24, 60 * 24 * 30), now_min - 1)
                u = rng.random() * company_cum[-1]
                company = company_perm[bisect.bisect_left(company_cum, u)]
                plan.append((created, ri, start, end, st, company))
        plan.sort()
        self.epoch = epoch
        return plan

    def booking_rows(
        self, plan: list[tuple[int, int, int, int, int, int]]
    ) -> Iterator[tuple[Any, ...]]:
        rng = self.rng
        epoch = self.epoch
        minute = dt.timedelta(minutes=1)
        fee_cache: dict[tuple[int, int, int], tuple[Decimal, Decimal]] = {}
        #: usage records of the completed bookings, written after the bookings
        self.usage: list[tuple[Any, ...]] = []
        staff_any = next(iter(self.staff_by_institute.values()))[0]
        for bid, (created_m, ri, start_m, end_m, st, company) in enumerate(plan, start=1):
            rid, kind, inst_id, fee_h, waiver, _tz, _cut, _status = self.resources[ri]
            halfhours = (end_m - start_m) // 30
            key = (fee_h, waiver, halfhours)
            if key not in fee_cache:
                fee = Decimal(fee_h * halfhours) / 2
                fee_cache[key] = (
                    fee.quantize(Decimal("0.01")),
                    (fee * waiver / 100).quantize(Decimal("0.01")),
                )
            fee, waived = fee_cache[key]
            status = STATUSES[st]
            created = epoch + created_m * minute
            start = epoch + start_m * minute
            end = epoch + end_m * minute
            user = self.company_user[company - 1]
            decided_by = decided_at = reason = cancelled_by = cancelled_at = None
            if status in ("approved", "completed", "no_show", "rejected"):
                staff = self.staff_by_institute[inst_id]
                decided_by = staff[bid % len(staff)]
                decided_at = created + dt.timedelta(minutes=rng.randint(5, 2000))
                if decided_at > self.now:
                    decided_at = self.now
                if status == "rejected":
                    reason = "时段已安排内部检定任务"
            late = False
            if status == "cancelled":
                cancelled_by = user
                cancelled_at = min(created + dt.timedelta(hours=rng.randint(1, 48)), self.now)
                # a few company cancellations come too late: statistics count no-shows
                late = bid % 10 == 0
            updated = decided_at or cancelled_at or created
            if status == "completed":
                staff = self.staff_by_institute.get(inst_id) or [staff_any]
                checked_in = start + dt.timedelta(minutes=rng.choice((0, 0, 5, 10)))
                checked_out = end - dt.timedelta(minutes=rng.choice((0, 0, 15)))
                self.usage.append(
                    (
                        len(self.usage) + 1,
                        bid,
                        checked_in,
                        max(checked_out, checked_in + minute),
                        SERVICES[bid % len(SERVICES)],
                        1 + bid % 5,
                        bid % 4 != 0,
                        staff[bid % len(staff)],
                        end,
                    )
                )
            if status in ("completed", "no_show"):
                updated = max(end, updated)
            yield (
                bid,
                rid,
                kind,
                inst_id,
                company,
                user,
                start,
                end,
                status,
                PURPOSES[bid % len(PURPOSES)],
                SAMPLES[bid % len(SAMPLES)],
                fee,
                waived,
                decided_by,
                decided_at,
                reason,
                cancelled_by,
                cancelled_at,
                late,
                created,
                updated,
            )


SERVICES = ["verification", "calibration", "testing", "training", "consultation"]
STATUSES = ["pending", "approved", "rejected", "cancelled", "completed", "no_show"]
PAST_STATUS_IDX = [1, 2, 3, 4, 5]
PAST_WEIGHTS = [2, 8, 12, 72, 6]
FUTURE_STATUS_IDX = [0, 1, 2, 3]
FUTURE_WEIGHTS = [25, 55, 8, 12]


def sme_email(company_id: int) -> str:
    return f"sme{company_id}@company{company_id}.bench.labshare.cn"


COLUMNS = {
    "institute": (
        "id code name name_en kind province_code province city address contact_phone "
        "contact_email timezone active created_at"
    ),
    "resource": (
        "id kind institute_id name name_en description field status "
        "requires_qualification fee_per_hour fee_waiver_percent created_at"
    ),
    "lab": "id location capacity",
    "instrument": (
        "id lab_id model manufacturer serial_number asset_number measurand unit range_min "
        "range_max accuracy range_min_base range_max_base calibration_valid_until "
        "certificate_number"
    ),
    "opening_period": "id lab_id weekday opens closes",
    "booking_rules": (
        "id resource_id slot_minutes min_minutes max_minutes lead_time_hours horizon_days "
        "requires_approval max_active_per_company cancel_deadline_hours"
    ),
    "closure": "id resource_id start_at end_at kind note",
    "company": "id name credit_code province industry size created_at",
    "user_account": (
        "id email name password_hash role company_id institute_id locale active "
        "calendar_token session_nonce email_verified_at created_at last_login_at"
    ),
    "booking": (
        "id resource_id resource_kind institute_id company_id user_id start_at end_at "
        "status purpose samples fee fee_waived decided_by_id decided_at decision_reason "
        "cancelled_by_id cancelled_at late_cancellation created_at updated_at"
    ),
    "usage_record": (
        "id booking_id checked_in_at checked_out_at service_type samples_count "
        "problem_solved recorded_by_id recorded_at"
    ),
}


def generate(url: str, args: argparse.Namespace) -> None:
    from werkzeug.security import generate_password_hash

    timer = Timer()
    if args.reset:
        reset_database(url)
    else:
        ensure_database(url)
    migrate(url)
    timer.lap("reset + flask db upgrade")

    engine: Engine = create_engine(url)
    backend = engine.dialect.name
    with engine.connect() as conn:
        existing = conn.scalar(text("SELECT count(*) FROM institute"))
    if existing:
        engine.dispose()
        raise SystemExit(f"{url} already has data; pass --reset to start afresh")
    gen = Generator(args)
    password_hash = generate_password_hash(BENCH_PASSWORD, method="scrypt")
    if backend == "sqlite":
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA journal_mode = WAL")
    with engine.begin() as conn:
        if backend == "sqlite":
            conn.exec_driver_sql("PRAGMA synchronous = OFF")
            conn.exec_driver_sql("PRAGMA cache_size = -400000")
        else:
            conn.exec_driver_sql("SET synchronous_commit = off")
            conn.exec_driver_sql("SET maintenance_work_mem = '256MB'")
            # The calendar_version triggers (migration 0004) would update a resource
            # row per booking row; new rows need no cache invalidation.
            conn.exec_driver_sql("SET session_replication_role = replica")
        sqlite_triggers: list[str] = []
        if backend == "sqlite":
            sqlite_triggers = [
                sql
                for name, sql in conn.exec_driver_sql(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'trigger'"
                )
            ]
            for name in (
                conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'trigger'")
                .scalars()
                .all()
            ):
                conn.exec_driver_sql(f'DROP TRIGGER "{name}"')
        w = Writer(conn)
        n = w.write("institute", COLUMNS["institute"].split(), gen.institute_rows())
        timer.lap("institute", n)
        resource, lab, instrument, opening, rules, closure, _ = gen.lab_and_instrument_rows()
        for table, rows in (
            ("resource", resource),
            ("lab", lab),
            ("instrument", instrument),
            ("opening_period", opening),
            ("booking_rules", rules),
            ("closure", closure),
        ):
            n = w.write(table, COLUMNS[table].split(), rows)
            timer.lap(table, n)
        del resource, lab, instrument, opening, rules, closure
        n = w.write("company", COLUMNS["company"].split(), gen.company_rows())
        timer.lap("company", n)
        n = w.write("user_account", COLUMNS["user_account"].split(), gen.user_rows(password_hash))
        timer.lap("user_account (one hash, reused)", n)
        plan = gen.booking_plan()
        timer.lap("booking plan (in memory)", len(plan))
        n = w.write("booking", COLUMNS["booking"].split(), gen.booking_rows(plan))
        timer.lap("booking", n)
        del plan
        n = w.write("usage_record", COLUMNS["usage_record"].split(), gen.usage)
        timer.lap("usage_record (completed bookings)", n)
        gen.usage = []
        for sql in sqlite_triggers:
            conn.exec_driver_sql(sql)
        if backend == "postgresql":
            for table in COLUMNS:
                conn.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT coalesce(max(id), 1) FROM {table}))"
                )
        # The bulk rows bypassed the ORM, so the search index is built once here (the
        # triggers that keep SQLite's FTS5 table in step are back by now).
        from labshare.catalogue.search_index import rebuild

        timer.lap("search index", rebuild(conn))
    timer.lap("commit")
    aggregate(url)
    timer.lap("statistics' stored days (stats_store.rebuild)")
    with engine.connect() as conn:
        if backend == "postgresql":
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.exec_driver_sql("VACUUM ANALYZE")
        else:
            conn.exec_driver_sql("ANALYZE")
            conn.commit()
    timer.lap("ANALYZE")
    engine.dispose()
    log(f"done: {args.bookings:,} bookings requested into {safe_url(url)} in {timer.total():.1f} s")


def safe_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.generate", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--db", help="database URL (default: $DATABASE_URL)")
    p.add_argument("--bookings", type=int, default=1_000_000)
    p.add_argument("--institutes", type=int, default=300)
    p.add_argument("--labs", type=int, default=5_240)
    p.add_argument("--instruments", type=int, default=37_000)
    p.add_argument("--companies", type=int, default=66_000)
    p.add_argument("--staff-per-institute", type=int, default=3)
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--reset", action="store_true", help="drop and recreate the database first")
    return p


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    url = args.db or os.environ.get("DATABASE_URL")
    if not url:
        sys.exit("set DATABASE_URL or pass --db")
    url = absolute_url(url)
    log(f"generating into {safe_url(url)}")
    generate(url, args)


if __name__ == "__main__":
    main()
