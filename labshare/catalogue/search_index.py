"""The search index: tokens of every lab and instrument, made by the application.

Chinese has no spaces, so neither PostgreSQL's parser nor SQLite's tokenisers can
cut it into words; and pg_trgm cannot use its index for the two-character words
that most Chinese searches are (压力, 硬度). So the application cuts the text into
tokens itself and the databases only look tokens up:

- Chinese: every character (for one-character queries) and every pair of adjacent
  characters; a longer query must contain all of its pairs (三坐标 → 三坐 AND 坐标).
  A Chinese token is written as ``z`` and the hexadecimal code points
  (``压力`` → ``z538b529b``), so every token is ``[a-z0-9]+`` and no database's
  parser, case folding or query operator ever sees a Chinese character or a quote.
- English and digits: words of letters and digits, lower-cased (NFKC first, so
  full-width ``ＵＶ`` is ``uv``); a query word of three or more characters matches
  as a prefix (``manomet`` → manometer).
- Pinyin (pypinyin): each pair as full pinyin (``yali``) and initials (``yl``), and
  a run's initials (三坐标测量机 → ``szbclj``). A query word that splits into pinyin
  syllables (``sanzuobiao``) also matches the pairs of its syllables
  (``sanzuo`` AND ``zuobiao``).
- An instrument's measurand adds every name of it in labshare/data/measurands.json,
  so 压强, 压力 and pressure find the same instruments.

The tokens live in ``search_doc`` (one row per resource), kept in step in the same
transaction as the catalogue by a flush listener (``install``), and are searched
through a GIN index on the generated column
``tsv = array_to_tsvector(string_to_array(tokens, ' '))`` on PostgreSQL and the
FTS5 table ``search_fts`` on SQLite (migration 0018).
``Query`` is parsed once and rendered for either (``match_ids``).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    Table,
    and_,
    bindparam,
    case,
    cast,
    delete,
    event,
    insert,
    literal_column,
    or_,
    select,
    table,
    text,
)
from sqlalchemy import column as sa_column
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from sqlalchemy.types import UserDefinedType

from labshare.models import Institute, Instrument, Resource, SearchDoc

DATA = Path(__file__).resolve().parent.parent / "data"
#: Longest query accepted, in characters (longer is refused, not cut).
MAX_QUERY = 200
MAX_TERMS = 5
MAX_TOKEN = 64
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_WORD = re.compile(r"[a-z0-9]+")
_PREFIX_MIN = 3


@cache
def measurand_names() -> dict[str, dict[str, Any]]:
    """labshare/data/measurands.json without its comment: measurand → zh, en, dimension."""
    data = json.loads((DATA / "measurands.json").read_text(encoding="utf-8"))
    return {k: v for k, v in data.items() if not k.startswith("_")}


@cache
def _aliases() -> dict[str, str]:
    """Every name of every measurand (lower-cased) → the measurand."""
    out: dict[str, str] = {}
    for key, spec in measurand_names().items():
        for name in (key, key.replace("_", " "), *spec["zh"], *spec["en"]):
            out.setdefault(name.strip().lower(), key)
    return out


def resolve_measurand(name: str) -> str:
    """The measurand called ``name`` in any of its names (压强 → pressure); ``name``
    lower-cased when it is none of them."""
    wanted = unicodedata.normalize("NFKC", name).strip().lower()
    return _aliases().get(wanted, wanted)


@cache
def _syllables() -> frozenset[str]:
    return frozenset((DATA / "pinyin_syllables.txt").read_text(encoding="ascii").split())


def _cjk_token(chars: str) -> str:
    return "z" + "".join(f"{ord(c):x}" for c in chars)


def _pinyin(run: str) -> list[str]:
    from pypinyin import lazy_pinyin

    syllables = [s.replace("ü", "v") for s in lazy_pinyin(run)]
    return syllables if len(syllables) == len(run) else []


def _normal(value: str) -> str:
    return unicodedata.normalize("NFKC", value).lower()


def document_tokens(*texts: str | None) -> list[str]:
    """The tokens of a document made of ``texts`` (no duplicates, first-seen order)."""
    seen: dict[str, None] = {}
    for raw in texts:
        if raw:
            for token in _text_tokens(raw):
                seen.setdefault(token, None)
    return list(seen)


@lru_cache(maxsize=65536)
def _run_tokens(run: str) -> tuple[str, ...]:
    """The tokens of one run of Chinese characters (cached: catalogue names repeat,
    and pypinyin costs about a millisecond a phrase)."""
    out: list[str] = []
    syllables = _pinyin(run)
    for i, char in enumerate(run):
        out.append(_cjk_token(char))
        if i + 1 < len(run):
            out.append(_cjk_token(run[i : i + 2]))
            if syllables:
                out.append(syllables[i] + syllables[i + 1])
                out.append(syllables[i][0] + syllables[i + 1][0])
    if syllables and len(run) > 2:
        out.append("".join(s[0] for s in syllables))
    return tuple(dict.fromkeys(t for t in out if len(t) <= MAX_TOKEN))


@lru_cache(maxsize=65536)
def _text_tokens(raw: str) -> tuple[str, ...]:
    value = _normal(raw)
    out: list[str] = []
    for run in _CJK.findall(value):
        out += _run_tokens(run)
    out += (w for w in _WORD.findall(_CJK.sub(" ", value)) if len(w) <= MAX_TOKEN)
    return tuple(dict.fromkeys(out))


def _split_pinyin(word: str) -> list[str] | None:
    """``word`` as two or more pinyin syllables (the fewest), or None."""
    known = _syllables()
    best: list[list[str] | None] = [None] * (len(word) + 1)
    best[0] = []
    for end in range(1, len(word) + 1):
        for start in range(max(0, end - 6), end):
            head = best[start]
            if head is not None and word[start:end] in known:
                candidate = [*head, word[start:end]]
                current = best[end]
                if current is None or len(candidate) < len(current):
                    best[end] = candidate
    found = best[len(word)]
    return found if found is not None and len(found) >= 2 else None


@dataclass(frozen=True)
class Token:
    text: str
    prefix: bool = False


#: One alternative: all of its tokens must occur.
Alternative = tuple[Token, ...]


@dataclass
class Query:
    """AND of pieces; a piece is an OR of alternatives; an alternative an AND of tokens."""

    pieces: list[list[Alternative]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.pieces)

    def tokens(self) -> Iterator[Token]:
        for piece in self.pieces:
            for alternative in piece:
                yield from alternative


def parse(q: str) -> Query:
    """The query of the search box. Whatever is not a letter or digit only separates
    words (``%``, ``"``, ``*``, ``-``); words such as NEAR or OR are words, never
    operators. A query of punctuation alone is empty."""
    query = Query()
    for term in q.split()[:MAX_TERMS]:
        value = _normal(term)
        for run in _CJK.findall(value):
            if len(run) == 1:
                query.pieces.append([(Token(_cjk_token(run)),)])
            else:
                pairs = tuple(Token(_cjk_token(run[i : i + 2])) for i in range(len(run) - 1))
                query.pieces.append([pairs])
        for word in _WORD.findall(_CJK.sub(" ", value)):
            word = word[:MAX_TOKEN]
            alternatives: list[Alternative] = [(Token(word, len(word) >= _PREFIX_MIN),)]
            syllables = _split_pinyin(word) if word.isalpha() else None
            if syllables and len(syllables) > 2:
                alternatives.append(
                    tuple(Token(syllables[i] + syllables[i + 1]) for i in range(len(syllables) - 1))
                )
            query.pieces.append(alternatives)
    return query


def _fts5(query: Query) -> str:
    def token(t: Token) -> str:
        return f'"{t.text}"' + ("*" if t.prefix else "")

    return " AND ".join(
        "(" + " OR ".join("(" + " AND ".join(map(token, alt)) + ")" for alt in piece) + ")"
        for piece in query.pieces
    )


def _tsquery(query: Query) -> str:
    def token(t: Token) -> str:
        return f"'{t.text}'" + (":*" if t.prefix else "")

    return " & ".join(
        "(" + " | ".join("(" + " & ".join(map(token, alt)) + ")" for alt in piece) + ")"
        for piece in query.pieces
    )


def tsquery_text(query: Query) -> str:
    """The ``search_tsquery`` parameter of ``query`` (PostgreSQL)."""
    return _tsquery(query)


def fts_text(query: Query) -> str:
    """The ``search_fts`` parameter of ``query`` (SQLite's FTS5)."""
    return _fts5(query)


class _TsQuery(UserDefinedType[str]):
    cache_ok = True

    def get_col_spec(self, **_kw: Any) -> str:
        return "tsquery"

    def bind_expression(self, bindvalue: Any) -> Any:
        return cast(bindvalue, self)


#: The stored, GIN-indexed tsvector of migration 0018 (PostgreSQL only: generated
#: from ``tokens``, so no model column).
PG_VECTOR = "search_doc.tsv"


def match_ids(query: Query, dialect: str) -> Select[Any]:
    """Ids of the resources whose tokens satisfy ``query`` (not empty).

    ``OFFSET 0`` keeps the lookup a subquery of its own: pulled up into the outer
    query, PostgreSQL walked resource in id order and tested ``tsv`` row by row
    instead of one GIN bitmap scan (a one-character query's count: 65 ms against 16).
    """
    stmt: Select[Any]
    if dialect == "postgresql":
        stmt = select(SearchDoc.resource_id).where(
            literal_column(PG_VECTOR).op("@@")(
                bindparam("search_tsquery", _tsquery(query), type_=_TsQuery())
            )
        )
    else:
        stmt = (
            select(literal_column("rowid").label("resource_id"))
            .select_from(text("search_fts"))
            .where(text("search_fts MATCH :search_fts").bindparams(search_fts=_fts5(query)))
        )
    return stmt.offset(0)


def match_tiers(query: Query, dialect: str) -> Select[Any]:
    """``(resource_id, tier)`` of the resources whose tokens satisfy ``query`` (not
    empty): tier 1 when the name, English name or model has the words, 2 when the
    measurand's names have them, else 3. Ranked from the very row the index lookup
    found: joining ``search_doc`` again for the ranking fetched every match twice."""
    doc = _DOC
    tier = case(
        (_has(doc.c.name_tokens, query), 1),
        (_has(doc.c.measurand_tokens, query), 2),
        else_=3,
    )
    stmt: Select[Any]
    if dialect == "postgresql":
        stmt = select(doc.c.resource_id, tier.label("tier")).where(
            literal_column(PG_VECTOR).op("@@")(
                bindparam("search_tsquery", _tsquery(query), type_=_TsQuery())
            )
        )
    else:
        fts = table("search_fts", sa_column("rowid"))
        stmt = (
            select(doc.c.resource_id, tier.label("tier"))
            .select_from(fts.join(doc, doc.c.resource_id == fts.c.rowid))
            .where(text("search_fts MATCH :search_fts").bindparams(search_fts=_fts5(query)))
        )
    return stmt.offset(0)


@dataclass(frozen=True)
class Source:
    """What a tier's probe joins to find its matches: ``table`` (joined on
    ``resource_id`` = resource.id), and the ``match`` condition; ``doc``: whether
    ``table`` is search_doc itself (else it must be joined for its columns)."""

    table: Any
    resource_id: ColumnElement[int]
    match: Any  # a condition (SQLite's MATCH is a text clause)
    doc: bool


def tier_source(query: Query, dialect: str, *, names: bool) -> Source:
    """The index lookup of the matches of ``query`` (not empty): of its name tokens
    (name, English name, model: the name tier) with ``names``, else of all its
    tokens. Same query as ``_has(search_doc.name_tokens)`` resp. ``match_ids``:
    the same tokens, looked up in an index (migration 0028) instead of tested."""
    if dialect == "postgresql":
        vector = "search_doc.name_tsv" if names else PG_VECTOR
        return Source(
            _DOC,
            _DOC.c.resource_id,
            literal_column(vector).op("@@")(
                bindparam("search_tsquery", _tsquery(query), type_=_TsQuery())
            ),
            True,
        )
    name = "search_fts_name" if names else "search_fts"
    fts = table(name, sa_column("rowid"))
    return Source(
        fts,
        fts.c.rowid,
        text(f"{name} MATCH :search_fts").bindparams(search_fts=_fts5(query)),
        False,
    )


def measurand_tier(query: Query) -> ColumnElement[bool]:
    """Whether the measurand's names have the words (the measurand tier), over
    search_doc's row (as ``match_tiers``)."""
    return _has(_DOC.c.measurand_tokens, query)


def _has(column: Any, query: Query) -> ColumnElement[bool]:
    """Whether the space-separated tokens in ``column`` satisfy ``query`` (to rank the
    few matching rows; the same SQL on both databases)."""
    padded = " " + column + " "

    def has(t: Token) -> ColumnElement[bool]:
        return padded.like(f"% {t.text}{'%' if t.prefix else ' %'}")

    return and_(*(or_(*(and_(*(has(t) for t in alt)) for alt in piece)) for piece in query.pieces))


# --- keeping the index in step ---------------------------------------------------

_DOC: Table = SearchDoc.__table__  # type: ignore[assignment]
_RESOURCE_FIELDS = ("name", "name_en", "model", "manufacturer", "measurand", "institute_id")
_INSTITUTE_FIELDS = ("name", "name_en", "city", "province")


def _measurand_texts(measurand: str | None) -> list[str]:
    if not measurand:
        return []
    spec = measurand_names().get(measurand)
    names = [measurand, measurand.replace("_", " ")]
    return names + (list(spec["zh"]) + list(spec["en"]) if spec else [])


def _rows(conn: Connection, where: ColumnElement[bool]) -> list[Any]:
    r, i, inst = Resource.__table__, Instrument.__table__, Institute.__table__
    return list(
        conn.execute(
            select(
                r.c.id,
                r.c.name,
                r.c.name_en,
                i.c.model,
                i.c.manufacturer,
                i.c.measurand,
                inst.c.name.label("institute"),
                inst.c.name_en.label("institute_en"),
                inst.c.city,
                inst.c.province,
            )
            .select_from(r.join(inst, inst.c.id == r.c.institute_id).outerjoin(i, i.c.id == r.c.id))
            .where(where)
        )
    )


def _doc(row: Any) -> dict[str, Any]:
    names = document_tokens(row.name, row.name_en, row.model)
    measurand = document_tokens(*_measurand_texts(row.measurand))
    rest = document_tokens(
        row.manufacturer, row.institute, row.institute_en, row.city, row.province
    )
    return {
        "resource_id": row.id,
        "tokens": " ".join(dict.fromkeys([*names, *measurand, *rest])),
        "name_tokens": " ".join(names),
        "measurand_tokens": " ".join(measurand),
    }


def _chunks(ids: Iterable[int], size: int = 500) -> Iterator[list[int]]:
    batch: list[int] = []
    for i in ids:
        batch.append(i)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def reindex(
    conn: Connection, resource_ids: Iterable[int] = (), institute_ids: Iterable[int] = ()
) -> int:
    """Rewrite the search rows of these resources and of every resource of these
    institutes; returns how many rows were written."""
    r, doc = Resource.__table__, _DOC
    written = 0
    for column, ids in (
        (r.c.id, sorted(set(resource_ids))),
        (r.c.institute_id, sorted(set(institute_ids))),
    ):
        for batch in _chunks(sorted(ids)):
            docs = [_doc(row) for row in _rows(conn, column.in_(batch))]
            if not docs:
                continue
            conn.execute(delete(doc).where(doc.c.resource_id.in_([d["resource_id"] for d in docs])))
            conn.execute(insert(doc), docs)
            written += len(docs)
    return written


def rebuild(conn: Connection) -> int:
    """Rebuild the whole index (migration 0018, bulk loads, ``flask search-reindex``)."""
    conn.execute(delete(_DOC))
    ids = [
        row[0]
        for row in conn.execute(select(Resource.__table__.c.id).order_by(Resource.__table__.c.id))
    ]
    total = 0
    for batch in _chunks(ids, 2000):
        total += reindex(conn, resource_ids=batch)
    return total


def _changed(obj: Any, names: Sequence[str]) -> bool:
    from sqlalchemy import inspect as sa_inspect

    state = sa_inspect(obj)
    return any(name in state.attrs and state.attrs[name].history.has_changes() for name in names)


def _after_flush(session: Session, _context: Any) -> None:
    resources: set[int] = set()
    institutes: set[int] = set()
    for obj in session.new:
        if isinstance(obj, Resource):
            resources.add(obj.id)
    for obj in session.dirty:
        if isinstance(obj, Resource) and _changed(obj, _RESOURCE_FIELDS):
            resources.add(obj.id)
        elif isinstance(obj, Institute) and _changed(obj, _INSTITUTE_FIELDS):
            institutes.add(obj.id)
    if resources or institutes:
        reindex(session.connection(), resources, institutes)


def install() -> None:
    """Keep ``search_doc`` in step with every ORM change of the catalogue, in the
    flush that writes it (so in the same transaction)."""
    if not event.contains(Session, "after_flush", _after_flush):
        event.listen(Session, "after_flush", _after_flush)
