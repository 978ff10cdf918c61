"""notification.data: the facts of a message rendered when it is read or sent

Revision ID: 0027_notification_data
Revises: 0026_holiday_token
Create Date: 2026-12-05 07:00:00

A message about bookings displaced by a closure or a new public holiday is queued as
its facts (the bookings, the closed windows, cancel or hold, the staff's message);
its alternatives are computed and its text rendered when it is read or sent, so the
transaction that closes the time stays short whatever the number of bookings.
"""

from alembic import op
import sqlalchemy as sa


revision = '0027_notification_data'
down_revision = '0026_holiday_token'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('notification', sa.Column('data', sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column('notification', 'data')
