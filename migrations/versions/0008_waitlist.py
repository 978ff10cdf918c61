"""waitlist entries and offers

Revision ID: 0008_waitlist
Revises: 0007_recurrence
Create Date: 2026-11-27 06:00:00

The ``waitlist_entry`` table, two rule settings on ``booking_rules``
(``waitlist_enabled``, ``waitlist_offer_minutes``) and triggers on
``waitlist_entry`` that change the calendar version of the entry's resource: an
open offer holds its slot, so availability shows it busy (reason ``offered``)
and the calendar cache must not serve a document from before the offer opened
or closed.
"""

from alembic import op
import sqlalchemy as sa


revision = '0008_waitlist'
down_revision = '0007_recurrence'
branch_labels = None
depends_on = None

#: An UPDATE of these columns can change whether and where an offer holds time.
TOUCHING = 'status, start_at, end_at, resource_id, offer_expires_at'


def _sqlite_bump(where):
    return f"UPDATE resource SET calendar_version = random() WHERE {where};"  # noqa: S608


SQLITE_TRIGGERS = (
    ('calendar_waitlist_entry_ins', "AFTER INSERT ON waitlist_entry",
     _sqlite_bump("id = NEW.resource_id")),
    ('calendar_waitlist_entry_upd', f"AFTER UPDATE OF {TOUCHING} ON waitlist_entry",
     _sqlite_bump("id IN (OLD.resource_id, NEW.resource_id)")),
    ('calendar_waitlist_entry_del', "AFTER DELETE ON waitlist_entry",
     _sqlite_bump("id = OLD.resource_id")),
)


def upgrade():
    op.add_column('booking_rules', sa.Column(
        'waitlist_enabled', sa.Boolean(), server_default=sa.true(), nullable=False))
    op.add_column('booking_rules', sa.Column(
        'waitlist_offer_minutes', sa.Integer(), server_default=sa.text('120'), nullable=False))
    op.create_table(
        'waitlist_entry',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('resource_id', sa.Integer(), nullable=False),
        sa.Column('company_id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('start_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('end_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('purpose', sa.String(length=500), nullable=False),
        sa.Column('status', sa.Enum('waiting', 'offered', 'booked', 'expired', 'declined',
                                    'left', name='waitlist_status', native_enum=False,
                                    create_constraint=True, length=32), nullable=False),
        sa.Column('offered_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('offer_expires_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('booking_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint('end_at > start_at', name=op.f('ck_waitlist_entry_end_after_start')),
        sa.ForeignKeyConstraint(['resource_id'], ['resource.id'],
                                name=op.f('fk_waitlist_entry_resource_id_resource'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['company_id'], ['company.id'],
                                name=op.f('fk_waitlist_entry_company_id_company')),
        sa.ForeignKeyConstraint(['user_id'], ['user_account.id'],
                                name=op.f('fk_waitlist_entry_user_id_user_account')),
        sa.ForeignKeyConstraint(['booking_id'], ['booking.id'],
                                name=op.f('fk_waitlist_entry_booking_id_booking')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_waitlist_entry')),
    )
    op.create_index('ix_waitlist_entry_resource_status_start', 'waitlist_entry',
                    ['resource_id', 'status', 'start_at'])
    op.create_index('ix_waitlist_entry_company_status', 'waitlist_entry',
                    ['company_id', 'status'])
    op.create_index('ix_waitlist_entry_status_expires', 'waitlist_entry',
                    ['status', 'offer_expires_at'])
    if op.get_bind().dialect.name == 'postgresql':
        # calendar_touch(column) is 0004's: bumps the resource named by the column.
        op.execute(
            f"CREATE TRIGGER calendar_waitlist_entry AFTER INSERT OR DELETE OR UPDATE OF "
            f"{TOUCHING} ON waitlist_entry "
            "FOR EACH ROW EXECUTE FUNCTION calendar_touch('resource_id')"
        )
    else:
        for name, when, body in SQLITE_TRIGGERS:
            op.execute(f"CREATE TRIGGER {name} {when} BEGIN {body} END")


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP TRIGGER IF EXISTS calendar_waitlist_entry ON waitlist_entry")
    else:
        for name, _when, _body in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_index('ix_waitlist_entry_status_expires', table_name='waitlist_entry')
    op.drop_index('ix_waitlist_entry_company_status', table_name='waitlist_entry')
    op.drop_index('ix_waitlist_entry_resource_status_start', table_name='waitlist_entry')
    op.drop_table('waitlist_entry')
    # ALTER TABLE ... DROP COLUMN on both (SQLite >= 3.35), as 0004 does.
    op.drop_column('booking_rules', 'waitlist_offer_minutes')
    op.drop_column('booking_rules', 'waitlist_enabled')
