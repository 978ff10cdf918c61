"""buffer time, quotas per period, late cancellation, no-show threshold

Revision ID: 0006_policies
Revises: 0005_measurand_trgm
Create Date: 2026-11-27 06:00:00

Three rule settings on ``booking_rules`` (``buffer_minutes``, ``late_cancel_hours``,
``no_show_approval_threshold``), ``booking.late_cancellation``, the ``booking_quota``
table, and triggers on ``booking_rules`` that change the calendar version of the
rules' resource (the buffer changes availability). A lab's rules bump the lab's
row; an instrument's calendar already compares its lab's version too (0004).
"""

from alembic import op
import sqlalchemy as sa


revision = '0006_policies'
down_revision = '0005_measurand_trgm'
branch_labels = None
depends_on = None


def _sqlite_bump(where):
    return f"UPDATE resource SET calendar_version = random() WHERE {where};"  # noqa: S608


SQLITE_TRIGGERS = (
    ('calendar_booking_rules_ins', "AFTER INSERT ON booking_rules",
     _sqlite_bump("id = NEW.resource_id")),
    ('calendar_booking_rules_upd', "AFTER UPDATE ON booking_rules",
     _sqlite_bump("id IN (OLD.resource_id, NEW.resource_id)")),
    ('calendar_booking_rules_del', "AFTER DELETE ON booking_rules",
     _sqlite_bump("id = OLD.resource_id")),
)


def upgrade():
    op.add_column('booking_rules', sa.Column(
        'buffer_minutes', sa.Integer(), server_default=sa.text('0'), nullable=False))
    op.add_column('booking_rules', sa.Column(
        'late_cancel_hours', sa.Integer(), server_default=sa.text('0'), nullable=False))
    op.add_column('booking_rules', sa.Column(
        'no_show_approval_threshold', sa.Integer(), nullable=True))
    op.add_column('booking', sa.Column(
        'late_cancellation', sa.Boolean(), server_default=sa.false(), nullable=False))
    op.create_table(
        'booking_quota',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('institute_id', sa.Integer(), nullable=False),
        sa.Column('resource_id', sa.Integer(), nullable=True),
        sa.Column('period', sa.String(length=8), nullable=False),
        sa.Column('max_hours', sa.Numeric(precision=8, scale=2), nullable=True),
        sa.Column('max_bookings', sa.Integer(), nullable=True),
        sa.Column('count_completed', sa.Boolean(), server_default=sa.false(),
                  nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("period IN ('day', 'week', 'month', 'year')",
                           name=op.f('ck_booking_quota_quota_period')),
        sa.CheckConstraint('max_hours IS NOT NULL OR max_bookings IS NOT NULL',
                           name=op.f('ck_booking_quota_quota_has_limit')),
        sa.CheckConstraint('max_hours IS NULL OR max_hours > 0',
                           name=op.f('ck_booking_quota_quota_hours_positive')),
        sa.CheckConstraint('max_bookings IS NULL OR max_bookings > 0',
                           name=op.f('ck_booking_quota_quota_bookings_positive')),
        sa.ForeignKeyConstraint(['institute_id'], ['institute.id'],
                                name=op.f('fk_booking_quota_institute_id_institute'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['resource_id'], ['resource.id'],
                                name=op.f('fk_booking_quota_resource_id_resource'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_booking_quota')),
    )
    op.create_index('ix_booking_quota_institute', 'booking_quota', ['institute_id'])
    op.create_index('ix_booking_quota_resource', 'booking_quota', ['resource_id'])
    if op.get_bind().dialect.name == 'postgresql':
        # calendar_touch(column) is 0004's: bumps the resource named by the column.
        op.execute(
            "CREATE TRIGGER calendar_booking_rules AFTER INSERT OR DELETE OR UPDATE "
            "ON booking_rules FOR EACH ROW EXECUTE FUNCTION calendar_touch('resource_id')"
        )
    else:
        for name, when, body in SQLITE_TRIGGERS:
            op.execute(f"CREATE TRIGGER {name} {when} BEGIN {body} END")


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP TRIGGER IF EXISTS calendar_booking_rules ON booking_rules")
    else:
        for name, _when, _body in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_index('ix_booking_quota_resource', table_name='booking_quota')
    op.drop_index('ix_booking_quota_institute', table_name='booking_quota')
    op.drop_table('booking_quota')
    op.drop_column('booking', 'late_cancellation')
    op.drop_column('booking_rules', 'no_show_approval_threshold')
    op.drop_column('booking_rules', 'late_cancel_hours')
    op.drop_column('booking_rules', 'buffer_minutes')
