"""search index: the name tokens and the lower-cased names indexed too

Revision ID: 0028_stext_name_index
Revises: 0027_notification_data
Create Date: 2026-12-05 08:40:00

A text search ranks the exact name first, then the matches whose name, English
name or model has the words, then the measurand's, then the rest. Told apart by
testing every match's name tokens, a one-character query (计: every metrology
institute, 42,000 matches) ranked every match to show 20. With the name tokens
and the lower-cased names indexed, the first tiers are index probes that stop at
the page (labshare/catalogue/search_tiers.py), and the rest is only read
when they do not fill it.
"""

from alembic import op


revision = "0028_stext_name_index"
down_revision = "0027_notification_data"
branch_labels = None
depends_on = None

# The lower-cased names: the exact-name tier (both databases index expressions).
COMMON = [
    "CREATE INDEX ix_resource_lower_name ON resource (lower(name))",
    "CREATE INDEX ix_resource_lower_name_en ON resource (lower(name_en))",
]
# As tsv (0018): a stored column, so that a row's test never recomputes it.
PG = [
    "ALTER TABLE search_doc ADD COLUMN name_tsv tsvector GENERATED ALWAYS AS "
    "(array_to_tsvector(string_to_array(name_tokens, ' '))) STORED",
    "CREATE INDEX ix_search_doc_name_tsv ON search_doc USING gin (name_tsv)",
    # The name tier in id order: walked without reading search_doc's wide rows (an
    # index-only scan that stops at the page; 计: 2 ms against 13).
    "CREATE INDEX ix_search_doc_id_name_tsv ON search_doc (resource_id) INCLUDE (name_tsv)",
    # The planner's figures for the new column and the expression indexes.
    "ANALYZE search_doc",
    "ANALYZE resource",
]
SQLITE = [
    "CREATE VIRTUAL TABLE search_fts_name USING fts5("
    "name_tokens, content='search_doc', content_rowid='resource_id', tokenize='ascii')",
    "CREATE TRIGGER search_doc_name_ai AFTER INSERT ON search_doc BEGIN "
    "INSERT INTO search_fts_name(rowid, name_tokens) "
    "VALUES (new.resource_id, new.name_tokens); END",
    "CREATE TRIGGER search_doc_name_ad AFTER DELETE ON search_doc BEGIN "
    "INSERT INTO search_fts_name(search_fts_name, rowid, name_tokens) "
    "VALUES ('delete', old.resource_id, old.name_tokens); END",
    "CREATE TRIGGER search_doc_name_au AFTER UPDATE ON search_doc BEGIN "
    "INSERT INTO search_fts_name(search_fts_name, rowid, name_tokens) "
    "VALUES ('delete', old.resource_id, old.name_tokens); "
    "INSERT INTO search_fts_name(rowid, name_tokens) "
    "VALUES (new.resource_id, new.name_tokens); END",
    "INSERT INTO search_fts_name(search_fts_name) VALUES ('rebuild')",
]


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for statement in COMMON + (PG if postgres else SQLITE):
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_search_doc_id_name_tsv")
        op.execute("DROP INDEX IF EXISTS ix_search_doc_name_tsv")
        op.execute("ALTER TABLE search_doc DROP COLUMN IF EXISTS name_tsv")
    else:
        for trigger in ("search_doc_name_ai", "search_doc_name_ad", "search_doc_name_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS search_fts_name")
    op.execute("DROP INDEX IF EXISTS ix_resource_lower_name")
    op.execute("DROP INDEX IF EXISTS ix_resource_lower_name_en")
