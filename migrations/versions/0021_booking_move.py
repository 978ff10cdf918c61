"""moving a booking: how many times each booking was moved

Revision ID: 0021_booking_move
Revises: 0019_daily_ops
Create Date: 2026-12-05 02:45:00

``booking.moves`` counts a booking's moves to another time: the calendar feed's
SEQUENCE grows with it (so calendar apps replace the event), and each move's
messages get keys of their own.

Only a column is added (ALTER TABLE ... ADD COLUMN): the booking table is not
rebuilt, so its SQLite triggers stay.
"""

from alembic import op
import sqlalchemy as sa


revision = "0021_booking_move"
down_revision = "0020_holidays"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("booking", sa.Column("moves", sa.Integer(), nullable=False, server_default="0"))


def downgrade():
    # In place (ALTER TABLE ... DROP COLUMN), never a batch copy.
    op.drop_column("booking", "moves")
