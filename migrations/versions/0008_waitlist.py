"""waitlist entries and offers

Revision ID: 0008_waitlist
Revises: 0007_recurrence
Create Date: 2026-11-27 06:00:00

(Placeholder in the chain; filled in by the change that needs it.)
"""

from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401


revision = '0008_waitlist'
down_revision = '0007_recurrence'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
