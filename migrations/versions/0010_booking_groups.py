"""bookings of several resources together

Revision ID: 0010_booking_groups
Revises: 0009_checkin
Create Date: 2026-11-27 06:00:00

(Placeholder in the chain; filled in by the change that needs it.)
"""

from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401


revision = '0010_booking_groups'
down_revision = '0009_checkin'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
