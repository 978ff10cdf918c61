"""trigram index on instrument.measurand for text search

Revision ID: 0005_measurand_trgm
Revises: 0004_calendar_version
Create Date: 2026-11-27 04:00:00

Text search (labshare/catalogue/search.py) matches each term against the
instrument's measurand too; without this index that branch was a sequential scan
of every instrument (30-50 ms on 37k instruments) while the other columns were
index scans. pg_trgm GIN on PostgreSQL (the extension exists since 0004), a plain
index of the same name on SQLite, as in 0004.
"""

from alembic import op


revision = '0005_measurand_trgm'
down_revision = '0004_calendar_version'
branch_labels = None
depends_on = None

NAME = 'ix_instrument_measurand_trgm'


def upgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute(f"CREATE INDEX {NAME} ON instrument USING gin (measurand gin_trgm_ops)")
    else:
        op.create_index(NAME, 'instrument', ['measurand'])


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.execute(f"DROP INDEX IF EXISTS {NAME}")
    else:
        op.drop_index(NAME, table_name='instrument')
