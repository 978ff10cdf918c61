"""search index: search_doc (tokens made by the application) and its lookup structure

Revision ID: 0018_search_index
Revises: 0017_outbox_events
Create Date: 2026-12-05 01:00:00

labshare/catalogue/search_index.py cuts every lab and instrument into tokens
(Chinese characters and pairs, English words, pinyin, measurand synonyms) and
keeps one search_doc row per resource. PostgreSQL looks tokens up through a GIN
index on the tokens as a tsvector; SQLite through an FTS5 table over search_doc,
kept in step by triggers. The rows of the existing catalogue are built here.
"""

import sqlalchemy as sa
from alembic import op


revision = "0018_search_index"
down_revision = "0017_outbox_events"
branch_labels = None
depends_on = None

# A stored column, not an expression index: a frequent token makes the planner
# filter rows instead of using the index, and an expression would then be
# recomputed for every row (a one-character query: 570 ms against a few).
PG = [
    "ALTER TABLE search_doc ADD COLUMN tsv tsvector GENERATED ALWAYS AS "
    "(array_to_tsvector(string_to_array(tokens, ' '))) STORED",
    "CREATE INDEX ix_search_doc_tsv ON search_doc USING gin (tsv)",
]
SQLITE = [
    "CREATE VIRTUAL TABLE search_fts USING fts5("
    "tokens, content='search_doc', content_rowid='resource_id', tokenize='ascii')",
    "CREATE TRIGGER search_doc_ai AFTER INSERT ON search_doc BEGIN "
    "INSERT INTO search_fts(rowid, tokens) VALUES (new.resource_id, new.tokens); END",
    "CREATE TRIGGER search_doc_ad AFTER DELETE ON search_doc BEGIN "
    "INSERT INTO search_fts(search_fts, rowid, tokens) "
    "VALUES ('delete', old.resource_id, old.tokens); END",
    "CREATE TRIGGER search_doc_au AFTER UPDATE ON search_doc BEGIN "
    "INSERT INTO search_fts(search_fts, rowid, tokens) "
    "VALUES ('delete', old.resource_id, old.tokens); "
    "INSERT INTO search_fts(rowid, tokens) VALUES (new.resource_id, new.tokens); END",
]


def upgrade():
    op.create_table(
        "search_doc",
        sa.Column("resource_id", sa.Integer(), nullable=False),
        sa.Column("tokens", sa.Text(), nullable=False),
        sa.Column("name_tokens", sa.Text(), nullable=False),
        sa.Column("measurand_tokens", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["resource_id"], ["resource.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("resource_id"),
    )
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for statement in PG:
            op.execute(statement)
    else:
        for statement in SQLITE:
            op.execute(statement)
    # The application's tokeniser builds the rows of the catalogue already there.
    from labshare.catalogue.search_index import rebuild

    rebuild(bind)


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_search_doc_tsv")
    else:
        for trigger in ("search_doc_ai", "search_doc_ad", "search_doc_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS search_fts")
    op.drop_table("search_doc")
