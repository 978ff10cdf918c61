"""statistics: each company's first day of use, for the new-SME count

Revision ID: 0022_stats_speed
Revises: 0019_daily_ops
Create Date: 2026-12-05 03:00:00

``stats_first_use`` (company, institute, first local day with a completed booking;
institute 0: the first at any institute), kept by the ``rollup`` job and trusted
only for companies no ``stats_dirty`` marker names (labshare/campaign/first_use.py).
Every booking already there is marked dirty, so the figures are counted live, right,
until the job (past 5000 dirty pairs: a whole rebuild) fills the table.

Only a table is added: no table is rebuilt, so no trigger is lost.
"""

from alembic import op
import sqlalchemy as sa


revision = '0022_stats_speed'
down_revision = '0021_booking_move'
branch_labels = None
depends_on = None


def _mark_all(dialect):
    day = 'date(start_at)' if dialect == 'sqlite' else "(start_at AT TIME ZONE 'UTC')::date"
    verb = 'INSERT OR IGNORE' if dialect == 'sqlite' else 'INSERT'
    tail = '' if dialect == 'sqlite' else ' ON CONFLICT (resource_id, day) DO NOTHING'
    return (
        f'{verb} INTO stats_dirty (resource_id, day, institute_id, n) '
        f'SELECT resource_id, {day}, institute_id, 1 FROM booking '
        f'GROUP BY resource_id, {day}, institute_id{tail}'
    )


def upgrade():
    op.create_table(
        'stats_first_use',
        sa.Column('company_id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('institute_id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint('company_id', 'institute_id', name=op.f('pk_stats_first_use')),
        sqlite_with_rowid=False,
    )
    op.create_index(
        'ix_stats_first_use_institute_day',
        'stats_first_use',
        ['institute_id', 'day', 'company_id'],
        unique=False,
    )
    op.execute(_mark_all(op.get_bind().dialect.name))


def downgrade():
    op.drop_index('ix_stats_first_use_institute_day', table_name='stats_first_use')
    op.drop_table('stats_first_use')
