"""Order figures: equal to a naive count over random histories (property test), the
campaign API's order keys and totals, and the Orders sheet of the export."""

from __future__ import annotations

import datetime as dt
import statistics
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete

from labshare.campaign.stats import Period, Scope
from labshare.extensions import db
from labshare.models import (
    DeliveryMethod,
    Field,
    OrderServiceType,
    OrderStatus,
    ServiceOrder,
    ServiceOrderItem,
)
from labshare.orders.lifecycle import FINISHED
from labshare.orders.stats import order_figures, percentile
from labshare.timeutil import to_local
from tests.factories import completed_order
from tests.helpers import bearer

BASE = dt.datetime(2030, 3, 1, tzinfo=dt.UTC)
PERIOD = Period(dt.date(2030, 3, 1), dt.date(2030, 4, 1))

item_st = st.tuples(st.sampled_from(list(OrderServiceType)), st.sampled_from(list(Field)))
order_st = st.fixed_dictionaries(
    {
        "institute": st.integers(0, 1),
        "status": st.sampled_from(list(OrderStatus)),
        "created_h": st.integers(-100, 800),
        "turnaround_h": st.integers(1, 900),
        "promise_d": st.integers(-5, 60),
        "fee": st.integers(0, 1000),
        "waiver": st.integers(0, 100),
        "items": st.lists(item_st, min_size=1, max_size=3),
    }
)


def _insert(env: SimpleNamespace, spec: dict[str, Any]) -> ServiceOrder:
    institute = (env.institute, env.other_institute)[spec["institute"]]
    created = BASE + dt.timedelta(hours=spec["created_h"])
    status = spec["status"]
    received = completed = None
    if status in (OrderStatus.RECEIVED, OrderStatus.IN_PROGRESS, *FINISHED):
        received = created + dt.timedelta(hours=5)
    if status in FINISHED:
        assert received is not None
        completed = received + dt.timedelta(hours=spec["turnaround_h"])
    fee = Decimal(spec["fee"])
    waived = (fee * spec["waiver"] / 100).quantize(Decimal("0.01"))
    order = ServiceOrder(
        institute_id=institute.id,
        company_id=env.sme.company_id,
        user_id=env.sme.id,
        status=status,
        delivery=DeliveryMethod.COURIER,
        created_at=created,
        received_at=received,
        completed_at=completed,
        promised_date=(created + dt.timedelta(days=spec["promise_d"])).date(),
        fee=fee,
        fee_waived=waived,
    )
    offering = env.offering if spec["institute"] == 0 else env.foreign
    order.items = [
        ServiceOrderItem(
            position=n + 1,
            offering_id=offering.id,
            service_type=service,
            field=fld,
            name=f"item {n}",
            quantity=1,
            completed_at=completed,
        )
        for n, (service, fld) in enumerate(spec["items"])
    ]
    db.session.add(order)
    return order


def _naive(orders: list[ServiceOrder]) -> dict[str, Any]:
    tz = "Asia/Shanghai"

    def inside(t: dt.datetime | None) -> bool:
        return t is not None and PERIOD.start <= to_local(t, tz).date() < PERIOD.end

    created = [o for o in orders if inside(o.created_at)]
    finished = [o for o in orders if o.status in FINISHED and inside(o.completed_at)]
    by_status: dict[str, int] = {}
    items_status: dict[str, int] = {}
    items_service: dict[str, int] = {}
    items_field: dict[str, int] = {}
    for o in created:
        by_status[o.status.value] = by_status.get(o.status.value, 0) + 1
        for i in o.items:
            items_status[o.status.value] = items_status.get(o.status.value, 0) + 1
            items_service[i.service_type.value] = items_service.get(i.service_type.value, 0) + 1
            items_field[i.field.value] = items_field.get(i.field.value, 0) + 1
    promised = [o for o in finished if o.promised_date is not None]
    on_time = [o for o in promised if to_local(o.completed_at, tz).date() <= o.promised_date]  # type: ignore[arg-type,operator]
    hours: dict[int, list[float]] = {}
    for o in finished:
        hours.setdefault(o.institute_id, []).append(
            (o.completed_at - o.received_at).total_seconds() / 3600  # type: ignore[operator]
        )
    return {
        "orders_total": len(created),
        "orders_by_status": dict(sorted(by_status.items())),
        "items_total": sum(len(o.items) for o in created),
        "items_by_status": dict(sorted(items_status.items())),
        "items_by_service": dict(sorted(items_service.items())),
        "items_by_field": dict(sorted(items_field.items())),
        "person_times": len(finished),
        "problems_solved": sum(len(o.items) for o in finished),
        "fees_charged": float(sum((o.fee - o.fee_waived for o in finished), Decimal(0))),
        "fees_waived": float(sum((o.fee_waived for o in finished), Decimal(0))),
        "on_time_share": round(len(on_time) / len(promised), 4) if promised else None,
        "turnaround": {
            str(k): {
                "count": len(v),
                "median_hours": round(statistics.median(v), 2),
                "p90_hours": round(sorted(v)[max(1, -(-9 * len(v) // 10)) - 1], 2),
            }
            for k, v in sorted(hours.items())
        },
    }


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(specs=st.lists(order_st, max_size=10))
def test_order_figures_equal_a_naive_count(
    env: SimpleNamespace, specs: list[dict[str, Any]]
) -> None:
    db.session.execute(delete(ServiceOrderItem))
    db.session.execute(delete(ServiceOrder))
    orders = [_insert(env, s) for s in specs]
    db.session.commit()
    counted = order_figures(PERIOD, Scope.everything()).as_dict()
    assert counted == _naive(orders)
    one = order_figures(PERIOD, Scope.institute(env.institute.id)).as_dict()
    mine = [o for o in orders if o.institute_id == env.institute.id]
    assert one == _naive(mine)


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 90) is None
    assert percentile([5.0], 90) == 5.0
    assert percentile([float(n) for n in range(1, 11)], 90) == 9.0
    assert percentile([float(n) for n in range(1, 21)], 90) == 18.0


def test_campaign_api_adds_order_figures_and_totals(client: Any, env: SimpleNamespace) -> None:
    completed_order(env)
    r = client.get(
        "/api/v1/stats/campaign",
        query_string={"from": "2029-12-01", "to": "2030-02-01"},
        headers=bearer(env.admin),
    )
    body = r.get_json()
    assert r.status_code == 200, body
    assert body["orders"]["person_times"] == 1
    assert body["orders"]["problems_solved"] == 2
    assert body["orders"]["items_by_service"] == {"calibration": 1, "testing": 1}
    assert body["orders"]["fees_waived"] == 180.0  # 50 % of 200, and of 2 x 80
    assert body["person_times_total"] == body["completed"] + 1
    assert body["fees_waived_total"] == body["fees_waived"] + body["orders"]["fees_waived"]
    assert body["completed"] == 0  # the booking figures are untouched


def test_export_has_an_orders_sheet_and_csv(client: Any, env: SimpleNamespace) -> None:
    import io as _io

    from openpyxl import load_workbook

    order = completed_order(env)
    r = client.get(
        "/api/v1/reports/usage",
        query_string={"month": "2030-01", "format": "xlsx"},
        headers=bearer(env.admin),
    )
    assert r.status_code == 200
    book = load_workbook(_io.BytesIO(r.data), read_only=True)
    assert book.sheetnames[-2:] == ["Orders", "Bookings"]
    rows = list(book["Orders"].iter_rows(values_only=True))
    assert rows[0][0] == "Order no." and len(rows) == 3
    assert rows[1][0] == order.id and rows[1][18] == f"C-{order.id}-0"
    r = client.get(
        "/api/v1/reports/usage",
        query_string={"month": "2030-01", "format": "csv", "detail": "orders"},
        headers=bearer(env.admin),
    )
    text = r.data.decode("utf-8-sig")
    assert r.data.startswith(b"\xef\xbb\xbf") and text.count("\n") == 3
    assert f"C-{order.id}-1" in text
    body = client.get(
        "/api/v1/reports/usage", query_string={"month": "2030-01"}, headers=bearer(env.admin)
    ).get_json()
    assert body["orders"]["person_times"] == 1
    # staff of another institute see none of it
    other = client.get(
        "/api/v1/reports/usage",
        query_string={"month": "2030-01", "format": "csv", "detail": "orders"},
        headers=bearer(env.other_staff),
    )
    assert other.data.decode("utf-8-sig").count("\n") == 1


def test_statistics_page_shows_order_figures(app: Any, env: SimpleNamespace) -> None:
    from tests.helpers import signed_in

    completed_order(env)
    page = signed_in(app, env.staff).get("/reports/?month=2030-01").get_data(as_text=True)
    assert 'id="order-figures"' in page
    assert "Service person-times (orders completed)" in page
    other = signed_in(app, env.other_staff).get("/reports/?month=2030-01").get_data(as_text=True)
    assert 'id="order-figures"' not in other


def test_cli_exports_the_orders_csv(app: Any, env: SimpleNamespace, tmp_path: Any) -> None:
    order = completed_order(env)
    out = tmp_path / "orders.csv"
    result = app.test_cli_runner().invoke(
        args=[
            "export-usage",
            "--month",
            "2030-01",
            "--format",
            "csv",
            "--detail",
            "orders",
            "--out",
            str(out),
        ]
    )
    assert result.exit_code == 0, result.output
    text = out.read_bytes().decode("utf-8-sig")
    assert text.splitlines()[0].startswith("Order no.") and f"C-{order.id}-0" in text
