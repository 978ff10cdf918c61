"""check-in and auto-release

Revision ID: 0009_checkin
Revises: 0008_waitlist
Create Date: 2026-11-27 06:00:00

Booking: ``checked_in_at`` and ``checked_in_by_id``. Booking rules:
``checkin_required`` (off), ``checkin_opens_minutes`` and ``checkin_release_minutes``
(15 each); old rows get the defaults from the server defaults.
"""

from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401


revision = '0009_checkin'
down_revision = '0008_waitlist'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('booking', sa.Column('checked_in_at', sa.DateTime(timezone=True), nullable=True))
    if op.get_bind().dialect.name == 'sqlite':
        # ALTER TABLE ... ADD COLUMN with an inline foreign key: no table rebuild, so
        # the booking table keeps its calendar triggers (0004).
        op.execute(
            'ALTER TABLE booking ADD COLUMN checked_in_by_id INTEGER '
            'CONSTRAINT fk_booking_checked_in_by_id_user_account REFERENCES user_account (id)'
        )
    else:
        op.add_column('booking', sa.Column('checked_in_by_id', sa.Integer(), nullable=True))
        op.create_foreign_key(
            'fk_booking_checked_in_by_id_user_account', 'booking', 'user_account',
            ['checked_in_by_id'], ['id'],
        )
    op.add_column(
        'booking_rules',
        sa.Column('checkin_required', sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.add_column(
        'booking_rules',
        sa.Column('checkin_opens_minutes', sa.Integer(), server_default='15', nullable=False),
    )
    op.add_column(
        'booking_rules',
        sa.Column('checkin_release_minutes', sa.Integer(), server_default='15', nullable=False),
    )


def downgrade():
    # ALTER TABLE ... DROP COLUMN on both (SQLite >= 3.35): a batch copy would rebuild
    # booking_rules and drop its calendar triggers (0006) with it.
    op.drop_column('booking_rules', 'checkin_release_minutes')
    op.drop_column('booking_rules', 'checkin_opens_minutes')
    op.drop_column('booking_rules', 'checkin_required')
    if op.get_bind().dialect.name == 'sqlite':
        # SQLite >= 3.35 drops a column in place (the booking table keeps its
        # triggers); the foreign key of checked_in_by_id is inline, so it goes too.
        op.execute('ALTER TABLE booking DROP COLUMN checked_in_by_id')
        op.execute('ALTER TABLE booking DROP COLUMN checked_in_at')
    else:
        op.drop_constraint('fk_booking_checked_in_by_id_user_account', 'booking', type_='foreignkey')
        op.drop_column('booking', 'checked_in_by_id')
        op.drop_column('booking', 'checked_in_at')
