"""recurring booking series

Revision ID: 0007_recurrence
Revises: 0006_policies
Create Date: 2026-11-27 06:00:00

(Placeholder in the chain; filled in by the change that needs it.)
"""

from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401


revision = '0007_recurrence'
down_revision = '0006_policies'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
