"""check-in and auto-release

Revision ID: 0009_checkin
Revises: 0008_waitlist
Create Date: 2026-11-27 06:00:00

(Placeholder in the chain; filled in by the change that needs it.)
"""

from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401


revision = '0009_checkin'
down_revision = '0008_waitlist'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
