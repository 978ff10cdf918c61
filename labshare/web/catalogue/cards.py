"""The catalogue page's result cards, each rendered once per resource, language,
catalogue version and day, and served again from a bounded per-process map.

A card (templates/catalogue/_card.html) shows only the resource's and its
institute's columns, which change the catalogue's version whenever they change
(labshare/catalogue/search_cache.py), labels in the page's language, and its
calibration badge against ``today``. Rendering twenty of them through their
filters and macros was most of the template's CPU on every view of the page. The
view passes the catalogue version it read first (``card_version``; None when the
answer cache is off: then every card is rendered)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

from flask import request
from flask_babel import get_locale
from jinja2 import pass_context
from jinja2.runtime import Context
from markupsafe import Markup

from labshare.web.catalogue import bp

#: Cards kept per process (about a kilobyte each).
SIZE = 4096

_cards: OrderedDict[Hashable, Markup] = OrderedDict()
_lock = threading.Lock()


@bp.app_template_global("result_card")
@pass_context
def result_card(ctx: Context, resource: Any) -> Markup:
    today = ctx["today"]
    version = ctx.get("card_version")
    key = None
    if version is not None:
        key = (resource.id, str(get_locale()), version, today, request.script_root)
        with _lock:
            found = _cards.get(key)
            if found is not None:
                _cards.move_to_end(key)
                return found
    macro: Any = getattr(ctx.environment.get_template("catalogue/_card.html").module, "card")  # noqa: B009
    card = Markup(macro(resource, today))  # noqa: S704 - the template's own, escaped
    if key is not None:
        with _lock:
            _cards[key] = card
            while len(_cards) > SIZE:
                _cards.popitem(last=False)
    return card


def clear() -> None:
    with _lock:
        _cards.clear()


__all__ = ["SIZE", "clear", "result_card"]
