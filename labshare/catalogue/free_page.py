"""The window search's candidates read by id WITH their page rows, so that the page
needs no statement of its own.

A capability search with a window knows its ranked ids in memory
(capability_index.py) and reads their calendar columns by id for the free-time scan
(free_candidates.of_ids); the page's rows (``search_pages.row_select``, the API's
answer) were then read again by id. Here one statement reads both: the page's columns,
the rules that apply and the few calendar columns ``row_select`` lacks. The page is
cut from what the scan read (the first few candidates of the ranking), and a page
whose rows were not all read (an ORM page, another path) is read as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select

from labshare.booking import workdays
from labshare.booking.rules import Rules
from labshare.catalogue import free_candidates, id_lists, search_pages
from labshare.catalogue.free_candidates import Candidate, Candidates
from labshare.extensions import db
from labshare.models import Institute, Instrument, Resource

_resource = Resource.__table__
_instrument = Instrument.__table__
_institute = Institute.__table__


def _build(dialect: str) -> Select[Any]:
    return search_pages.row_select(
        None,
        free_candidates.of_its_lab("capacity").label("capacity"),
        _institute.c.follows_holidays.label("institute_follows"),
        _institute.c.province_code.label("province_code"),
        free_candidates.of_its_lab("follows_holidays").label("lab_follows"),
        workdays.token_column().label("calendar_token"),
        *free_candidates.stamp_columns(),
    ).where(id_lists.among(_resource.c.id, "ids", dialect))


_statement = id_lists.per_dialect(_build)


def of_ids(ids: Sequence[int]) -> list[Candidate]:
    """``free_candidates.of_ids`` with each candidate's page row: one statement."""
    if not ids:
        return []
    rows = db.session.execute(_statement(), {"ids": list(ids)})
    by_id = {}
    for row in rows:
        by_id[row.id] = free_candidates.candidate_of(row, search_pages.row_rules(row), row)
    return [by_id[i] for i in ids if i in by_id]


def rows_of(candidates: Candidates, ids: Sequence[int]) -> list[Any] | None:
    """The page rows of ``ids`` from the candidates read, in that order; None when
    one of them was not read with its row."""
    by_id = {c.subject.id: c.page_row for c in candidates.rows}
    rows = [by_id.get(i) for i in ids]
    return None if any(r is None for r in rows) else rows


def load(
    candidates: Candidates, ids: Sequence[int], plain: bool
) -> tuple[list[Any], dict[int, Rules]]:
    """``search_pages.load_any``: the page of ``ids`` and their rules, cut from the
    candidates' rows where all of them were read with their rows (a page of the
    best-ranked matches, all available: the week's candidates), else read."""
    read = rows_of(candidates, ids) if plain else None
    if read is None:
        return search_pages.load_any(ids, plain)
    rules = {c.subject.id: c.rules for c in candidates.rows}
    return read, {i: rules[i] for i in ids}
