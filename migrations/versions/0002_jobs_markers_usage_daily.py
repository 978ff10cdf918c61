"""scheduler: job markers and the daily usage roll-up

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 10:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('job_marker',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('job', sa.String(length=50), nullable=False),
    sa.Column('outcome', sa.String(length=20), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_job_marker')),
    sa.UniqueConstraint('key', name=op.f('uq_job_marker_key'))
    )
    with op.batch_alter_table('job_marker', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_job_marker_job'), ['job'], unique=False)

    op.create_table('usage_daily',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('institute_id', sa.Integer(), nullable=False),
    sa.Column('resource_id', sa.Integer(), nullable=True),
    sa.Column('bookings_total', sa.Integer(), nullable=False),
    sa.Column('pending', sa.Integer(), nullable=False),
    sa.Column('approved', sa.Integer(), nullable=False),
    sa.Column('rejected', sa.Integer(), nullable=False),
    sa.Column('cancelled', sa.Integer(), nullable=False),
    sa.Column('completed', sa.Integer(), nullable=False),
    sa.Column('no_show', sa.Integer(), nullable=False),
    sa.Column('usage_minutes', sa.Integer(), nullable=False),
    sa.Column('companies_served', sa.Integer(), nullable=False),
    sa.Column('verification', sa.Integer(), nullable=False),
    sa.Column('calibration', sa.Integer(), nullable=False),
    sa.Column('testing', sa.Integer(), nullable=False),
    sa.Column('training', sa.Integer(), nullable=False),
    sa.Column('consultation', sa.Integer(), nullable=False),
    sa.Column('problems_solved', sa.Integer(), nullable=False),
    sa.Column('fees', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('fees_waived', sa.Numeric(precision=14, scale=2), nullable=False),
    sa.Column('computed_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['institute_id'], ['institute.id'], name=op.f('fk_usage_daily_institute_id_institute'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['resource_id'], ['resource.id'], name=op.f('fk_usage_daily_resource_id_resource'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_usage_daily'))
    )
    with op.batch_alter_table('usage_daily', schema=None) as batch_op:
        batch_op.create_index('ix_usage_daily_day_institute_resource', ['day', 'institute_id', 'resource_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_usage_daily_resource_id'), ['resource_id'], unique=False)


def downgrade():
    with op.batch_alter_table('usage_daily', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_usage_daily_resource_id'))
        batch_op.drop_index('ix_usage_daily_day_institute_resource')

    op.drop_table('usage_daily')
    with op.batch_alter_table('job_marker', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_job_marker_job'))

    op.drop_table('job_marker')
