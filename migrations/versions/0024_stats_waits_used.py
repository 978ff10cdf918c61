"""statistics: stored decision waits (the median) and who was served per month

Revision ID: 0024_stats_waits_used
Revises: 0023_search_window
Create Date: 2026-12-05 06:00:00

``stats_wait`` (institute, local day, whole minutes waited, how many bookings;
institute 0: the sum over every institute; labshare/campaign/waits.py) and
``stats_used`` (kind, institute, local month, company or instrument with a completed
booking; institute 0: how many institutes; labshare/campaign/used.py), kept by the
``rollup`` job and trusted only for days (months) no ``stats_dirty`` marker makes
dirty. Every booking already there is marked dirty, so the figures are counted live,
right, until the job (past 5000 dirty pairs: a whole rebuild) fills the tables.

Only tables are added: no table is rebuilt, so no trigger is lost.
"""

from alembic import op
import sqlalchemy as sa


revision = '0024_stats_waits_used'
down_revision = '0023_search_window'
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
        'stats_wait',
        sa.Column('institute_id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('minutes', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('n', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('institute_id', 'day', 'minutes', name=op.f('pk_stats_wait')),
        sqlite_with_rowid=False,
    )
    op.create_table(
        'stats_used',
        sa.Column('kind', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('institute_id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('month', sa.Date(), nullable=False),
        sa.Column('item_id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('n', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            'kind', 'institute_id', 'month', 'item_id', name=op.f('pk_stats_used')
        ),
        sqlite_with_rowid=False,
    )
    # The open labs of a period: the available labs without a scan of every resource.
    op.create_index(
        'ix_resource_kind_status', 'resource', ['kind', 'status', 'institute_id'], unique=False
    )
    op.execute(_mark_all(op.get_bind().dialect.name))


def downgrade():
    op.drop_index('ix_resource_kind_status', table_name='resource')
    op.drop_table('stats_used')
    op.drop_table('stats_wait')
