"""The lean path keeps its statements, built once per shape with bound values:
a kept statement judges every later slot on that slot's own values (another
company, another quota's scope and period, another resource's rules), and a
shape seen before builds nothing new."""

from __future__ import annotations

import datetime as dt
from typing import Any

from labshare.booking import path_reads
from labshare.booking.policies import quotas
from labshare.models import DEFAULT_RULES, Role
from labshare.timeutil import set_clock
from tests.helpers import END, NOW, START, bearer


def _post(client: Any, resource_id: int, headers: dict[str, str], hours: int = 0) -> Any:
    shift = dt.timedelta(hours=hours)
    body = {
        "resource_id": resource_id,
        "start": (dt.datetime.fromisoformat(START) + shift).isoformat(),
        "end": (dt.datetime.fromisoformat(END) + shift).isoformat(),
        "purpose": "p",
    }
    return client.post("/api/v1/bookings", json=body, headers=headers)


def test_kept_statements_judge_each_slot_on_its_own_values(client: Any, db: Any) -> None:
    from tests.factories import make_instrument, make_lab, make_user

    set_clock(lambda: NOW)
    # one quota of each scope, each on its own instrument and institute
    by_resource = make_instrument()
    lab = make_lab()
    by_lab = make_instrument(lab=lab, institute=lab.institute)
    by_institute = make_instrument()
    # the instrument's own rules (approval) and its lab's (none: the defaults)
    own_rules = make_instrument(rules={**DEFAULT_RULES, "requires_approval": False})
    smes = [bearer(make_user(Role.SME)) for _ in range(3)]
    db.session.commit()
    quotas.create_quota(
        None, by_resource.institute_id, by_resource.id, period="day", max_bookings=1
    )
    quotas.create_quota(None, lab.institute_id, lab.id, period="week", max_bookings=1)
    quotas.create_quota(None, by_institute.institute_id, None, period="month", max_bookings=1)
    db.session.commit()
    ids = [by_resource.id, by_lab.id, by_institute.id]
    own_id = own_rules.id

    for rid in ids:
        assert _post(client, rid, smes[0]).status_code == 201
        refused = _post(client, rid, smes[0], hours=3)
        assert refused.status_code == 422, refused.get_json()
        assert refused.get_json()["error"]["rule"] == "quota_bookings"
    kept = len(path_reads._BUILT)

    # the same shapes for another company: its own (empty) usage, not the first's
    for rid in ids:
        assert _post(client, rid, smes[1], hours=3).status_code == 201
    assert _post(client, ids[0], smes[2], hours=1).status_code == 409  # overlaps the first
    assert len(path_reads._BUILT) == kept  # nothing built again

    # an instrument whose own rules approve, after ones judged by the defaults (which
    # require approval): its rules, not the last statement's
    approved = _post(client, own_id, smes[2])
    assert approved.status_code == 201
    assert approved.get_json()["status"] == "approved"
    pending = _post(client, ids[0], smes[2], hours=5)
    assert pending.status_code == 201
    assert pending.get_json()["status"] == "pending"
