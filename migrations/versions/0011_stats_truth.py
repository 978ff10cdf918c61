"""statistics counted at query time: covering indexes; usage_daily dropped

Revision ID: 0011_stats_truth
Revises: 0010_booking_groups
Create Date: 2026-12-04 23:40:00

Campaign figures are counted from ``booking`` and ``usage_record`` when asked
(labshare/services/stats.py), so the nightly roll-up table ``usage_daily`` goes.
Two indexes cover every column the statistics read, so the month's bookings are
read from the index alone (SQLite covering index, PostgreSQL index-only scan):
``ix_booking_stats`` leads with ``start_at`` (every figure is a time window),
``ix_booking_company_stats`` answers "had this company a completed booking before"
(new SMEs) and ``ix_usage_record_stats`` answers the join to usage records. Plain CREATE INDEX,
no table rebuild, so the booking table's triggers (0004, 0006) stay.
"""

from alembic import op
import sqlalchemy as sa


revision = '0011_stats_truth'
down_revision = '0010_booking_groups'
branch_labels = None
depends_on = None

BOOKING_COLUMNS = [
    'start_at', 'institute_id', 'resource_id', 'status', 'late_cancellation',
    'company_id', 'resource_kind', 'fee', 'fee_waived', 'created_at', 'decided_at', 'id',
]
COMPANY_COLUMNS = ['company_id', 'status', 'start_at', 'institute_id', 'resource_id']
USAGE_COLUMNS = [
    'booking_id', 'service_type', 'problem_solved', 'checked_in_at', 'checked_out_at',
]


def upgrade():
    op.create_index('ix_booking_stats', 'booking', BOOKING_COLUMNS, unique=False)
    op.create_index('ix_booking_company_stats', 'booking', COMPANY_COLUMNS, unique=False)
    op.create_index('ix_usage_record_stats', 'usage_record', USAGE_COLUMNS, unique=False)
    op.drop_index('ix_usage_daily_resource_id', table_name='usage_daily')
    op.drop_index('ix_usage_daily_day_institute_resource', table_name='usage_daily')
    op.drop_table('usage_daily')


def downgrade():
    op.create_table(
        'usage_daily',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('institute_id', sa.Integer(), nullable=False),
        sa.Column('resource_id', sa.Integer(), nullable=True),
        *[
            sa.Column(name, sa.Integer(), nullable=False)
            for name in (
                'bookings_total', 'pending', 'approved', 'rejected', 'cancelled',
                'completed', 'no_show', 'usage_minutes', 'companies_served',
                'verification', 'calibration', 'testing', 'training', 'consultation',
                'problems_solved',
            )
        ],
        sa.Column('fees', sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column('fees_waived', sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column('computed_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ['institute_id'], ['institute.id'],
            name=op.f('fk_usage_daily_institute_id_institute'), ondelete='CASCADE',
        ),
        sa.ForeignKeyConstraint(
            ['resource_id'], ['resource.id'],
            name=op.f('fk_usage_daily_resource_id_resource'), ondelete='CASCADE',
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_usage_daily')),
    )
    op.create_index(
        'ix_usage_daily_day_institute_resource', 'usage_daily',
        ['day', 'institute_id', 'resource_id'], unique=False,
    )
    op.create_index('ix_usage_daily_resource_id', 'usage_daily', ['resource_id'], unique=False)
    op.drop_index('ix_usage_record_stats', table_name='usage_record')
    op.drop_index('ix_booking_company_stats', table_name='booking')
    op.drop_index('ix_booking_stats', table_name='booking')
