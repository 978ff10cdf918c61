"""Fixtures of the service-order tests."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from labshare.timeutil import set_clock
from tests.factories import order_env
from tests.helpers import NOW


@pytest.fixture
def env(db: Any) -> SimpleNamespace:
    """An institute with offerings (and another institute's), SMEs, staff and an
    admin, committed; the clock at NOW."""
    set_clock(lambda: NOW)
    return order_env()
