"""buffer time, quotas per period, late cancellation, no-show threshold

Revision ID: 0006_policies
Revises: 0005_measurand_trgm
Create Date: 2026-11-27 06:00:00

(Placeholder in the chain; filled in by the change that needs it.)
"""

from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401


revision = '0006_policies'
down_revision = '0005_measurand_trgm'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
