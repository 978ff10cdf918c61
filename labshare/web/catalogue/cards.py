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

from flask import Flask, current_app, request
from flask_babel import get_locale
from jinja2 import pass_context
from jinja2.runtime import Context
from markupsafe import Markup

from labshare.web.catalogue import bp

#: Cards kept per app and process (about a kilobyte each, a few at most).
SIZE = 4096
EXTENSION = "labshare_result_cards"


class Cards:
    def __init__(self) -> None:
        self.kept: OrderedDict[Hashable, Markup] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: Hashable) -> Markup | None:
        with self.lock:
            found = self.kept.get(key)
            if found is not None:
                self.kept.move_to_end(key)
            return found

    def put(self, key: Hashable, card: Markup) -> None:
        with self.lock:
            self.kept[key] = card
            while len(self.kept) > SIZE:
                self.kept.popitem(last=False)

    def clear(self) -> None:
        with self.lock:
            self.kept.clear()


def cards_of(app: Flask) -> Cards:
    found = app.extensions.get(EXTENSION)
    if not isinstance(found, Cards):
        found = app.extensions[EXTENSION] = Cards()
    return found


@bp.app_template_global("result_card")
@pass_context
def result_card(ctx: Context, resource: Any) -> Markup:
    today = ctx["today"]
    version = ctx.get("card_version")
    store = cards_of(current_app._get_current_object())  # type: ignore[attr-defined]
    key = None
    if version is not None:
        key = (resource.id, str(get_locale()), version, today, request.script_root)
        found = store.get(key)
        if found is not None:
            return found
    macro: Any = getattr(ctx.environment.get_template("catalogue/_card.html").module, "card")  # noqa: B009
    card = Markup(macro(resource, today))  # noqa: S704 - the template's own, escaped
    if key is not None:
        store.put(key, card)
    return card


__all__ = ["SIZE", "Cards", "cards_of", "result_card"]
